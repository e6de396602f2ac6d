"""Fixtures: a throwaway project and a stand-in ``osmo`` executable on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from robotrain.testing import make_project

FAKE_DIR = Path(__file__).parent / "fakeosmo"
sys.path[:0] = [str(FAKE_DIR), str(Path(__file__).parent)]

from osmo_helpers import FakeOsmo  # noqa: E402

LAUNCHER = """#!{python}
import runpy, sys
sys.path.insert(0, {folder!r})
sys.argv[0] = "osmo"
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture
def osmo(tmp_path: Path) -> FakeOsmo:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "osmo"
    launcher.write_text(
        LAUNCHER.format(python=sys.executable, folder=str(FAKE_DIR), script=str(FAKE_DIR / "fake_osmo.py"))
    )
    launcher.chmod(0o755)
    config = tmp_path / "osmo-config"
    config.mkdir()
    (config / "login.yaml").write_text("url: https://osmo.example.com\ntoken: stored-by-osmo-login\n")
    state = tmp_path / "fake-osmo-state"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OSMO_CONFIG_FILE_DIR": str(config),
        "FAKE_OSMO_DIR": str(state),
        "ROBOTRAIN_OSMO_RETRY_BASE_SECONDS": "0",
        "ROBOTRAIN_OSMO_POLL_SECONDS": "0",
    }
    return FakeOsmo(state, env)

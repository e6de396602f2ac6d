"""Fixtures: a throwaway project and a stand-in ``osmo`` executable on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from robotrain.testing import make_project

FAKE_DIR = Path(__file__).parent / "fakeosmo"
sys.path[:0] = [str(FAKE_DIR), str(Path(__file__).parent)]

from osmo_helpers import FakeOsmo, install_fake_osmo  # noqa: E402


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture
def osmo(tmp_path: Path) -> FakeOsmo:
    return install_fake_osmo(tmp_path)

"""One project, three platforms: `jobs` lists them all with their states, `rerun` changes nothing.

The OSMO and Azure ML stand-ins are the plugins' own (their tests show they refuse what the real
platforms refuse); the local job is real.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(REPO / "packages" / "plugin-osmo" / "tests" / "fakeosmo"),
    str(REPO / "packages" / "plugin-osmo" / "tests"),
    str(REPO / "packages" / "plugin-azureml" / "tests"),
]

from fake_azure import Cli, FakeAzure, start  # noqa: E402
from osmo_helpers import install_fake_osmo  # noqa: E402

from robotrain.testing import make_project, run_cli  # noqa: E402

pytest.importorskip("mlflow")

RUNS_ON = {"FAKE_OSMO_LOG_LINES": "1", "FAKE_OSMO_LOG_INTERVAL": "3600"}
"""An OSMO workflow that keeps running for the whole test."""


@pytest.fixture
def azure(tmp_path: Path) -> Iterator[tuple[FakeAzure, Path]]:
    folder = tmp_path / "fake-azure"
    folder.mkdir()
    fake, ca, server = start(folder)
    yield fake, ca
    server.shutdown()


def submitted_id(result: Any, platform: str) -> str:
    """The id in train's line ``PLATFORM job ID [URL]``."""
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"{platform} job ")]
    return str(line.split()[2])


@pytest.mark.slow
def test_jobs_and_rerun_across_local_osmo_and_azureml(tmp_path: Path, azure: tuple[FakeAzure, Path]) -> None:
    project = make_project(tmp_path / "project", "skip-register-checkpoint = true\n")
    osmo = install_fake_osmo(tmp_path)
    fake, ca = azure
    env = {**Cli(fake, ca, project).env(), **osmo.env, **RUNS_ON}

    def cli(*args: str) -> Any:
        return run_cli(args, cwd=project, env=env)

    local = submitted_id(cli("train", "--platform", "local"), "local")
    on_osmo = submitted_id(cli("train", "--platform", "osmo"), "osmo")
    on_azure = submitted_id(cli("train", "--platform", "azureml", "--compute", "k8s-robotics"), "azureml")
    fake.set_job_state(on_azure, "Failed")

    listed = cli("jobs", "--output", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    states = [(job["platform"], job["job_id"], job["state"], job["stale"]) for job in rows]
    assert states == [("azureml", on_azure, "failed", False), ("osmo", on_osmo, "running", False),
                      ("local", local, "completed", False)]  # fmt: skip

    for job_id in (local, on_osmo, on_azure):
        rerun = cli("rerun", job_id, "--dry-run", "--output", "json")
        assert rerun.returncode == 0, rerun.stderr
        assert json.loads(rerun.stdout)["changes"] == {}, job_id

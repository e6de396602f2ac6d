from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain.plugins import load_plugins
from robotrain.testing import run_cli
from robotrain_lerobot.job import build_job


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project folder: the lerobot workload needs no training code of the user's."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


DryRun = Callable[..., dict[str, Any]]


@pytest.fixture
def dry_run(project: Path) -> DryRun:
    """``dry_run(*args)``: the JobSpec (as JSON) ``train --dry-run`` builds for the lerobot workload."""

    def run(*args: str) -> dict[str, Any]:
        result = run_cli(["train", "--dry-run", "-o", "json", "--workload", "lerobot", *args], cwd=project)
        assert result.returncode == 0, result.stderr
        job: dict[str, Any] = json.loads(result.stdout)["job"]
        return job

    return run


JobFor = Callable[..., dict[str, Any]]


@pytest.fixture
def job_for(project: Path) -> JobFor:
    """``job_for(platform, **options)``: the job the workload builds for that platform, as a dict.

    It calls the workload directly, so container platforms need not be installed for it.
    """

    def build(platform: str, **options: Any) -> dict[str, Any]:
        values = {"workload": "lerobot", "platform": platform, "dataset_repo_id": "lerobot/pusht"} | options
        return build_job(load_plugins().settings(values, start=project)).to_dict()

    return build

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain.testing import run_cli


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

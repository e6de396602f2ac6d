"""Listing, help and dry-run never import the heavy SDKs (azure.ai.ml, mlflow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from robotrain.testing import heavy_imports_of

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "args",
    [["--list"], ["train", "--help"], ["train", "--dry-run"], ["plugins"], ["config"]],
    ids=["list", "help", "dry-run", "plugins", "config"],
)
def test_no_heavy_imports(project: Path, args: list[str]) -> None:
    result, heavy = heavy_imports_of(args, cwd=project)
    assert result.returncode == 0, result.stderr
    assert heavy == []


def test_probe_sees_a_heavy_import(project: Path) -> None:
    pytest.importorskip("mlflow")
    _, heavy = heavy_imports_of(["--list"], cwd=project, prelude="import mlflow")
    assert heavy[:1] == ["mlflow"]


def test_tasks_py_builds_the_same_namespace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for task in ("train", "stage-dataset", "register-model", "status", "logs", "cancel", "plugins", "config"):
        assert f"  {task} " in result.stdout

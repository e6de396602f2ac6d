"""Listing, help and dry-run never import the heavy SDKs (azure.ai.ml, mlflow)."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize(("python_switch", "cached"), [({}, True), ({"PYTHONDONTWRITEBYTECODE": "1"}, False)])
def test_robotrain_keeps_pythons_bytecode_setting_under_invoke(
    python_switch: dict[str, str], cached: bool
) -> None:
    """invoke turns bytecode caching off for its whole process; importing robotrain restores Python's own
    setting, so an install without .pyc files (uv's default) is not compiled again on every command."""
    like_invoke = (
        "import sys; sys.dont_write_bytecode = True; import robotrain; print(sys.dont_write_bytecode)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | python_switch
    result = subprocess.run(
        [sys.executable, "-c", like_invoke], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == str(not cached)

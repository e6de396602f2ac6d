"""Listing, help and dry-run never import the heavy SDKs (azure.ai.ml, mlflow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("azure.ai.ml", "azure.identity", "mlflow")
REPO = Path(__file__).resolve().parents[3]

PROBE = """
import sys
from invoke import Program
from robotrain.cli import build_namespace
program = Program(namespace=build_namespace(), name="robotrain", binary="invoke")
try:
    program.run(["invoke", *sys.argv[1:]], exit=False)
except SystemExit as stop:
    assert not stop.code, stop.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow",) or m.startswith(HEAVY))
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "args",
    [["--list"], ["train", "--help"], ["train", "--dry-run"], ["plugins"], ["config"]],
    ids=["list", "help", "dry-run", "plugins", "config"],
)
def test_no_heavy_imports(project: Path, args: list[str]) -> None:
    code = f"HEAVY = {HEAVY!r}\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY:\n" in result.stderr, result.stderr


def test_probe_sees_a_heavy_import(project: Path) -> None:
    pytest.importorskip("mlflow")
    code = f"HEAVY = {HEAVY!r}\nimport mlflow\n{PROBE}"
    result = subprocess.run(
        [sys.executable, "-c", code, "--list"], cwd=project, capture_output=True, text=True, check=False
    )
    assert "HEAVY:mlflow" in result.stderr, result.stderr


def test_tasks_py_builds_the_same_namespace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for task in ("train", "stage-dataset", "register-model", "status", "logs", "cancel", "plugins", "config"):
        assert f"  {task} " in result.stdout

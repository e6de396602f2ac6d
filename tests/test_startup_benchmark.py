"""The start-up and OSMO submit benchmark (``nox -s bench``) runs, so it cannot rot unnoticed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "startup.py"


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("bash", "git", "jq", "zip", "base64")),
    reason="the reference script needs bash, git, jq, zip and base64",
)
def test_startup_benchmark_runs_both_sides_on_the_same_input() -> None:
    """One run of each row; the benchmark itself fails when a side skips a stand-in call it should make."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--repeat", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == [
        "| invoke --list",
        "| invoke train --help",
        "| invoke train --platform osmo --payload inline",
        "| the same with --dry-run",
        "| the same submit, one source file edited before each run",
        "| invoke's own start: `invoke hello`, one-task tasks.py",
    ]

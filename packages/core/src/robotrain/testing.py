"""Helpers for testing robotrain and its plugins through the real command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

TRAIN_SH = """#!/usr/bin/env bash
echo "train.sh $*"
"""


def make_project(root: Path, config: str = "") -> Path:
    """A minimal project: ``src/training/scripts/train.sh`` and an optional robotrain.toml."""
    scripts = root / "src" / "training" / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    (scripts / "train.sh").write_text(TRAIN_SH)
    if config:
        (root / "robotrain.toml").write_text(config)
    return root


def run_cli(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``robotrain ARGS`` (the console script's namespace) in a fresh interpreter."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ROBOTRAIN_", "AZURE", "TASK", "NUM_ENVS", "CHECKPOINT_", "MLFLOW_"))
    }
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "robotrain", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Assert a non-zero exit with exactly one stderr line, no traceback, containing every fragment."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, f"expected failure, got 0; stdout={result.stdout!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]

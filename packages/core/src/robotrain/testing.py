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
    return _run_python(["-m", "robotrain", *args], cwd, env, timeout)


def start_cli(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``robotrain ARGS`` without waiting for it (its output piped), for tests that act meanwhile."""
    return subprocess.Popen(
        [sys.executable, "-m", "robotrain", *args], cwd=cwd, env=_environment(env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    """The caller's environment free of its robotrain settings, plus ``env``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ROBOTRAIN_", "AZURE", "TASK", "NUM_ENVS", "CHECKPOINT_", "MLFLOW_"))
    }
    environment.update(env or {})
    return environment


def _run_python(
    args: Sequence[str], cwd: Path, env: Mapping[str, str] | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args``, in an environment free of the caller's robotrain settings."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=_environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


HEAVY_MODULES = ("azure.ai.ml", "azure.identity", "mlflow")
"""SDKs that listing, ``--help``, ``--dry-run`` and discovery must never import."""

_IMPORT_PROBE = """
import sys
from invoke import Program
from robotrain.cli import build_namespace
program = Program(namespace=build_namespace(), name="robotrain", binary="invoke")
try:
    program.run(["invoke", *sys.argv[1:]], exit=False)
except SystemExit as stop:
    assert not stop.code, stop.code
heavy = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in {heavy!r}))
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


def heavy_imports_of(
    args: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    prelude: str = "",
    timeout: float = 120,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run a command in a fresh interpreter and list the ``HEAVY_MODULES`` it imported, sorted.

    ``prelude`` runs first (``"import mlflow"`` shows the probe can see an import).
    """
    code = prelude + "\n" + _IMPORT_PROBE.format(heavy=HEAVY_MODULES)
    result = _run_python(["-c", code, *args], cwd, env, timeout)
    reports = [line for line in result.stderr.splitlines() if line.startswith("HEAVY:")]
    assert reports, f"the probe did not report: {result.stderr!r}"
    names = reports[-1].removeprefix("HEAVY:")
    return result, names.split(",") if names else []


def job_state(project: Path, job_id: str) -> str:
    """The state ``status --output json`` reports for a job of ``project``."""
    import json

    result = run_cli(["status", job_id, "--output", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["state"])


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (Linux ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def process_group_members(group: int) -> list[int]:
    """The live processes of process group ``group`` (Linux ``/proc``)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if fields[0] not in ("Z", "X") and fields[2] == str(group):
                members.append(int(entry.name))
    return members


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Assert a non-zero exit with exactly one stderr line, no traceback, containing every fragment."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, f"expected failure, got 0; stdout={result.stdout!r}"
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, f"expected one error line, got: {result.stderr!r}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


ISAACLAB_TRAIN_SH = """#!/usr/bin/env bash
# The reference training entry point's shape: the interpreter comes from PYTHON, unquoted
# (it is a command with arguments on the Isaac Lab image).
set -euo pipefail
exec ${PYTHON:-python} -m training.scripts.launch "$@"
"""


def make_isaaclab_project(root: Path, config: str = "") -> Path:
    """A project whose ``train.sh`` runs ``${PYTHON} -m training.scripts.launch`` like the reference one."""
    make_project(root, config)
    (root / "src" / "training" / "scripts" / "train.sh").write_text(ISAACLAB_TRAIN_SH)
    return root

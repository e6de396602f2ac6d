"""The first local train interrupted at each step, then a train that succeeds; a timeout kills the job.

Interrupts are deterministic: robotrain's test hook (``ROBOTRAIN_TEST_SIGNAL_AT=STEP:SIGNAL``,
``robotrain.platforms.local_jobs.test_hook``) makes the process signal itself at a named step.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from robotrain.testing import assert_one_line_error, make_project, run_cli

pytest.importorskip("mlflow")

QUICK = """#!/usr/bin/env bash
echo "training with $*"
"""
BLOCKED = """#!/usr/bin/env bash
echo "waiting for a writer that never comes"
read -r line < "$FIFO"
echo "got $line"
"""
HOOK = "ROBOTRAIN_TEST_SIGNAL_AT"
STORE_TABLES = {"alembic_version", "experiments", "runs", "registered_models", "model_versions"}


def quick_project(root: Path, script: str = QUICK) -> Path:
    make_project(root, 'experiment-name = "interrupts"\n')
    (root / "src" / "training" / "scripts" / "train.sh").write_text(script)
    return root


def job_records(project: Path) -> list[dict[str, Any]]:
    jobs = project / ".robotrain" / "jobs"
    return [json.loads(p.read_text()) for p in sorted(jobs.glob("*/job.json"))] if jobs.is_dir() else []


def assert_nothing_half_built(project: Path) -> None:
    """No partial store or record; a store that exists is complete; each job folder has a final record."""
    state = project / ".robotrain"
    leftovers = (
        [p.name for p in state.rglob("*") if "partial" in p.name or p.suffix == ".tmp"]
        if state.is_dir()
        else []
    )
    assert leftovers == [], leftovers
    store = state / "mlflow.db"
    if store.exists():
        with sqlite3.connect(store) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert db.execute("SELECT version_num FROM alembic_version").fetchone()
        assert tables >= STORE_TABLES
    jobs = state / "jobs"
    for folder in jobs.iterdir() if jobs.is_dir() else ():
        record = json.loads((folder / "job.json").read_text())
        assert record["state"] in ("canceled", "completed"), record


def train_succeeds(project: Path) -> None:
    result = run_cli(["train"], cwd=project)
    assert result.returncode == 0, result.stderr + result.stdout
    job_id = result.stdout.strip().splitlines()[-1].split()[-1]
    status = run_cli(["status", job_id], cwd=project)
    assert status.stdout.strip() == f"local job {job_id}: completed", status.stderr
    assert "training with --mode train" in result.stdout


def interrupt(project: Path, step: str) -> str:
    """Ctrl-C the train at ``step``; its standard output."""
    result = run_cli(["train"], cwd=project, env={HOOK: f"{step}:SIGINT"})
    assert_one_line_error(result, "Ctrl-C")
    assert_nothing_half_built(project)
    if step != "supervisor-spawned":  # before that step the command cannot have started
        for record in job_records(project):
            assert "training with" not in Path(record["log"]).read_text()
    return result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("step", ["store-building", "store-built"])
def test_ctrl_c_while_the_first_train_builds_the_store(tmp_path: Path, step: str) -> None:
    project = quick_project(tmp_path / "project")
    said = interrupt(project, step).splitlines()
    assert said[0].startswith("robotrain: preparing local job local-"), said  # feedback before MLflow loads
    assert said[1].startswith("robotrain: creating the local MLflow store"), said
    assert not (project / ".robotrain" / "mlflow.db").exists()
    train_succeeds(project)


@pytest.mark.slow
def test_ctrl_c_at_each_later_step_leaves_nothing_half_done(tmp_path: Path) -> None:
    """The first train stopped once the store is ready, then each following train one step later."""
    project = quick_project(tmp_path / "project")
    steps = ["store-ready", "experiment-created", "job-folder-created", "workspace-unpacked",
             "job-recorded", "supervisor-spawned"]  # fmt: skip
    for step in steps:
        interrupt(project, step)
    assert all(record["state"] == "canceled" for record in job_records(project))
    train_succeeds(project)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["store-building", "store-built"])
def test_a_train_killed_while_building_the_store_leaves_no_store(tmp_path: Path, step: str) -> None:
    project = quick_project(tmp_path / "project")
    result = run_cli(["train"], cwd=project, env={HOOK: f"{step}:SIGKILL"})
    assert result.returncode == -9
    assert not (project / ".robotrain" / "mlflow.db").exists()
    assert list((project / ".robotrain").glob("mlflow.db.*.partial*")) or step == "store-building"
    train_succeeds(project)
    assert_nothing_half_built(project)  # the killed run's partial store is gone too


@pytest.mark.slow
def test_cancel_after_the_supervisor_recorded_itself_never_starts_the_command(tmp_path: Path) -> None:
    """The supervisor is interrupted right after recording its pid, before starting the command."""
    project = quick_project(tmp_path / "project")
    result = run_cli(["train"], cwd=project, env={HOOK: "supervisor-recorded:SIGTERM"})
    line = assert_one_line_error(result, "canceled")
    (record,) = job_records(project)
    assert record["state"] == "canceled", record
    assert record["id"] in line
    assert "training with" not in result.stdout + Path(record["log"]).read_text()
    assert record.get("group") is None


@pytest.mark.slow
def test_a_broken_store_is_one_line_with_the_fix(tmp_path: Path) -> None:
    project = quick_project(tmp_path / "project")
    (project / ".robotrain").mkdir()
    (project / ".robotrain" / "mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x00" * 80)
    result = run_cli(["train"], cwd=project)
    assert_one_line_error(result, "mlflow.db is damaged", "mv ", "mlflow.db.broken")
    assert job_records(project) == []


@pytest.mark.slow
def test_a_store_missing_tables_is_one_line_with_the_fix(tmp_path: Path) -> None:
    project = quick_project(tmp_path / "project")
    (project / ".robotrain").mkdir()
    with sqlite3.connect(project / ".robotrain" / "mlflow.db") as db:
        db.execute("CREATE TABLE experiments (id INTEGER)")
    result = run_cli(["train"], cwd=project)
    assert_one_line_error(result, "damaged", "tables missing", "alembic_version")


@pytest.mark.slow
def test_timeout_kills_the_job_and_records_it_failed(tmp_path: Path) -> None:
    """The command blocks on a fifo nobody writes: only the timeout can end it."""
    project = quick_project(tmp_path / "project", BLOCKED)
    fifo = tmp_path / "never-written"
    os.mkfifo(fifo)
    result = run_cli(["train", "--timeout", "1s", "--env", f"FIFO={fifo}"], cwd=project)
    line = assert_one_line_error(result, "failed: timed out after 1s", "output.log")
    assert "waiting for a writer" in result.stdout
    assert "timed out after 1s" in result.stdout
    (record,) = job_records(project)
    assert record["state"] == "failed"
    assert record["reason"] == "timed out after 1s"
    assert record["timeout_seconds"] == 1
    assert record["id"] in line
    status = run_cli(["status", record["id"], "--output", "json"], cwd=project)
    assert json.loads(status.stdout)["details"]["reason"] == "timed out after 1s"


def test_local_dry_run_shows_the_timeout(tmp_path: Path) -> None:
    project = quick_project(tmp_path / "project")
    result = run_cli(["train", "--dry-run", "--timeout", "1h30m"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "\ntimeout: 1h30m\n" in result.stdout

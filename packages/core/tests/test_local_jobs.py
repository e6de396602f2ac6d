"""Local jobs seen from other processes: status, logs, cancel, a killed job, Ctrl-C, a failing job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.testing import (
    assert_one_line_error,
    job_state,
    make_project,
    process_alive,
    process_group_members,
    run_cli,
)

pytest.importorskip("mlflow")

TICKING = """#!/usr/bin/env bash
echo "started with $*"
echo "tracking at $MLFLOW_TRACKING_URI experiment $MLFLOW_EXPERIMENT_NAME"
i=0
while [ "$i" -lt "${TICKS:-100000}" ]; do echo "tick $i"; i=$((i + 1)); sleep 0.05; done
echo "done"
"""
FAILING = """#!/usr/bin/env bash
echo "about to fail"
exit 3
"""


def project_with(root: Path, script: str) -> Path:
    make_project(root, 'experiment-name = "jobs"\n')
    (root / "src" / "training" / "scripts" / "train.sh").write_text(script)
    return root


def wait_for(condition: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return value


def record(project: Path, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / ".robotrain" / "jobs" / job_id / "job.json").read_text())
    return data


def detach(project: Path, env: dict[str, str] | None = None) -> str:
    result = run_cli(["train", "--detach"], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip().split()[-1]
    assert job_id.startswith("local-")
    return job_id


@pytest.fixture
def new_project(tmp_path: Path) -> Path:
    """A project that has never trained: no ``.robotrain`` folder yet."""
    return project_with(tmp_path / "project", TICKING)


@pytest.fixture
def ticking(new_project: Path, seed_store: Callable[[Path], Path]) -> Path:
    """A project with its MLflow store, as after a first train (the store's creation is tested elsewhere)."""
    return seed_store(new_project)


@pytest.mark.slow
def test_status_logs_and_cancel_from_another_process(ticking: Path) -> None:
    job_id = detach(ticking)
    assert job_state(ticking, job_id) == "running"
    wait_for(lambda: "tick 2" in run_cli(["logs", job_id], cwd=ticking).stdout)
    logs = run_cli(["logs", job_id], cwd=ticking).stdout
    assert "started with --mode train" in logs
    assert f"tracking at sqlite:///{ticking / '.robotrain' / 'mlflow.db'} experiment jobs" in logs
    canceled = run_cli(["cancel", job_id], cwd=ticking)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"local job {job_id}: canceled"
    assert job_state(ticking, job_id) == "canceled"
    assert not process_alive(record(ticking, job_id)["pid"])


def training_group(project: Path, job_id: str) -> int:
    group = wait_for(lambda: record(project, job_id).get("group"))
    assert isinstance(group, int)
    return group


@pytest.mark.slow
def test_killing_the_supervisor_leaves_no_training_process(ticking: Path) -> None:
    job_id = detach(ticking)
    group = training_group(ticking, job_id)
    assert process_group_members(group), "the training should be running"
    os.kill(record(ticking, job_id)["pid"], signal.SIGKILL)
    wait_for(lambda: not process_group_members(group))  # the watcher stops the training's group
    assert job_state(ticking, job_id) == "failed"
    assert "died" in record(ticking, job_id)["reason"]


@pytest.mark.slow
def test_training_that_outlives_its_supervisor_is_running_until_canceled(ticking: Path) -> None:
    job_id = detach(ticking)
    group = training_group(ticking, job_id)
    supervisor = record(ticking, job_id)["pid"]
    os.killpg(supervisor, signal.SIGKILL)  # the supervisor and its watcher, not the training
    wait_for(lambda: not process_alive(supervisor))
    assert process_group_members(group)
    assert job_state(ticking, job_id) == "running"
    assert "cancel" in record(ticking, job_id)["reason"]
    canceled = run_cli(["cancel", job_id], cwd=ticking)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"local job {job_id}: canceled"
    assert not process_group_members(group)
    assert job_state(ticking, job_id) == "canceled"


@pytest.mark.slow
def test_logs_follow_returns_when_the_job_ends(ticking: Path) -> None:
    job_id = detach(ticking, env={"TICKS": "20"})
    result = run_cli(["logs", job_id, "--follow"], cwd=ticking)
    assert result.returncode == 0, result.stderr
    assert "tick 19\ndone\n" in result.stdout
    assert f"local job {job_id} completed (exit code 0)" in result.stdout
    assert job_state(ticking, job_id) == "completed"


@pytest.mark.slow
def test_ctrl_c_on_a_foreground_run_cancels_the_job(ticking: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "MLFLOW_"))}
    process = subprocess.Popen([sys.executable, "-m", "robotrain", "train"], cwd=ticking, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    streamed = ""
    while "tick 1" not in streamed:  # Ctrl-C once the run is streaming to the terminal
        line = process.stdout.readline()
        assert line, "train ended before streaming its output"
        streamed += line
    job_dir = next(iter((ticking / ".robotrain" / "jobs").iterdir()))
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    stdout = streamed + rest
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_one_line_error(result, job_dir.name, "canceled", "output.log")
    assert "tick 0" in stdout
    assert record(ticking, job_dir.name)["state"] == "canceled"
    assert not process_alive(record(ticking, job_dir.name)["pid"])


def test_ctrl_c_while_the_job_starts_cancels_it(ticking: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "MLFLOW_"))}
    process = subprocess.Popen([sys.executable, "-m", "robotrain", "train"], cwd=ticking, env=environment,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    jobs = ticking / ".robotrain" / "jobs"
    job_file = wait_for(lambda: next(jobs.glob("*/job.json"), None) if jobs.is_dir() else None)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert_one_line_error(result, job_file.parent.name, "canceled")
    final = json.loads(job_file.read_text())
    assert final["state"] == "canceled", json.dumps(final)
    assert "pid" not in final or not process_alive(final["pid"])


@pytest.mark.slow
def test_a_failing_job_fails_train_in_one_line_naming_the_log(
    tmp_path: Path, seed_store: Callable[[Path], Path]
) -> None:
    project = seed_store(project_with(tmp_path / "project", FAILING))
    result = run_cli(["train"], cwd=project)
    line = assert_one_line_error(result, "failed (exit code 3)", "output.log")
    assert "about to fail" in result.stdout
    job_id = line.split("local job ")[1].split()[0]
    assert job_state(project, job_id) == "failed"


def test_unknown_job_is_one_line(new_project: Path) -> None:
    assert_one_line_error(run_cli(["status", "local-nope"], cwd=new_project), "local-nope", ".robotrain")


def test_dry_run_shows_what_would_run_without_importing_mlflow(new_project: Path) -> None:
    code = (
        "import sys\nfrom robotrain.cli import main\nsys.argv = ['robotrain', 'train', '--dry-run']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('MLFLOW_IMPORTED' if 'mlflow' in sys.modules else 'MLFLOW_NOT_IMPORTED')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=new_project, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    spec_text, _, verdict = result.stdout.rpartition("MLFLOW_")
    assert verdict.strip() == "NOT_IMPORTED"
    spec = yaml.safe_load(spec_text)
    assert spec["command"].startswith("bash training/scripts/train.sh --mode train")
    assert spec["tracking"]["uri"] == f"sqlite:///{new_project / '.robotrain' / 'mlflow.db'}"
    assert spec["tracking"]["experiment"] == "jobs"
    assert spec["environment"]["MLFLOW_EXPERIMENT_NAME"] == "jobs"
    assert spec["workspace"].startswith(str(new_project / ".robotrain" / "jobs"))
    assert not (new_project / ".robotrain" / "jobs").exists()


@pytest.mark.slow
def test_secrets_come_from_your_environment_and_are_never_written(
    ticking: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from robotrain.job import Image, JobSpec, SecretRef
    from robotrain.platforms import local
    from robotrain.plugins import load_plugins

    monkeypatch.setenv("HF_TOKEN", "s3cr3t-value")
    settings = load_plugins().settings({}, start=ticking)
    job = JobSpec(
        workload="test", name="secret", image=Image("none", "none", "0"), experiment="secrets",
        command=("bash", "-c", 'echo "token length ${#HF_TOKEN}"'),
        secrets=(SecretRef("HF_TOKEN", "hf", "token"),),
    )  # fmt: skip
    submission = local.robotrain_submit(platform="local", job=job, settings=settings)
    assert submission is not None
    assert submission.details["state"] == "completed"
    job_dir = ticking / ".robotrain" / "jobs" / submission.job_id
    assert "token length 12" in (job_dir / "output.log").read_text()
    assert "s3cr3t-value" not in (job_dir / "job.json").read_text()
    assert "s3cr3t-value" not in (job_dir / "output.log").read_text()
    assert "s3cr3t-value" not in capsys.readouterr().out
    assert record(ticking, submission.job_id)["secrets"] == ["HF_TOKEN"]

"""The job lifecycle on the local platform with real jobs: jobs, rerun, download, recovery."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from robotrain.errors import UserError
from robotrain.history import record_submission
from robotrain.hookspecs import hookimpl
from robotrain.job import JobStatus, Submission
from robotrain.lifecycle import WATCH_FAILURES, wait_for_end
from robotrain.plugins import Plugins
from robotrain.testing import assert_one_line_error, make_project, run_cli, start_cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "cartpole"

pytest.importorskip("mlflow")

SCRIPTED_TRAIN_SH = """#!/usr/bin/env bash
# --num_envs N: more than 2 environments "run out of memory"; FAIL=1 fails; RELEASE=path waits for it.
set -u
envs=0; while [ $# -gt 0 ]; do [ "$1" = --num_envs ] && envs=$2; shift; done
echo "training with $envs environments"
if [ -n "${RELEASE:-}" ]; then while [ ! -e "$RELEASE" ]; do sleep 0.05; done; fi
if [ "$envs" -gt 2 ]; then echo "MemoryError: cannot allocate $envs environments" >&2; exit 1; fi
[ -n "${FAIL:-}" ] && exit 3
mkdir -p "$TRAINING_CHECKPOINT_OUTPUT/sub"
printf 'weights of %s envs' "$envs" > "$TRAINING_CHECKPOINT_OUTPUT/model.pt"
head -c 300000 /dev/zero > "$TRAINING_CHECKPOINT_OUTPUT/sub/big.bin"
"""


def scripted_project(root: Path) -> Path:
    project = make_project(root, "num-envs = 2\nskip-register-checkpoint = true\n")
    (project / "src" / "training" / "scripts" / "train.sh").write_text(SCRIPTED_TRAIN_SH)
    return project


def cartpole_project(root: Path, iterations: int) -> Path:
    shutil.copytree(EXAMPLE, root / "training", ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    (root / "robotrain.toml").write_text(
        'training-dir = "training"\ntask = "CartPole-v1"\nnum-envs = 4\n'
        f'max-iterations = {iterations}\nexperiment-name = "cartpole"\nskip-register-checkpoint = true\n'
    )
    return root


def submit(project: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(["train", *args], cwd=project, env=env, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout.strip().splitlines()[-1].split()[-1]


def jobs(project: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli(["jobs", "--output", "json", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, Any]] = json.loads(result.stdout)
    return listed


def job_record(project: Path, job_id: str) -> dict[str, Any]:
    path = project / ".robotrain" / "jobs" / job_id / "job.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def wait_for(condition: Any, seconds: float = 120) -> None:
    """Poll a condition the job under test brings about (the job's own progress, not a delay)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return scripted_project(tmp_path / "project")


@pytest.mark.slow
def test_jobs_lists_states_newest_first_with_filters(project: Path, tmp_path: Path) -> None:
    completed = submit(project)
    failed_run = run_cli(["train", "--env", "FAIL=1"], cwd=project)
    assert failed_run.returncode == 2
    release = tmp_path / "release"
    running = submit(project, "--detach", "--env", f"RELEASE={release}")
    record_submission(project / ".robotrain", Submission("gone", "g-1"))  # its plugin since uninstalled

    listed = jobs(project)
    assert [(job["platform"], job["state"], job["stale"]) for job in listed] == [
        ("gone", None, True), ("local", "running", False), ("local", "failed", False),
        ("local", "completed", False),
    ]  # fmt: skip
    assert listed[3]["job_id"] == completed and listed[1]["job_id"] == running
    assert "platform 'gone' is not installed" in listed[0]["stale_reason"]
    assert listed[3]["workload"] == "isaaclab" and listed[3]["name"] == "isaaclab-training"

    assert [job["job_id"] for job in jobs(project, "--state", "completed")] == [completed]
    assert [job["platform"] for job in jobs(project, "--platform", "local")] == ["local"] * 3
    assert len(jobs(project, "--limit", "2")) == 2

    table = run_cli(["jobs"], cwd=project)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["JOB", "PLATFORM", "WORKLOAD", "NAME", "ATTEMPT", "STATE", "SUBMITTED", "URL"]
    assert "unknown (stale)" in lines[1] and lines[-1].startswith("stale = last known state (gone:")

    release.touch()
    wait_for(lambda: job_record(project, running).get("state") == "completed")
    assert jobs(project, "--platform", "local")[0]["state"] == "completed"


@pytest.mark.slow
def test_rerun_submits_the_same_job_and_refuses_changed_code(project: Path) -> None:
    original = submit(project, "--num-envs", "1", "--env", "STAGE=one")
    dry_run = run_cli(["train", "--num-envs", "1", "--env", "STAGE=one", "--dry-run"], cwd=project)
    rerun_dry = run_cli(["rerun", original, "--dry-run", "--output", "json"], cwd=project)
    assert rerun_dry.returncode == 0, rerun_dry.stderr
    shown = json.loads(rerun_dry.stdout)
    assert shown["spec"] == dry_run.stdout
    assert shown["changes"] == {}

    changed = json.loads(run_cli(["rerun", original, "--dry-run", "--output", "json", "--num-envs", "2"],
                                 cwd=project).stdout)  # fmt: skip
    assert changed["changes"]["settings.num_envs"] == {"original": 1, "rerun": 2}

    again = run_cli(["rerun", original], cwd=project)
    assert again.returncode == 0, again.stderr
    listed = jobs(project)
    assert listed[0]["rerun_of"] == original and listed[0]["state"] == "completed"
    assert listed[0]["job"] == listed[1]["job"] and listed[0]["settings"] == listed[1]["settings"]
    rerun_command = job_record(project, listed[0]["job_id"])["command"]
    assert rerun_command == job_record(project, original)["command"]

    (project / "src" / "training" / "extra.py").write_text("print('new code')\n")
    refused = run_cli(["rerun", original], cwd=project)
    assert_one_line_error(refused, "training code changed since job", "--use-current-code")
    assert len(jobs(project)) == 2
    assert run_cli(["rerun", original, "--use-current-code"], cwd=project).returncode == 0
    assert_one_line_error(run_cli(["rerun", "local-nope"], cwd=project), "no job 'local-nope'", "invoke jobs")


@pytest.mark.slow
def test_download_brings_back_the_checkpoint_and_resumes(project: Path, tmp_path: Path) -> None:
    job_id = submit(project)
    kept = project / ".robotrain" / "jobs" / job_id / "outputs" / "checkpoints"
    target = tmp_path / "fetched"
    result = run_cli(["download", job_id, "--to", str(target)], cwd=project)
    assert result.returncode == 0, result.stderr
    for name in ("model.pt", "sub/big.bin"):
        assert (target / "checkpoints" / name).read_bytes() == (kept / name).read_bytes()
    assert "training with 2 environments" in (target / "logs" / "output.log").read_text()

    big = target / "checkpoints" / "sub" / "big.bin"
    big.rename(big.with_name("big.bin.part"))
    with big.with_name("big.bin.part").open("r+b") as part:
        part.truncate(100_000)
    model = target / "checkpoints" / "model.pt"
    os.utime(model, (1, 1))
    resumed = run_cli(["download", job_id, "--to", str(target)], cwd=project)
    assert resumed.returncode == 0, resumed.stderr
    assert big.read_bytes() == (kept / "sub" / "big.bin").read_bytes()
    assert not big.with_name("big.bin.part").exists()
    assert model.stat().st_mtime == 1  # complete, so not fetched again

    default = run_cli(["download", job_id], cwd=project)
    assert default.returncode == 0, default.stderr
    assert (project / "downloads" / job_id / "checkpoints" / "model.pt").is_file()


@pytest.mark.slow
def test_out_of_memory_retries_with_half_the_environments(project: Path) -> None:
    failed = run_cli(["train", "--num-envs", "8"], cwd=project)
    assert_one_line_error(failed, "failed: out of memory")

    result = run_cli(["train", "--num-envs", "8", "--retries", "3", "--on-oom", "halve-envs",
                      "--poll-interval", "0.05"], cwd=project)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "attempt 2 of 4, with --num-envs 4" in result.stderr
    assert "attempt 3 of 4, with --num-envs 2" in result.stderr
    attempts = jobs(project)[:3]
    assert [(job["attempt"], job["state"]) for job in attempts] == [(3, "completed"), (2, "failed"),
                                                                     (1, "failed")]  # fmt: skip
    assert attempts[0]["first_attempt"] == attempts[2]["job_id"] == attempts[1]["first_attempt"]
    assert attempts[0]["settings"]["num_envs"] == 2


def test_retries_need_train_to_watch(project: Path) -> None:
    result = run_cli(["train", "--retries", "1", "--detach"], cwd=project)
    assert_one_line_error(result, "--retries needs train to watch the job", "--detach")
    assert not (project / ".robotrain" / "jobs").exists()


@pytest.mark.slow
def test_a_local_job_killed_mid_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    import mlflow

    project = cartpole_project(tmp_path / "project", iterations=60)
    train = start_cli(["train", "--retries", "1", "--on-preemption", "resume", "--poll-interval", "0.1",
                       "--env", "CHECKPOINT_INTERVAL=5"], cwd=project)  # fmt: skip
    jobs_dir = project / ".robotrain" / "jobs"

    def first_log() -> str:
        logs = sorted(jobs_dir.glob("*/output.log")) if jobs_dir.is_dir() else []
        return logs[0].read_text() if logs else ""

    wait_for(lambda: "checkpoint (iteration 10) saved" in first_log())
    (first,) = [path.name for path in jobs_dir.iterdir()]
    os.killpg(int(job_record(project, first)["group"]), signal.SIGKILL)
    stdout, stderr = train.communicate(timeout=300)
    assert train.returncode == 0, stderr + stdout
    assert f"local job {first} preempted; attempt 2 of 2, resuming from" in stderr

    listed = jobs(project)
    assert [(job["attempt"], job["state"]) for job in listed] == [(2, "completed"), (1, "preempted")]
    second = listed[0]["job_id"]
    assert listed[0]["first_attempt"] == first
    assert job_record(project, second)["checkpoint"]["mode"] == "resume"

    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cartpole").experiment_id
    runs = sorted(client.search_runs([experiment]), key=lambda run: run.info.start_time)
    assert len(runs) == 2
    steps = [sorted(m.step for m in client.get_metric_history(r.info.run_id, "mean_return")) for r in runs]
    resumed_at = int(runs[1].data.params["start_iteration"])
    assert runs[1].data.params["mode"] == "resume"
    assert resumed_at >= 10 and resumed_at % 5 == 0 and resumed_at <= steps[0][-1] + 1
    assert steps[0][0] == 0
    assert steps[1] == list(range(resumed_at, resumed_at + 60))


class FlakyPlatform:
    """A platform whose state checks fail ``failures`` times before answering (a network blip)."""

    def __init__(self, failures: int, state: str = "completed") -> None:
        self.failures, self.state, self.checks = failures, state, 0

    @hookimpl
    def robotrain_status(self, platform: str, job_id: str, settings: Any) -> JobStatus | None:
        self.checks += 1
        if self.checks <= self.failures:
            raise UserError("connection refused")
        return JobStatus(platform, job_id, self.state)


def watch(tmp_path: Path, platform: FlakyPlatform) -> tuple[JobStatus, list[str]]:
    plugins = Plugins(warn=print)
    plugins.load([])
    plugins.manager.register(platform, name="flaky")
    settings = plugins.settings({"poll_interval": "0.05"}, start=make_project(tmp_path / "flaky"))
    said: list[str] = []
    return wait_for_end(plugins, "flaky", "f-1", settings, said.append), said


def test_watching_a_job_survives_failed_state_checks(tmp_path: Path) -> None:
    status, said = watch(tmp_path, FlakyPlatform(failures=WATCH_FAILURES - 1))
    assert status.state == "completed"
    retry = "robotrain: could not read the state of flaky job f-1 (connection refused); trying again"
    assert said.count(retry) == WATCH_FAILURES - 1
    assert said[-1] == "robotrain: flaky job f-1: completed"


def test_watching_stops_after_too_many_failed_checks_in_a_row(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"stopped watching flaky job f-1 after 10 failed state checks"):
        watch(tmp_path, FlakyPlatform(failures=WATCH_FAILURES))

"""Distributed jobs on the local platform: N processes on this machine, each with its rank variables.

The example payload trains data-parallel on two CPU processes and only rank 0 tracks; a failing
process fails the job and stops the others; cancel stops every process; one machine only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
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

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "cartpole"
MODEL = "cartpole-v1"
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR",
                  "MASTER_PORT")  # fmt: skip
SCRIPT = """#!/usr/bin/env bash
echo $$ > "$PIDS/$RANK"
case "$BEHAVIOUR" in
  fail-on-rank-1)
    if [ "$RANK" = 1 ]; then
      while [ ! -s "$PIDS/0" ]; do sleep 0.05; done
      echo "rank 1 fails"
      exit 3
    fi
    exec sleep 600 ;;
  rank-1-outlives-rank-0)
    echo "rank $RANK of $WORLD_SIZE at $MASTER_ADDR:$MASTER_PORT, local rank $LOCAL_RANK of $LOCAL_WORLD_SIZE"
    if [ "$RANK" = 1 ]; then
      while [ ! -s "$PIDS/0" ]; do sleep 0.05; done
      while kill -0 "$(cat "$PIDS/0")" 2>/dev/null; do sleep 0.05; done
      echo "finished after rank 0"
    fi ;;
  tick)
    while true; do echo "tick"; sleep 0.05; done ;;
esac
"""
JOB_ID = re.compile(r"\blocal-\d{8}-\d{6}-[0-9a-f]{4}\b")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, seed_store: Callable[[Path], Path]) -> Path:
    """One project (one MLflow store) for the tests here; train.sh does what ``BEHAVIOUR`` names."""
    root = make_project(
        tmp_path_factory.mktemp("distributed") / "project", 'experiment-name = "distributed"\n'
    )
    (root / "src" / "training" / "scripts" / "train.sh").write_text(SCRIPT)
    return seed_store(root)


def train(
    project: Path, pids: Path, behaviour: str, *args: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """``train --gpus 2`` whose processes write their pids into ``pids``; the result and the job's id."""
    variables = ["--env", f"PIDS={pids}", "--env", f"BEHAVIOUR={behaviour}"]
    result = run_cli(["train", "--gpus", "2", *variables, *args], cwd=project)
    found = JOB_ID.search(result.stdout + result.stderr)
    assert found, result.stderr + result.stdout
    return result, found.group()


def record(project: Path, job_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / ".robotrain" / "jobs" / job_id / "job.json").read_text())
    return data


def job_ids(project: Path) -> list[str]:
    jobs = project / ".robotrain" / "jobs"
    return sorted(p.name for p in jobs.iterdir()) if jobs.is_dir() else []


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Poll ``condition`` (which may fail while a file is being written) until it holds."""
    deadline = time.monotonic() + seconds
    while not _holds(condition):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except FileNotFoundError:
        return False


def rank_pids(pids: Path) -> list[int]:
    return [int((pids / str(rank)).read_text()) for rank in range(2)]


def weights_sha256(weights: Path) -> str:
    """The checkpoint's weights hashed as the example hashes them: sorted names, float64 bytes."""
    digest = hashlib.sha256()
    with np.load(weights) as params:
        for key in sorted(params.files):
            digest.update(key.encode())
            digest.update(np.ascontiguousarray(params[key], dtype=np.float64).tobytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_the_example_trains_on_two_processes_and_rank_0_alone_tracks(
    tmp_path: Path, seed_store: Callable[[Path], Path]
) -> None:
    pytest.importorskip("gymnasium")
    import mlflow

    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project / "training", ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    (project / "robotrain.toml").write_text(
        'training-dir = "training"\ntask = "CartPole-v1"\nnum-envs = 2\nmax-iterations = 3\n'
        'experiment-name = "cartpole"\n'
    )
    result = run_cli(["train", "--gpus", "2"], cwd=seed_store(project), timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    job_id = result.stdout.strip().splitlines()[-1].split()[-1]
    assert "--distributed" in result.stdout
    assert "robotrain: 2 processes (RANK 0-1) on this machine" in result.stdout
    assert job_state(project, job_id) == "completed"

    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cartpole").experiment_id])
    assert run.data.params["world_size"] == "2"
    per_rank = run.data.params["rank_weights_sha256"].split(",")
    assert len(per_rank) == 2
    assert per_rank[0] == per_rank[1] == run.data.params["final_weights_sha256"]
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    assert version.run_id == run.info.run_id
    registered = Path(mlflow.artifacts.download_artifacts(version.source, tracking_uri=uri,
                                                          dst_path=str(tmp_path / "registered")))  # fmt: skip
    assert weights_sha256(registered / "weights.npz") == per_rank[0]


@pytest.mark.slow
def test_one_failing_process_fails_the_job_and_stops_the_others(project: Path, tmp_path: Path) -> None:
    result, job_id = train(project, tmp_path, "fail-on-rank-1", "--timeout", "120")
    stopped = "failed: rank 1 exited with code 3; the other processes were stopped"
    assert_one_line_error(result, job_id, stopped, "(exit code 3)", "output.log")
    assert "[rank 1] rank 1 fails" in result.stdout
    assert job_state(project, job_id) == "failed"
    assert not any(process_alive(pid) for pid in rank_pids(tmp_path))
    assert not process_group_members(record(project, job_id)["group"])


@pytest.mark.slow
def test_the_job_completes_when_every_process_completed(project: Path, tmp_path: Path) -> None:
    result, job_id = train(project, tmp_path, "rank-1-outlives-rank-0")
    assert result.returncode == 0, result.stderr + result.stdout
    port = record(project, job_id)["master_port"]
    lines = (project / ".robotrain" / "jobs" / job_id / "output.log").read_text().splitlines()
    assert f"rank 0 of 2 at 127.0.0.1:{port}, local rank 0 of 2" in lines
    assert f"[rank 1] rank 1 of 2 at 127.0.0.1:{port}, local rank 1 of 2" in lines
    assert lines.index("[rank 1] finished after rank 0") < lines.index(
        f"robotrain: local job {job_id} completed (exit code 0)"
    )
    assert job_state(project, job_id) == "completed"


def started_ranks(project: Path, pids: Path, *args: str) -> tuple[str, list[int]]:
    """A detached ticking job once both its processes run: its id and their pids."""
    result, job_id = train(project, pids, "tick", "--detach", *args)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: all((pids / str(rank)).read_text().strip() for rank in range(2)))
    return job_id, rank_pids(pids)


@pytest.mark.slow
def test_cancel_stops_every_process(project: Path, tmp_path: Path) -> None:
    job_id, pids = started_ranks(project, tmp_path)
    assert job_state(project, job_id) == "running"
    assert all(process_alive(pid) for pid in pids)
    canceled = run_cli(["cancel", job_id], cwd=project)
    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"local job {job_id}: canceled"
    assert not any(process_alive(pid) for pid in pids)
    assert not process_group_members(record(project, job_id)["group"])


@pytest.mark.slow
def test_killing_the_supervisor_leaves_no_process_behind(project: Path, tmp_path: Path) -> None:
    job_id, pids = started_ranks(project, tmp_path)
    os.kill(record(project, job_id)["pid"], signal.SIGKILL)
    wait_for(lambda: not any(process_alive(pid) for pid in pids))  # the watcher stops the whole group
    assert job_state(project, job_id) == "failed"


@pytest.mark.slow
def test_a_timeout_stops_every_process(project: Path, tmp_path: Path) -> None:
    result, job_id = train(project, tmp_path, "tick", "--timeout", "3s")
    assert_one_line_error(result, job_id, "failed: timed out after 3s")
    assert not any(process_alive(pid) for pid in rank_pids(tmp_path))
    assert not process_group_members(record(project, job_id)["group"])


def test_several_nodes_are_refused_in_one_line(project: Path) -> None:
    before = job_ids(project)
    for args in (["--nodes", "2"], ["--nodes", "2", "--dry-run"]):
        result = run_cli(["train", *args], cwd=project)
        assert_one_line_error(result, "--nodes 2", "this machine only", "--nodes 1")
    assert job_ids(project) == before


def test_more_processes_than_cpus_are_refused_in_one_line(project: Path) -> None:
    from robotrain.platforms.local_jobs import max_processes

    before = job_ids(project)
    too_many = max_processes() + 1
    result = run_cli(["train", "--gpus", str(too_many)], cwd=project)
    assert_one_line_error(result, f"--gpus {too_many}", f"at most {max_processes()} processes",
                          f"--gpus {max_processes()} or fewer")  # fmt: skip
    assert job_ids(project) == before


def test_dry_run_shows_each_process_and_its_variables(project: Path) -> None:
    before = job_ids(project)
    result = run_cli(["train", "--gpus", "2", "--dry-run"], cwd=project)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)
    assert spec["command"].endswith(" --distributed")
    processes = spec["processes"]
    assert [p["log_prefix"] for p in processes] == ["", "[rank 1] "]
    for rank, process in enumerate(processes):
        variables = process["environment"]
        assert [variables[name] for name in RANK_VARIABLES] == [
            str(rank), str(rank), "2", "2", "0", "127.0.0.1", "<a free loopback port, chosen at start>"
        ]  # fmt: skip
        assert variables["OMP_NUM_THREADS"] == "1"
    single = yaml.safe_load(run_cli(["train", "--gpus", "0", "--dry-run"], cwd=project).stdout)
    assert single["processes"] == [{"log_prefix": "", "environment": {}}]
    assert not single["command"].endswith("--distributed")
    assert job_ids(project) == before


@pytest.mark.slow
def test_a_job_that_launches_its_processes_runs_once_with_the_node_variables(project: Path) -> None:
    from robotrain.job import Image, JobSpec
    from robotrain.platforms import local
    from robotrain.plugins import load_plugins

    settings = load_plugins().settings({}, start=project)
    job = JobSpec(
        workload="test", name="launcher", image=Image("none", "none", "0"), experiment="launcher",
        command=("bash", "-c", 'echo "launcher: $NNODES $NODE_RANK $NPROC_PER_NODE $MASTER_ADDR:$MASTER_PORT '
                               'rank=${RANK-unset} threads=${OMP_NUM_THREADS-unset}"'),
        processes_per_node=2, launches_processes=True,
    )  # fmt: skip
    submission = local.robotrain_submit(platform="local", job=job, settings=settings)
    assert submission is not None
    assert submission.details["state"] == "completed"
    port = record(project, submission.job_id)["master_port"]
    log = (project / ".robotrain" / "jobs" / submission.job_id / "output.log").read_text()
    launched = [line for line in log.splitlines() if line.startswith("launcher:")]
    assert launched == [f"launcher: 1 0 2 127.0.0.1:{port} rank=unset threads=unset"]

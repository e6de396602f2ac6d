"""Several local trains started at once in a new project: one creates the store, all complete and register."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gymnasium")
mlflow = pytest.importorskip("mlflow")

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "cartpole"
MODEL = "cartpole-v1"


def cartpole_project(root: Path) -> Path:
    shutil.copytree(EXAMPLE, root / "training", ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    (root / "robotrain.toml").write_text(
        'training-dir = "training"\ntask = "CartPole-v1"\nnum-envs = 4\nmax-iterations = 2\n'
        'experiment-name = "cartpole"\n'
    )
    return root


@pytest.mark.slow
def test_three_trains_started_at_once_in_a_new_project_all_complete_and_register(tmp_path: Path) -> None:
    project = cartpole_project(tmp_path / "project")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "MLFLOW_"))}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "robotrain", "train", "--output", "json", "--env", f"SEED={seed}"],
            cwd=project,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2, 3)
    ]
    results = [process.communicate(timeout=600) for process in processes]
    for process, (stdout, stderr) in zip(processes, results, strict=True):
        assert process.returncode == 0, stderr + stdout
        assert "Traceback" not in stderr
    created = sum("creating the local MLflow store" in stderr for _, stderr in results)
    assert created == 1, "exactly one train creates the store; the others wait for it"
    job_ids = [json.loads(stdout)["job_id"] for stdout, _ in results]  # the job's own output went to stderr
    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]
    runs_of_versions = {v.run_id for v in versions}
    for job_id in job_ids:
        record = json.loads((project / ".robotrain" / "jobs" / job_id / "job.json").read_text())
        assert record["state"] == "completed"
        log = (project / ".robotrain" / "jobs" / job_id / "output.log").read_text()
        assert "registered the final checkpoint as model cartpole-v1 version" in log
        assert any(run_id in log for run_id in runs_of_versions)
    assert not list((project / ".robotrain").glob("*partial*"))

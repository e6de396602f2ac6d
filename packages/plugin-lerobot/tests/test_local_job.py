"""A lerobot job run for real on the local platform, LeRobot's environment prepared as a first job leaves it.

The environment under ``.robotrain/lerobot-envs/`` holds a stand-in ``lerobot-train`` (the
real one is in ``nox -s lerobot-e2e``) that checks the staged dataset is where the job says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from robotrain.testing import run_cli

LEROBOT_TRAIN = """#!/usr/bin/env bash
# Stand-in for lerobot-train: the dataset root must hold the staged files; log and checkpoint like LeRobot.
for arg in "$@"; do
  case "$arg" in
    --output_dir=*) out="${arg#--output_dir=}";;
    --dataset.root=*) root="${arg#--dataset.root=}";;
  esac
done
test -f "$root/meta/info.json" || { echo "no dataset at $root" >&2; exit 2; }
echo "dataset root: $root"
echo "INFO step:1 smpl:2 ep:0 epch:0.03 loss:1.474 grdn:39.580 lr:2.0e-07 updt_s:1.000 data_s:0.300"
mkdir -p "$out/checkpoints/000001/pretrained_model"
echo '{"type": "act"}' > "$out/checkpoints/000001/pretrained_model/config.json"
"""


def prepare_lerobot_env(project: Path) -> Path:
    """The venv a first local job creates, with its install marker (the job's set: ``lerobot==0.3.3``)."""
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = project / ".robotrain" / "lerobot-envs" / f"0.3.3-py{python}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "lerobot-train").write_text(LEROBOT_TRAIN)
    (venv / "bin" / "lerobot-train").chmod(0o755)
    (venv / "robotrain-installed.txt").write_text("lerobot==0.3.3\n--\n")
    return venv


def test_dataset_input_on_local(project: Path, seed_store: Callable[[Path], Path]) -> None:
    seed_store(project)  # the MLflow store a first train creates (its creation is tested in core)
    dataset = project / "my-dataset"
    (dataset / "meta").mkdir(parents=True)
    (dataset / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v2.1", "total_episodes": 2}))
    staged = run_cli(["stage-dataset", str(dataset), "--name", "pusht-local"], cwd=project)
    assert staged.returncode == 0, staged.stderr
    venv = prepare_lerobot_env(project)
    result = run_cli(
        ["train", "--platform", "local", "--workload", "lerobot", "--dataset-repo-id", "local/pusht",
         "--dataset-input", "pusht-local", "--register-checkpoint", "act-local", "--log-freq", "1"],
        cwd=project, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    root = project / ".robotrain" / "datasets" / "pusht-local"
    assert f"dataset root: {root}/" in result.stdout
    assert f"using LeRobot's environment {venv}" in result.stdout
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    [version] = client.search_model_versions("name='act-local'")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loss"] == 1.474
    [job] = (project / ".robotrain" / "jobs").iterdir()
    assert (job / "outputs" / "checkpoints" / "pretrained_model" / "config.json").is_file()

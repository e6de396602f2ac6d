"""The shipped entry point, run for real with a stand-in `lerobot-train` executable on PATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robotrain_lerobot.job import ENTRY_FOLDER

LEROBOT_TRAIN = """#!/usr/bin/env bash
# Stand-in for LeRobot's lerobot-train: record the arguments, write checkpoints like LeRobot does.
printf '%s\\n' "$@" > "$RECORD"
[ -n "${FAIL:-}" ] && exit 3
for arg in "$@"; do case "$arg" in --output_dir=*) out="${arg#--output_dir=}";; esac; done
for step in 000005 000010; do
  mkdir -p "$out/checkpoints/$step/pretrained_model"
  model="$out/checkpoints/$step/pretrained_model"
  echo "{\\"type\\": \\"act\\", \\"step\\": \\"$step\\"}" > "$model/config.json"
done
ln -s 000010 "$out/checkpoints/last"
"""


@pytest.fixture
def job_env(tmp_path: Path) -> dict[str, str]:
    """A job's environment: the stand-in on PATH and LeRobot 'installed' at the pinned version."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lerobot-train").write_text(LEROBOT_TRAIN)
    (bin_dir / "lerobot-train").chmod(0o755)
    site = tmp_path / "site"
    (site / "lerobot-9.9.9.dist-info").mkdir(parents=True)
    (site / "lerobot-9.9.9.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lerobot\nVersion: 9.9.9\n"
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEROBOT_", "ROBOTRAIN_"))}
    return keep | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(site),
        "PYTHON": sys.executable,
        "RECORD": str(tmp_path / "args.txt"),
        "LEROBOT_VERSION": "9.9.9",
        "LEROBOT_REQUIREMENT": "lerobot[pi0]==9.9.9",
        "LEROBOT_DATASET_SOURCE": "hub",
        "MLFLOW_EXPERIMENT_NAME": "lerobot-test",
    }


def run_job(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    workspace = tmp_path / "workspace"
    workspace.mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", str(ENTRY_FOLDER / "train_lerobot.sh"), *args],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


ARGS = ("--dataset.repo_id=lerobot/pusht", "--policy.type=act", "--output_dir=outputs/train")


def test_trains_and_registers_the_newest_checkpoint(tmp_path: Path, job_env: dict[str, str]) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = job_env | {
        "LEROBOT_TRACKING": "mlflow",
        "REGISTER_CHECKPOINT": "act-pusht",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "TRAINING_CHECKPOINT_OUTPUT": str(tmp_path / "outputs"),
    }
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installing" not in result.stdout, "the pinned LeRobot is there: nothing is installed"
    assert (tmp_path / "args.txt").read_text().split() == list(ARGS)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    [version] = client.search_model_versions("name='act-pusht'")
    files = client.list_artifacts(version.run_id, "checkpoint")
    assert [Path(f.path).name for f in files] == ["config.json"]
    copied = tmp_path / "outputs" / "pretrained_model" / "config.json"
    assert '"step": "000010"' in copied.read_text()


def test_staged_dataset_root_and_no_tracking(tmp_path: Path, job_env: dict[str, str]) -> None:
    env = job_env | {
        "LEROBOT_TRACKING": "none",
        "LEROBOT_DATASET_SOURCE": "staged",
        "ROBOTRAIN_INPUT_DATASET": "/mnt/inputs/dataset",
        "REGISTER_CHECKPOINT": "act-pusht",
    }
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "args.txt").read_text().split() == [*ARGS, "--dataset.root=/mnt/inputs/dataset"]
    assert "MLFLOW_TRACKING_URI is not set: act-pusht is not registered" in result.stdout


def test_staged_dataset_without_a_mount(tmp_path: Path, job_env: dict[str, str]) -> None:
    result = run_job(tmp_path, job_env | {"LEROBOT_DATASET_SOURCE": "staged"}, *ARGS)
    assert result.returncode != 0
    assert "the platform did not set ROBOTRAIN_INPUT_DATASET" in result.stderr


def test_failed_training_fails_the_job_and_registers_nothing(tmp_path: Path, job_env: dict[str, str]) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = job_env | {"FAIL": "1", "REGISTER_CHECKPOINT": "act-pusht", "MLFLOW_TRACKING_URI": uri,
                     "MLFLOW_REGISTRY_URI": uri, "LEROBOT_TRACKING": "mlflow"}  # fmt: skip
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 3
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions("name='act-pusht'") == []

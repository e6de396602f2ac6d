"""The lerobot workload's dry-run on every platform shows the complete job, and no secret."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.job import CHECKPOINT_OUTPUT_VARIABLE, input_variable
from robotrain.testing import assert_one_line_error, run_cli

LEROBOT = ["--workload", "lerobot", "--dataset-repo-id", "lerobot/aloha_sim_insertion_human"]
PLANTED = {"HF_TOKEN": "hf_planted_secret_value_123", "WANDB_API_KEY": "wandb_planted_secret_456"}
AZURE = ["--subscription-id", "00000000-0000-0000-0000-000000000000", "--resource-group", "rg-robotics",
         "--workspace-name", "mlw-robotics", "--compute", "k8s-robotics"]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def dry_run(project: Path, *args: str) -> str:
    result = run_cli(["train", "--dry-run", *LEROBOT, "--tracking", "wandb", *args], cwd=project, env=PLANTED)
    assert result.returncode == 0, result.stderr
    for secret in PLANTED.values():
        assert secret not in result.stdout + result.stderr
    return result.stdout


def lerobot_args(command: list[str]) -> list[str]:
    return [arg for arg in command if arg.startswith("--") and "=" in arg]


def test_osmo_workflow(project: Path) -> None:
    spec: dict[str, Any] = yaml.safe_load(
        dry_run(project, "--platform", "osmo", "--policy-type", "diffusion")
    )
    workflow = spec["workflow"]
    assert workflow["timeout"]["exec_timeout"] == 12 * 3600  # OSMO reads an int as seconds
    assert workflow["resources"]["default"] == {"gpu": 1, "cpu": 8, "memory": "48Gi", "storage": "80Gi"}
    (task,) = workflow["tasks"]
    assert task["image"] == "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime"
    args = lerobot_args(task["args"])
    assert "--dataset.repo_id=lerobot/aloha_sim_insertion_human" in args
    assert "--policy.type=diffusion" in args
    assert "--policy.push_to_hub=false" in args
    assert "--wandb.enable=true" in args
    assert task["credentials"] == {"wandb": {"WANDB_API_KEY": "api_key"}}


def test_azureml_job(project: Path) -> None:
    from azure.ai.ml import load_job

    text = dry_run(project, "--platform", "azureml", *AZURE)
    document = yaml.safe_load(text)
    assert document["environment"] == "azureml:lerobot-training-env:1.1.0"
    assert document["limits"]["timeout"] == 12 * 3600
    assert "--dataset.repo_id=lerobot/aloha_sim_insertion_human" in document["command"]
    assert "--policy.type=act" in document["command"]
    assert document["experiment_name"] == "lerobot-training"
    job_file = project / "job.yaml"
    job_file.write_text(text)
    job = load_job(job_file)
    assert job.compute == "k8s-robotics"


def test_local_job(project: Path) -> None:
    text = dry_run(project, "--platform", "local")
    assert "--dataset.repo_id=lerobot/aloha_sim_insertion_human" in text
    assert "LEROBOT_INSTALL: lerobot==0.3.3" in text
    assert f"LEROBOT_VENV: {project / '.robotrain' / 'lerobot-envs'}/0.3.3-py" in text


def plain_dry_run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["train", "--dry-run", *LEROBOT, *args], cwd=project)


def test_osmo_dataset_input_is_a_task_input_exported_to_the_job(project: Path) -> None:
    """The contract the entry point reads: the input variable names the mounted folder; checkpoints kept."""
    result = plain_dry_run(project, "--platform", "osmo", "--dataset-input", "aloha", "--tracking", "none")
    assert result.returncode == 0, result.stderr
    (task,) = yaml.safe_load(result.stdout)["workflow"]["tasks"]
    environment = task["environment"]
    variable = environment["LEROBOT_DATASET_VARIABLE"]
    assert variable == input_variable("dataset")
    assert {"dataset": {"name": "training/aloha"}} in task["inputs"]
    index = task["inputs"].index({"dataset": {"name": "training/aloha"}})
    assert environment[variable].startswith(f"{{{{input:{index}}}}}")
    assert environment[CHECKPOINT_OUTPUT_VARIABLE].startswith("{{output}}")
    assert task["outputs"], "the checkpoint folder is a declared workflow output"


def test_azureml_dataset_input_is_a_job_input_exported_to_the_job(project: Path) -> None:
    result = plain_dry_run(project, "--platform", "azureml", *AZURE, "--dataset-input", "aloha")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["inputs"]["dataset"]["path"] == "azureml:aloha@latest"
    variable = document["environment_variables"]["LEROBOT_DATASET_VARIABLE"]
    assert f"{variable}=${{{{inputs.dataset}}}}" in document["command"]
    assert f"{CHECKPOINT_OUTPUT_VARIABLE}=${{{{outputs.checkpoints}}}}" in document["command"]
    assert "azureml-mlflow==1.62.0.post6" in document["environment_variables"]["LEROBOT_INSTALL"]


def test_osmo_mlflow_without_a_workspace_or_uri_is_refused(project: Path) -> None:
    result = plain_dry_run(project, "--platform", "osmo")
    assert result.returncode == 2
    line = assert_one_line_error(result)
    assert "is needed for MLflow tracking to the Azure ML workspace on OSMO" in line
    assert "or give --mlflow-uri" in line


def test_osmo_mlflow_to_the_workspace(project: Path) -> None:
    result = plain_dry_run(project, "--platform", "osmo", *AZURE[:6])
    assert result.returncode == 0, result.stderr
    (task,) = yaml.safe_load(result.stdout)["workflow"]["tasks"]
    assert task["environment"]["LEROBOT_MLFLOW_FROM_WORKSPACE"] == "true"
    assert task["environment"]["AZUREML_WORKSPACE_NAME"] == "mlw-robotics"
    assert "azureml-mlflow==1.62.0.post6" in task["environment"]["LEROBOT_INSTALL"]

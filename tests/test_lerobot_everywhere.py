"""The lerobot workload's dry-run on every platform shows the complete job, and no secret."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.job import CHECKPOINT_OUTPUT_VARIABLE, NODE_VARIABLES, input_variable
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


DISTRIBUTED = [
    "--lerobot-version",
    "0.6.1",
    "--image",
    "huggingface/lerobot-gpu",
    "--nodes",
    "2",
    "--gpus",
    "4",
]
OSMO_RULES = (
    Path(__file__).parents[1] / "packages" / "plugin-osmo" / "tests" / "fakeosmo" / "osmo_spec_rules.py"
)


def osmo_spec_problems(spec: dict[str, Any]) -> list[str]:
    """What the OSMO stand-in's rules (copied from NVIDIA/OSMO, cited there) find wrong with a spec."""
    loaded = importlib.util.spec_from_file_location("osmo_spec_rules", OSMO_RULES)
    assert loaded is not None and loaded.loader is not None
    rules = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(rules)
    problems: list[str] = rules.spec_problems(spec)
    return problems


def test_osmo_several_gpus_start_accelerate_on_each_node(project: Path) -> None:
    """One task per node, each running the entry point once with its node variables; the lead keeps."""
    spec: dict[str, Any] = yaml.safe_load(dry_run(project, "--platform", "osmo", *DISTRIBUTED))
    assert osmo_spec_problems(spec) == []
    workflow = spec["workflow"]
    assert workflow["resources"]["default"]["gpu"] == 4
    (group,) = workflow["groups"]
    lead, other = group["tasks"]
    assert (lead["lead"], other["lead"]) == (True, False)
    for rank, task in enumerate(group["tasks"]):
        assert task["args"][:2] == ["bash", "training/train_lerobot.sh"], "no torch.distributed.run around it"
        assert "--policy.type=act" in lerobot_args(task["args"])
        assert {name: task["environment"][name] for name in NODE_VARIABLES} == {
            "NNODES": "2", "NODE_RANK": str(rank), "NPROC_PER_NODE": "4",
            "MASTER_ADDR": f"{{{{host:{lead['name']}}}}}", "MASTER_PORT": task["environment"]["MASTER_PORT"],
        }  # fmt: skip
        assert task["environment"]["LEROBOT_LAUNCHER"] == "accelerate"
        assert task["environment"]["LEROBOT_INSTALL"].startswith("lerobot[training]==0.6.1")
    assert lead["outputs"] and "outputs" not in other, "LeRobot's main process, on the lead, saves"


def test_azureml_several_gpus_are_instances_of_one_launcher_each(project: Path) -> None:
    from azure.ai.ml import PyTorchDistribution, load_job

    text = dry_run(project, "--platform", "azureml", *AZURE, *DISTRIBUTED)
    document = yaml.safe_load(text)
    assert document["environment_variables"]["LEROBOT_LAUNCHER"] == "accelerate"
    assert {k: document["environment_variables"][k] for k in ("NNODES", "NPROC_PER_NODE")} == {
        "NNODES": "2", "NPROC_PER_NODE": "4"
    }  # fmt: skip
    job_file = project / "job.yaml"
    job_file.write_text(text)
    job = load_job(job_file)
    assert job.resources.instance_count == 2
    assert isinstance(job.distribution, PyTorchDistribution)
    assert job.distribution.process_count_per_instance == 1, "accelerate launch starts each node's 4"
    assert "bash training/train_lerobot.sh --dataset.repo_id=" in job.command


@pytest.mark.parametrize("platform", ["osmo", "azureml"])
def test_lerobot_03_on_several_gpus_is_refused_everywhere(project: Path, platform: str) -> None:
    context = AZURE if platform == "azureml" else ["--tracking", "none"]
    result = plain_dry_run(project, "--platform", platform, *context, "--nodes", "2", "--gpus", "4")
    assert result.returncode == 2
    line = assert_one_line_error(result)
    assert "LeRobot 0.3.3 trains in one process only" in line and "--lerobot-version 0.6.1" in line

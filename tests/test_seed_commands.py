"""The commands of the training documents work as typed, with every plugin installed.

Each shell-script command in the two seed documents (the reference architecture's "Training Guide"
and "Isaac Lab Training") is written as ``invoke train --platform ... <the same flags>`` and run as a
dry-run in a fresh project whose infrastructure is described only by ``deploy/001-iac/terraform.tfstate``
(and the Azure CLI's default subscription), as a user of the scripts has it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.testing import make_isaaclab_project, run_cli

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
STATE = {
    "version": 4,
    "terraform_version": "1.9.8",
    "outputs": {
        "resource_group": {"value": {"name": "rg-robotics-dev-001", "location": "westus3"}, "type": "object"},
        "azureml_workspace": {"value": {"name": "mlw-robotics-dev-001"}, "type": "object"},
        "aks_cluster": {
            "value": {"name": "aks-robotics-dev-001", "id": "/subscriptions/x"},
            "type": "object",
        },
        "key_vault_name": {"value": "kv-robotics-dev-001", "type": "string", "sensitive": True},
    },
}
"""What `terraform apply` of the reference architecture leaves in deploy/001-iac (reference/terraform.md)."""

TASK = "Isaac-Velocity-Rough-Anymal-C-v0"

PARAMETER_TABLE = ["--task", TASK, "--num-envs", "2048", "--max-iterations", "100",
                   "--image", "nvcr.io/nvidia/isaac-lab:2.2.0",
                   "--backend", "rsl_rl", "--headless"]  # fmt: skip

SEED_COMMANDS = [
    # Training Guide, Quick Start: ./scripts/submit-azureml-training.sh --task ...
    pytest.param("azureml", ["--task", TASK], id="guide-azureml-quick-start"),
    # Training Guide, Quick Start:
    # ./scripts/submit-osmo-lerobot-training.sh -d lerobot/aloha_sim_insertion_human
    pytest.param(
        "osmo",
        ["--workload", "lerobot", "-d", "lerobot/aloha_sim_insertion_human"],
        id="guide-osmo-lerobot-quick-start",
    ),
    # Isaac Lab Training, Quick Start (Azure ML)
    pytest.param("azureml", ["--task", TASK, "--num-envs", "2048", "--stream"], id="isaaclab-azureml"),
    # Isaac Lab Training, Quick Start (OSMO, base64 payload)
    pytest.param("osmo", ["--task", TASK, "--num-envs", "2048"], id="isaaclab-osmo-inline"),
    # Isaac Lab Training, Quick Start (OSMO, dataset injection): submit-osmo-dataset-training.sh
    pytest.param("osmo", ["--task", TASK, "--dataset-name", "my-training-v1"], id="isaaclab-osmo-dataset"),
    # Isaac Lab Training, Training Configuration table: every core parameter at once
    pytest.param(
        "osmo",
        PARAMETER_TABLE,
        id="isaaclab-parameter-table",
    ),
    # Checkpoint Examples: resume interrupted training (Azure ML)
    pytest.param(
        "azureml",
        ["--checkpoint-uri", "runs:/abc123/checkpoint", "--checkpoint-mode", "resume"],
        id="checkpoint-resume-azureml",
    ),
    # Checkpoint Examples: warm-start from a registered model (OSMO)
    pytest.param(
        "osmo",
        ["--checkpoint-uri", "models:/anymal-c-velocity/1", "--checkpoint-mode", "warm-start"],
        id="checkpoint-warm-start-osmo",
    ),
    # Model Registration: custom model name (Azure ML)
    pytest.param("azureml", ["--register-checkpoint", "my-custom-model"], id="register-custom-name-azureml"),
    # Model Registration: skip registration (OSMO)
    pytest.param("osmo", ["--skip-register-checkpoint"], id="register-skip-osmo"),
    # Dataset Injection (OSMO): submit-osmo-dataset-training.sh with bucket, name and task
    pytest.param(
        "osmo",
        ["--dataset-bucket", "custom-bucket", "--dataset-name", "my-training-v1", "--task", TASK],
        id="dataset-injection-osmo",
    ),
]


@pytest.fixture
def fresh_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project with the reference layout: src/training and deploy/001-iac/terraform.tfstate only."""
    project = make_isaaclab_project(tmp_path / "project")
    infra = project / "deploy" / "001-iac"
    infra.mkdir(parents=True)
    (infra / "terraform.tfstate").write_text(json.dumps(STATE))
    azure = tmp_path / "azure"
    azure.mkdir()
    profile = {"subscriptions": [{"id": SUBSCRIPTION, "isDefault": True, "name": "robotics"}]}
    (azure / "azureProfile.json").write_text(json.dumps(profile))
    return project, {"AZURE_CONFIG_DIR": str(azure)}


@pytest.mark.parametrize(("platform", "flags"), SEED_COMMANDS)
def test_seed_command_runs_as_typed(
    fresh_project: tuple[Path, dict[str, str]], platform: str, flags: list[str]
) -> None:
    project, env = fresh_project
    result = run_cli(["train", "--platform", platform, "--dry-run", *flags], cwd=project, env=env)
    assert "No idea what" not in result.stderr, result.stderr
    assert "not recognized" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the dry-run printed no spec"
    assert "kv-robotics-dev-001" not in result.stdout + result.stderr


def settings(project: Path, env: dict[str, str], *args: str) -> dict[str, tuple[Any, str]]:
    result = run_cli(["config", "-o", "json", *args], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    return {row["name"]: (row["value"], row["source"]) for row in json.loads(result.stdout)["settings"]}


def test_fresh_project_resolves_the_azure_context_from_terraform(
    fresh_project: tuple[Path, dict[str, str]],
) -> None:
    project, env = fresh_project
    values = settings(project, env)
    source = "terraform (deploy/001-iac/terraform.tfstate)"
    assert values["resource-group"] == ("rg-robotics-dev-001", source)
    assert values["workspace-name"] == ("mlw-robotics-dev-001", source)
    assert values["compute"] == ("k8s-robotics-dev", source)
    assert values["subscription-id"] == (SUBSCRIPTION, "azure cli profile")

    text = run_cli(["config"], cwd=project, env=env)
    assert text.returncode == 0, text.stderr
    assert f"({source})" in text.stdout
    assert "kv-robotics-dev-001" not in text.stdout

    job = run_cli(["train", "--platform", "azureml", "--dry-run"], cwd=project, env=env)
    assert job.returncode == 0, job.stderr
    document = yaml.safe_load(job.stdout)
    assert document["compute"] == "azureml:k8s-robotics-dev"
    assert document["environment_variables"]["AZURE_RESOURCE_GROUP"] == "rg-robotics-dev-001"
    assert document["environment_variables"]["AZUREML_WORKSPACE_NAME"] == "mlw-robotics-dev-001"
    assert document["environment_variables"]["AZURE_SUBSCRIPTION_ID"] == SUBSCRIPTION

"""Settings resolve CLI > environment > project config > Terraform > default, and say where from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from robotrain.testing import assert_one_line_error, run_cli


def config(project: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, tuple[Any, str]]:
    result = run_cli(["config", "-o", "json", *args], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["settings"]
    return {row["name"]: (row["value"], row["source"]) for row in rows}


def write_state(folder: Path, outputs: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "terraform.tfstate").write_text(json.dumps({"version": 4, "outputs": outputs}))


def test_each_source_in_order(project: Path) -> None:
    write_state(project / "infra", {"resource_group": {"value": {"name": "rg-from-tf"}, "type": "object"}})
    (project / "robotrain.toml").write_text(
        'terraform-dir = "infra"\nnum-envs = 32\ntask = "From-Config-v0"\nresource-group = "rg-config"\n'
    )
    env = {"TASK": "From-Env-v0", "NUM_ENVS": "64"}
    values = config(project, "--num-envs", "128", env=env)
    assert values["num-envs"] == (128, "command line")
    assert values["task"] == ("From-Env-v0", "env TASK")
    assert values["resource-group"] == ("rg-config", "robotrain.toml")
    assert values["checkpoint-mode"] == ("from-scratch", "default")

    (project / "robotrain.toml").write_text('terraform-dir = "infra"\n')
    assert config(project)["resource-group"] == ("rg-from-tf", "terraform (infra/terraform.tfstate)")


def test_pyproject_table_and_profiles(project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.robotrain]\nnum-envs = 8\nplatform = "local"\n[tool.robotrain.profiles.big]\nnum-envs = 4096\n'
    )
    assert config(project)["num-envs"] == (8, "pyproject.toml")
    assert config(project, "--profile", "big")["num-envs"] == (4096, "pyproject.toml [profile big]")
    assert config(project, env={"ROBOTRAIN_PROFILE": "big"})["num-envs"][0] == 4096


def test_config_is_found_from_a_subfolder(project: Path) -> None:
    (project / "robotrain.toml").write_text("num-envs = 12\n")
    result = run_cli(["train", "--dry-run", "-o", "json"], cwd=project / "src" / "training")
    assert result.returncode == 0, result.stderr
    command = json.loads(result.stdout)["job"]["command"]
    assert command[command.index("--num_envs") + 1] == "12"


def test_sensitive_terraform_output_is_masked(project: Path) -> None:
    secret = "rg-very-secret-value-123"
    write_state(project / "infra", {
        "resource_group": {"value": {"name": secret}, "type": "object", "sensitive": True},
        "azureml_workspace": {"value": {"name": "mlw-plain"}, "type": "object"},
    })  # fmt: skip
    for output in ("json", "text"):
        result = run_cli(["config", "-o", output, "--terraform-dir", "infra"], cwd=project)
        assert result.returncode == 0, result.stderr
        assert secret not in result.stdout + result.stderr
        assert "mlw-plain" in result.stdout
    dry_run = run_cli(["train", "--dry-run", "-o", "json", "--terraform-dir", "infra"], cwd=project)
    assert dry_run.returncode == 0, dry_run.stderr
    assert secret not in dry_run.stdout + dry_run.stderr


def test_saved_output_json(project: Path) -> None:
    saved = project / "outputs.json"
    saved.write_text(json.dumps({
        "azureml_workspace": {"sensitive": False, "type": "object", "value": {"name": "mlw-saved"}},
    }))  # fmt: skip
    assert config(project, "--terraform-outputs", "outputs.json")["workspace-name"] == (
        "mlw-saved",
        "terraform (outputs.json)",
    )


def test_names_derived_from_tfvars(project: Path) -> None:
    infra = project / "infra"
    infra.mkdir()
    (infra / "terraform.tfvars").write_text(
        'resource_prefix = "robotics"\nenvironment = "dev"\ninstance = "001"\nlocation = "westus3"\n'
    )
    values = config(project, "--terraform-dir", "infra")
    derived = "terraform (names derived from infra/terraform.tfvars)"
    assert values["resource-group"] == ("rg-robotics-dev-001", derived)
    assert values["workspace-name"] == ("mlw-robotics-dev-001", derived)


def test_state_wins_over_tfvars(project: Path) -> None:
    infra = project / "infra"
    write_state(infra, {"azureml_workspace": {"value": {"name": "mlw-state"}, "type": "object"}})
    (infra / "terraform.tfvars").write_text('resource_prefix = "a"\nenvironment = "b"\ninstance = "c"\n')
    assert config(project, "--terraform-dir", "infra")["workspace-name"] == (
        "mlw-state",
        "terraform (infra/terraform.tfstate)",
    )


def test_subscription_from_azure_cli_profile(project: Path, tmp_path: Path) -> None:
    azure = tmp_path / "azure"
    azure.mkdir()
    profile = {
        "subscriptions": [{"id": "other", "isDefault": False}, {"id": "sub-default", "isDefault": True}]
    }
    (azure / "azureProfile.json").write_text("\ufeff" + json.dumps(profile), encoding="utf-8")
    values = config(project, env={"AZURE_CONFIG_DIR": str(azure)})
    assert values["subscription-id"] == ("sub-default", "azure cli profile")
    env = {"AZURE_CONFIG_DIR": str(azure), "AZURE_SUBSCRIPTION_ID": "sub-env"}
    assert config(project, env=env)["subscription-id"] == ("sub-env", "env AZURE_SUBSCRIPTION_ID")


def test_unknown_config_keys_are_reported(project: Path) -> None:
    (project / "robotrain.toml").write_text("no-such-setting = 1\n")
    result = run_cli(["config"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "no-such-setting: in the config file but no installed plugin defines it" in result.stdout


CONVENTIONAL = Path("deploy") / "001-iac"
REFERENCE_OUTPUTS = {
    "resource_group": {"value": {"name": "rg-robotics-dev-001"}, "type": "object"},
    "azureml_workspace": {"value": {"name": "mlw-robotics-dev-001"}, "type": "object"},
    "aks_cluster": {"value": {"name": "aks-robotics-dev-001", "id": "/subscriptions/s/x"}, "type": "object"},
    "key_vault_name": {"value": "kv-very-secret-name", "type": "string", "sensitive": True},
}


def test_conventional_folder_is_read_without_flags(project: Path) -> None:
    write_state(project / CONVENTIONAL, REFERENCE_OUTPUTS)
    values = config(project)
    source = "terraform (deploy/001-iac/terraform.tfstate)"
    assert values["resource-group"] == ("rg-robotics-dev-001", source)
    assert values["workspace-name"] == ("mlw-robotics-dev-001", source)
    assert values["terraform-dir"] == ("deploy/001-iac", "default")
    text = run_cli(["config"], cwd=project)
    assert text.returncode == 0, text.stderr
    assert "(terraform (deploy/001-iac/terraform.tfstate))" in text.stdout
    assert "kv-very-secret-name" not in text.stdout


def test_no_conventional_folder_is_no_terraform(project: Path) -> None:
    result = run_cli(["config", "-o", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["resource-group"]["value"] is None


def test_a_named_folder_that_is_missing_is_one_line(project: Path) -> None:
    (project / "robotrain.toml").write_text('terraform-dir = "infra/live"\n')
    result = run_cli(["config"], cwd=project)
    assert_one_line_error(result, "Terraform folder", "infra/live", "does not exist")


def test_terraform_dir_in_robotrain_toml_replaces_the_convention(project: Path) -> None:
    write_state(project / CONVENTIONAL, REFERENCE_OUTPUTS)
    write_state(project / "infra" / "live", {"resource_group": {"value": {"name": "rg-live"}}})
    (project / "robotrain.toml").write_text('terraform-dir = "infra/live"\n')
    values = config(project)
    assert values["resource-group"] == ("rg-live", "terraform (infra/live/terraform.tfstate)")
    assert values["workspace-name"][0] is None


def test_terraform_can_be_turned_off(project: Path) -> None:
    write_state(project / CONVENTIONAL, REFERENCE_OUTPUTS)
    assert config(project, "--no-terraform")["resource-group"] == (None, "default")
    assert config(project, env={"ROBOTRAIN_TERRAFORM": "false"})["resource-group"] == (None, "default")
    (project / "robotrain.toml").write_text("terraform = false\n")
    assert config(project)["resource-group"] == (None, "default")
    assert config(project)["terraform"] == (False, "robotrain.toml")


TERRAFORM_STAND_IN = """#!/usr/bin/env bash
# Stand-in for the terraform CLI: records each call (cwd, then one argument a line) and answers
# `terraform output -json` the way terraform 1.x prints it (NAME: {sensitive, type, value}).
{ echo "--- call cwd=$(pwd)"; printf '%s\\n' "$@"; } >> "$TERRAFORM_CALLS"
if [ -n "${TERRAFORM_FAIL:-}" ]; then
  printf '╷\\n│ Error: %s\\n│\\n│ Reason: the backend configuration changed\\n╵\\n' "$TERRAFORM_FAIL" >&2
  exit 1
fi
cat "$TERRAFORM_ANSWER"
"""


def terraform_on_path(tmp_path: Path, answer: dict[str, Any]) -> dict[str, str]:
    """A recording ``terraform`` first on PATH; the environment to run robotrain with."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "terraform").write_text(TERRAFORM_STAND_IN)
    (folder / "terraform").chmod(0o755)
    printed = {
        name: {"sensitive": bool(entry.get("sensitive")), "type": entry.get("type", "object"),
               "value": entry["value"]}
        for name, entry in answer.items()
    }  # fmt: skip
    (tmp_path / "answer.json").write_text(json.dumps(printed))
    return {
        "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
        "TERRAFORM_CALLS": str(tmp_path / "calls.log"),
        "TERRAFORM_ANSWER": str(tmp_path / "answer.json"),
    }


def terraform_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.log"
    calls: list[list[str]] = []
    for line in log.read_text().splitlines() if log.exists() else []:
        if line.startswith("--- call "):
            calls.append([line.removeprefix("--- call ")])
        else:
            calls[-1].append(line)
    return calls


def initialised_remote_state(project: Path) -> Path:
    """A Terraform folder after `terraform init` with a remote backend: no local terraform.tfstate."""
    folder = project / CONVENTIONAL
    (folder / ".terraform").mkdir(parents=True)
    (folder / ".terraform" / "terraform.tfstate").write_text(
        json.dumps({"version": 3, "backend": {"type": "azurerm", "config": {"key": "robotics.tfstate"}}})
    )
    (folder / "main.tf").write_text('output "resource_group" { value = azurerm_resource_group.rg }\n')
    return folder


def test_remote_state_is_read_through_terraform_output(project: Path, tmp_path: Path) -> None:
    folder = initialised_remote_state(project)
    env = terraform_on_path(tmp_path, REFERENCE_OUTPUTS)
    values = config(project, env=env)
    source = "terraform (terraform output -json in deploy/001-iac)"
    assert values["resource-group"] == ("rg-robotics-dev-001", source)
    assert values["workspace-name"] == ("mlw-robotics-dev-001", source)
    assert terraform_calls(tmp_path) == [[f"cwd={folder.resolve()}", "output", "-json"]]


def test_sensitive_remote_outputs_are_masked(project: Path, tmp_path: Path) -> None:
    initialised_remote_state(project)
    outputs = {"resource_group": {"value": {"name": "rg-secret-name"}, "sensitive": True}}
    env = terraform_on_path(tmp_path, outputs)
    result = run_cli(["config"], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    assert "rg-secret-name" not in result.stdout + result.stderr
    assert "********" in result.stdout


def test_local_state_needs_no_terraform_binary(project: Path, tmp_path: Path) -> None:
    write_state(project / CONVENTIONAL, REFERENCE_OUTPUTS)
    (project / CONVENTIONAL / ".terraform").mkdir()
    env = terraform_on_path(tmp_path, {})
    assert config(project, env=env)["resource-group"][0] == "rg-robotics-dev-001"
    assert terraform_calls(tmp_path) == []


def test_uninitialised_folder_does_not_call_terraform(project: Path, tmp_path: Path) -> None:
    folder = project / CONVENTIONAL
    folder.mkdir(parents=True)
    (folder / "main.tf").write_text("")
    (folder / "terraform.tfvars").write_text(
        'resource_prefix = "rob"\nenvironment = "dev"\ninstance = "002"\n'
    )
    env = terraform_on_path(tmp_path, REFERENCE_OUTPUTS)
    values = config(project, env=env)
    assert values["resource-group"] == (
        "rg-rob-dev-002",
        "terraform (names derived from deploy/001-iac/terraform.tfvars)",
    )
    assert terraform_calls(tmp_path) == []


def test_failing_terraform_output_warns_once_and_is_not_used(project: Path, tmp_path: Path) -> None:
    initialised_remote_state(project)
    env = terraform_on_path(tmp_path, REFERENCE_OUTPUTS) | {
        "TERRAFORM_FAIL": "Backend initialization required"
    }
    result = run_cli(["config", "-o", "json"], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("robotrain: warning: `terraform output -json` in deploy/001-iac failed")
    assert "Backend initialization required" in warning
    rows = {row["name"]: row for row in json.loads(result.stdout)["settings"]}
    assert rows["resource-group"]["value"] is None
    assert len(terraform_calls(tmp_path)) == 1


SCRIPT_VARIABLES = {
    "TASK": ("task", "Isaac-Cartpole-v0"),
    "NUM_ENVS": ("num-envs", 64),
    "MAX_ITERATIONS": ("max-iterations", 10),
    "IMAGE": ("image", "nvcr.io/nvidia/isaac-lab:2.2.0"),
    "TRAINING_BACKEND": ("backend", "rsl_rl"),
    "CHECKPOINT_URI": ("checkpoint-uri", "runs:/abc/checkpoint"),
    "CHECKPOINT_MODE": ("checkpoint-mode", "resume"),
    "REGISTER_CHECKPOINT": ("register-checkpoint", "my-model"),
    "RUN_AZURE_SMOKE_TEST": ("run-smoke-test", True),
    "AZURE_SUBSCRIPTION_ID": ("subscription-id", "00000000-0000-0000-0000-000000000000"),
    "AZURE_RESOURCE_GROUP": ("resource-group", "rg-env"),
    "AZUREML_WORKSPACE_NAME": ("workspace-name", "mlw-env"),
    "MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES": ("mlflow-token-retries", 5),
    "MLFLOW_HTTP_REQUEST_TIMEOUT": ("mlflow-http-timeout", 120),
}
"""The environment variables the submit scripts read (reference/scripts.md), and the settings they set."""


def test_the_scripts_environment_variables(project: Path) -> None:
    env = {variable: str(value).lower() if value is True else str(value)
           for variable, (_, value) in SCRIPT_VARIABLES.items()}  # fmt: skip
    values = config(project, env=env)
    for variable, (setting, value) in SCRIPT_VARIABLES.items():
        assert values[setting] == (value, f"env {variable}"), variable


def test_the_scripts_spellings_are_normalised(project: Path) -> None:
    values = config(project, env={"TRAINING_BACKEND": "RSL-RL", "CHECKPOINT_MODE": "Warm-Start"})
    assert values["backend"] == ("rsl_rl", "env TRAINING_BACKEND")
    assert values["checkpoint-mode"] == ("warm-start", "env CHECKPOINT_MODE")
    (project / "robotrain.toml").write_text('backend = "rslrl"\ncheckpoint-mode = "FRESH"\n')
    values = config(project)
    assert values["backend"] == ("rsl_rl", "robotrain.toml")
    assert values["checkpoint-mode"] == ("fresh", "robotrain.toml")

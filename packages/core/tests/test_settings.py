"""Settings resolve CLI > environment > project config > Terraform > default, and say where from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robotrain.testing import run_cli


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

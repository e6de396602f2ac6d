"""A job that needs the Azure context says which part is missing and where it can come from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robotrain.errors import UserError
from robotrain.plugins import load_plugins
from robotrain.settings import ProjectConfig, Settings
from robotrain.workloads import require_azure_context

NEEDED_FOR = "MLflow tracking to Azure ML on OSMO"


def settings_of(project: Path, **cli: Any) -> Settings:
    return Settings(load_plugins().options, cli, ProjectConfig.find(project, None), environ={})


@pytest.fixture(autouse=True)
def no_azure_cli_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-azure-cli"))


def missing(settings: Settings) -> str:
    with pytest.raises(UserError) as caught:
        require_azure_context(settings, NEEDED_FOR)
    return str(caught.value)


def test_missing_subscription_points_at_az_login(project: Path) -> None:
    message = missing(settings_of(project))
    assert message.startswith(f"the Azure subscription is needed for {NEEDED_FOR}; set --subscription-id")
    assert "AZURE_SUBSCRIPTION_ID" in message
    assert "`az login`" in message


def test_missing_resource_group_says_no_terraform_was_found(project: Path) -> None:
    message = missing(settings_of(project, subscription_id="sub"))
    assert message.startswith("the Azure resource group is needed for")
    assert "--resource-group, AZURE_RESOURCE_GROUP or resource-group in robotrain.toml" in message
    assert "Terraform output resource_group (none read from deploy/001-iac)" in message


def test_missing_workspace_names_the_state_that_lacks_it(project: Path) -> None:
    infra = project / "deploy" / "001-iac"
    infra.mkdir(parents=True)
    outputs = {"resource_group": {"value": {"name": "rg-1"}, "type": "object"}}
    (infra / "terraform.tfstate").write_text(json.dumps({"version": 4, "outputs": outputs}))
    message = missing(settings_of(project, subscription_id="sub"))
    assert message.startswith("the Azure ML workspace is needed for")
    assert "Terraform output azureml_workspace (not in deploy/001-iac/terraform.tfstate)" in message


def test_complete_context_is_the_jobs_azure_environment(project: Path) -> None:
    settings = settings_of(project, subscription_id="sub", resource_group="rg", workspace_name="ws")
    assert require_azure_context(settings, NEEDED_FOR) == {
        "AZURE_SUBSCRIPTION_ID": "sub",
        "AZURE_RESOURCE_GROUP": "rg",
        "AZUREML_WORKSPACE_NAME": "ws",
        "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com",
        "MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
    }

"""Helpers every workload uses: the code payload, the Azure context, model names."""

from __future__ import annotations

import re

from robotrain.errors import UserError
from robotrain.job import Payload
from robotrain.payload import code_sources, pack
from robotrain.payload_secrets import allowed_secrets
from robotrain.settings import Settings

AZURE_CONTEXT = {
    "subscription_id": "AZURE_SUBSCRIPTION_ID",
    "resource_group": "AZURE_RESOURCE_GROUP",
    "workspace_name": "AZUREML_WORKSPACE_NAME",
}


def pack_training_code(settings: Settings) -> Payload:
    """Pack the training folder (and ``common`` beside it) into ``.robotrain/payloads/``.

    Secrets are refused unless robotrain.toml allows them; the stat cache is ``.robotrain/cache/``.
    """
    training_dir = settings.path("training_dir")
    assert training_dir is not None
    sources = code_sources(training_dir)
    state = settings.state_dir
    return pack(sources, state / "payloads", allowed_secrets(settings.config), state / "cache")


def azure_environment(settings: Settings) -> dict[str, str]:
    """The Azure context the training code reads (only the values that are set)."""
    mlflow = {  # resolved (and so checked) even when there is no Azure context to use them with
        "MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES": str(settings.get("mlflow_token_retries", 3)),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.get("mlflow_http_timeout", 60)),
    }
    environment = {
        variable: str(settings[name])
        for name, variable in AZURE_CONTEXT.items()
        if settings.get(name) and not settings.resolve(name).sensitive
    }
    if environment:
        environment |= {"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com"} | mlflow
    return environment


AZURE_CONTEXT_SOURCES = {
    "subscription_id": ("Azure subscription", "AZURE_SUBSCRIPTION_ID", None),
    "resource_group": ("Azure resource group", "AZURE_RESOURCE_GROUP", "resource_group"),
    "workspace_name": ("Azure ML workspace", "AZUREML_WORKSPACE_NAME", "azureml_workspace"),
}
"""Each part of the Azure context: what it is, its environment variable and its Terraform output."""


def require_azure_context(settings: Settings, needed_for: str) -> dict[str, str]:
    """``azure_environment`` when the whole Azure context is known, else one line naming the missing part.

    ``needed_for`` completes "... is needed for ...", e.g. ``"MLflow tracking to Azure ML on OSMO"``.
    """
    for name, (part, variable, output) in AZURE_CONTEXT_SOURCES.items():
        if not settings.get(name):
            flag = name.replace("_", "-")
            where = f"--{flag}, {variable} or {flag} in robotrain.toml"
            if output is None:
                where += ", or log in with `az login`"
            else:
                where += f", or the Terraform output {output} ({_terraform_state(settings)})"
            raise UserError(f"the {part} is needed for {needed_for}; set {where}")
    return azure_environment(settings)


def _terraform_state(settings: Settings) -> str:
    """What Terraform offered: the outputs read, or the folder looked in."""
    if not settings.get("terraform", True):
        return "Terraform is turned off: --no-terraform or terraform = false"
    source = settings.terraform_outputs().source
    if source:
        return f"not in {source}"
    folder = settings.get("terraform_dir")
    return f"none read from {folder}" if folder else "no Terraform folder is set: terraform-dir"


def model_name(text: str) -> str:
    """``Isaac-Velocity-Rough-Anymal-C-v0`` → ``isaac-velocity-rough-anymal-c-v0``."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    return re.sub(r"-{2,}", "-", name).strip("-")


def registered_name(settings: Settings, derived_from: str) -> str | None:
    """The model name to register under: given, derived, or None when skipped."""
    if settings["skip_register_checkpoint"]:
        return None
    return settings.get("register_checkpoint") or model_name(derived_from) or None

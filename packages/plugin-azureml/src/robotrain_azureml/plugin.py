"""The ``azureml`` platform: Azure ML command jobs, environments, data and model assets.

This module only declares options and dispatches; the Azure SDK is imported
inside ``robotrain_azureml.service`` functions, when a command needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from robotrain import (
    DatasetRef,
    JobSpec,
    JobStatus,
    ModelRef,
    Option,
    OptionRegistry,
    Platform,
    Settings,
    Submission,
    hookimpl,
)
from robotrain.options import COMMANDS

NAME = "azureml"
EVERY_COMMAND = frozenset(COMMANDS)


def _compute_from_terraform(outputs: object) -> str | None:
    from robotrain_azureml.spec import compute_from_terraform

    return compute_from_terraform(outputs)


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    for option in (
        Option("environment_name", "Azure ML environment name (default: the workload's)",
               env="AZUREML_ENVIRONMENT_NAME"),
        Option("environment_version", "Azure ML environment version (default: the workload's)",
               env="AZUREML_ENVIRONMENT_VERSION"),
        Option("assets_only", "register the environment and stop", kind=bool, default=False),
        Option("compute", "Azure ML compute: NAME, azureml:NAME or its ARM id "
               "(default: k8s-<AKS cluster> from Terraform)", env="AZUREML_COMPUTE",
               terraform=_compute_from_terraform),
        Option("instance_type", "instance type on the compute (gpuspot: spot nodes, which can be taken "
               "away mid-run; add --retries 3 to resubmit a preempted job from its checkpoints)",
               default="gpuspot", env="AZUREML_INSTANCE_TYPE"),
        Option("display_name", "job display name in Studio (default: --job-name or the workload's)",
               env="AZUREML_DISPLAY_NAME"),
        Option("stream", "follow the job's logs after submitting", kind=bool, default=False),
        Option("cloud", "Azure cloud: AzureCloud, AzureChinaCloud, AzureUSGovernment or one from "
               "ARM_CLOUD_METADATA_URL (default: the SDK's)", env="AZUREML_CURRENT_CLOUD",
               commands=EVERY_COMMAND),
        Option("key_vault", "Key Vault (name or URL) the job reads its secrets from at start "
               "(default: the workspace's)", env="AZURE_KEY_VAULT_NAME", terraform="key_vault_name"),
        Option("key_vault_secret", "VARIABLE=secret-name: the Key Vault secret a job secret is read "
               "from (repeat the flag; default: the variable in lowercase with '-', e.g. hf-token)",
               kind=list),
    ):  # fmt: skip
        options.add(option)


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(Platform(NAME, "Azure Machine Learning command jobs", passthrough=None, distributed=True))


@hookimpl
def robotrain_render_job(platform: str, job: JobSpec, settings: Settings) -> str | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.render(job, settings)


@hookimpl
def robotrain_submit(platform: str, job: JobSpec, settings: Settings) -> Submission | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.submit(job, settings)


@hookimpl
def robotrain_stage_dataset(platform: str, source: Path, name: str, settings: Settings) -> DatasetRef | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.stage_dataset(source, name, settings)


@hookimpl
def robotrain_register_model(platform: str, source: str, name: str, settings: Settings) -> ModelRef | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.register_model(source, name, settings)


@hookimpl
def robotrain_status(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.status(job_id, settings)


@hookimpl
def robotrain_logs(
    platform: str, job_id: str, follow: bool, write: Callable[[str], None], settings: Settings
) -> bool | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.logs(job_id, follow, write, settings)


@hookimpl
def robotrain_cancel(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.cancel(job_id, settings)


@hookimpl
def robotrain_latest_checkpoint(platform: str, job_id: str, settings: Settings) -> str | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.latest_checkpoint(job_id, settings)


@hookimpl
def robotrain_download(
    platform: str, job_id: str, destination: Path, settings: Settings
) -> list[Path] | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.download(job_id, destination, settings)

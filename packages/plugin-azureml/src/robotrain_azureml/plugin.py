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

NAME = "azureml"
TRAIN = frozenset({"train"})


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
        Option("compute", "Azure ML compute target (default: k8s-<AKS cluster> from Terraform)",
               env="AZUREML_COMPUTE", terraform=_compute_from_terraform),
        Option("instance_type", "instance type on the compute", default="gpuspot",
               env="AZUREML_INSTANCE_TYPE"),
        Option("display_name", "job display name in Studio (default: the job name)",
               env="AZUREML_DISPLAY_NAME"),
        Option("stream", "follow the job's logs after submitting", kind=bool, default=False),
    ):  # fmt: skip
        options.add(option)


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(Platform(NAME, "Azure Machine Learning command jobs"))


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

    return service.logs(job_id, follow, settings)


@hookimpl
def robotrain_cancel(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    if platform != NAME:
        return None
    from robotrain_azureml import service

    return service.cancel(job_id, settings)

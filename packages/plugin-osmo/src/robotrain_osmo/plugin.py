"""The ``osmo`` platform: jobs become NVIDIA OSMO workflows, driven through the ``osmo`` CLI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from robotrain import (
    DatasetRef,
    JobSpec,
    JobStatus,
    ModelRef,
    OptionRegistry,
    Platform,
    Settings,
    Submission,
    UserError,
    hookimpl,
)
from robotrain.payload_secrets import allowed_secrets
from robotrain_osmo import config, datasets, outputs, submit
from robotrain_osmo import follow as workflows

NAME = "osmo"


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    config.add_options(options)


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(
        Platform(
            NAME,
            "NVIDIA OSMO workflows (the osmo CLI)",
            passthrough="osmo workflow submit",
            distributed=True,
        )
    )


@hookimpl
def robotrain_render_job(platform: str, job: JobSpec, settings: Settings) -> str | None:
    return submit.render(job, settings) if platform == NAME else None


@hookimpl
def robotrain_submit(platform: str, job: JobSpec, settings: Settings) -> Submission | None:
    return submit.submit(job, settings) if platform == NAME else None


@hookimpl
def robotrain_stage_dataset(platform: str, source: Path, name: str, settings: Settings) -> DatasetRef | None:
    if platform != NAME:
        return None
    bucket = config.check_dataset_part(settings["dataset_bucket"], "--dataset-bucket")
    dataset_name = config.check_dataset_part(name, "--name")
    url = config.check_dataset_url(settings.get("dataset_url"))
    uses_url = datasets.client_version() >= datasets.FIRST_URL_VERSION
    target = datasets.target_for(dataset_name, bucket, url, uses_url)
    return datasets.stage(source, target, settings.state_dir, allow=allowed_secrets(settings.config))


@hookimpl
def robotrain_register_model(platform: str, source: str, name: str, settings: Settings) -> ModelRef | None:
    if platform != NAME:
        return None
    raise UserError(
        "OSMO has no model registry (training on OSMO registers its own checkpoint via "
        "--register-checkpoint); register an existing checkpoint with --platform azureml or --platform local"
    )


@hookimpl
def robotrain_status(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    return workflows.query(job_id) if platform == NAME else None


@hookimpl
def robotrain_logs(
    platform: str, job_id: str, follow: bool, write: Callable[[str], None], settings: Settings
) -> bool | None:
    return workflows.logs(job_id, follow, write) if platform == NAME else None


@hookimpl
def robotrain_cancel(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    return workflows.cancel(job_id) if platform == NAME else None


@hookimpl
def robotrain_list_jobs(platform: str, job_ids: Sequence[str], settings: Settings) -> list[JobStatus] | None:
    return workflows.list_states(job_ids) if platform == NAME else None


@hookimpl
def robotrain_download(
    platform: str, job_id: str, destination: Path, settings: Settings
) -> list[Path] | None:
    return outputs.download(job_id, destination, settings) if platform == NAME else None


@hookimpl
def robotrain_latest_checkpoint(platform: str, job_id: str, settings: Settings) -> str | None:
    return outputs.latest_checkpoint(job_id, settings) if platform == NAME else None

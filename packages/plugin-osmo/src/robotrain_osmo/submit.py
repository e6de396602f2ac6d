"""Turning a job into an ``osmo workflow submit`` call: generated spec or the user's own template."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robotrain import JobSpec, Payload, Settings, Submission, UserError
from robotrain.payload import unpack
from robotrain_osmo import datasets, runner
from robotrain_osmo.config import OsmoConfig, load_config
from robotrain_osmo.spec import (
    CodeDelivery,
    DatasetCode,
    InlineCode,
    fits_inline,
    payload_root,
    render_spec,
    to_yaml,
    too_large_inline,
)

PLATFORM = "osmo"
AZURE_VALUES = {
    "AZURE_SUBSCRIPTION_ID": "azure_subscription_id",
    "AZURE_RESOURCE_GROUP": "azure_resource_group",
    "AZUREML_WORKSPACE_NAME": "azure_workspace_name",
}
MIN_SECRET_LENGTH = 4


def config_for(job: JobSpec, settings: Settings) -> OsmoConfig:
    return load_config(settings, job.resources, job.timeout_seconds)


def payload_mode(job: JobSpec, config: OsmoConfig) -> str | None:
    """``inline``, ``dataset`` or None (no code): the user's choice, else inline when it fits."""
    if job.payload is None:
        return None
    if config.payload_mode == "inline" and not fits_inline(job.payload):
        raise too_large_inline(job.payload)
    return config.payload_mode or ("inline" if fits_inline(job.payload) else "dataset")


def render(job: JobSpec, settings: Settings) -> str:
    """What ``train --dry-run`` prints; contacts nothing."""
    config = config_for(job, settings)
    if config.workflow is not None:
        text = to_yaml(template_preview(job, config, settings))
    else:
        text = to_yaml(render_spec(job, config, _dry_run_code(job, config, settings)))
    guard_secrets(settings, [text])
    return text


def _dry_run_code(job: JobSpec, config: OsmoConfig, settings: Settings) -> CodeDelivery:
    mode = payload_mode(job, config)
    if mode is None or job.payload is None:
        return None
    if mode == "inline":
        return InlineCode(job.payload)
    target = datasets.Target(
        config.dataset_name, config.dataset_bucket, config.dataset_url, bool(config.dataset_url)
    )
    known = datasets.known_version(settings.state_dir, target, job.payload.sha256)
    if known is not None:
        reference = known.uri
    elif target.uses_url:
        reference = target.url_for(job.payload.sha256)
    else:
        reference = f"{target.bucket}/{target.name}"
    sys.stderr.write(
        f"robotrain: note: dry run: on submit the code is staged as {reference}"
        f"{'' if known or target.uses_url else ' (the new version is referenced then)'}\n"
    )
    return DatasetCode(reference, target.uses_url)


def submit(job: JobSpec, settings: Settings) -> Submission:
    """Check everything, stage the code if it goes by dataset, then submit the spec."""
    config = config_for(job, settings)
    if config.workflow is not None:
        return submit_template(job, config, settings)
    mode = payload_mode(job, config)
    provisional = _provisional_code(job, config, mode)
    guard_secrets(
        settings, [to_yaml(render_spec(job, config, provisional)), *submit_options(config, settings)]
    )
    code = stage_code(job.payload, config, settings) if mode == "dataset" and job.payload else provisional
    text = to_yaml(render_spec(job, config, code))
    path = _write_spec(settings.state_dir, job.name, text)
    args = ["workflow", "submit", str(path), "-t", "json", *submit_options(config, settings)]
    guard_secrets(settings, [text, *args])
    return submission(runner.run_json(args), path)


def _provisional_code(job: JobSpec, config: OsmoConfig, mode: str | None) -> CodeDelivery:
    if mode is None or job.payload is None:
        return None
    if mode == "inline":
        return InlineCode(job.payload)
    return DatasetCode(f"{config.dataset_bucket}/{config.dataset_name}")


def stage_code(payload: Payload, config: OsmoConfig, settings: Settings) -> DatasetCode:
    """Stage the unpacked code archive as the configured dataset (unchanged code is not uploaded again)."""
    uses_url = datasets.client_version() >= datasets.FIRST_URL_VERSION
    target = datasets.target_for(config.dataset_name, config.dataset_bucket, config.dataset_url, uses_url)
    source = unpacked_code(payload, settings.state_dir)
    staged = datasets.stage(source, target, settings.state_dir, digest=payload.sha256)
    print(
        f"robotrain: code dataset {staged.uri} ({'uploaded' if staged.uploaded else 'unchanged'})",
        file=sys.stderr,
    )
    return DatasetCode(staged.uri, uses_url)


def unpacked_code(payload: Payload, state_dir: Path) -> Path:
    folder = code_folder(payload, state_dir)
    if not folder.is_dir():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        unpack(payload, partial)
        partial.rename(folder)
    return folder


def code_folder(payload: Payload, state_dir: Path) -> Path:
    return state_dir / "osmo" / "code" / payload.short_hash


def submit_options(config: OsmoConfig, settings: Settings) -> list[str]:
    """Pool, priority, labels and the user's extra arguments (after ``--``) for ``osmo workflow submit``."""
    options = ["-p", config.pool] if config.pool else []
    options += ["--priority", config.priority] if config.priority else []
    for label in config.labels:
        options += ["--label", label]
    return options + list(settings.extra_args)


def submission(result: Any, spec_path: Path) -> Submission:
    if not isinstance(result, dict) or not result.get("name"):
        raise UserError(f"`osmo workflow submit` answered without a workflow id: {str(result)[:200]}")
    details = {
        "logs": result.get("logs"),
        "dashboard_url": result.get("dashboard_url"),
        "warnings": list(result.get("warnings") or []),
        "spec_file": str(spec_path),
    }
    return Submission(PLATFORM, str(result["name"]), result.get("overview"), details)


def _write_spec(state_dir: Path, name: str, text: str) -> Path:
    folder = state_dir / "osmo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def template_values(job: JobSpec, config: OsmoConfig, settings: Settings) -> dict[str, str]:
    """The job's values under the variable names the OSMO scripts passed to their workflow templates."""
    values: dict[str, Any] = {
        "image": job.image.uri,
        "payload_root": payload_root(job.workload),
        "checkpoint_uri": job.checkpoint.uri,
        "checkpoint_mode": job.checkpoint.mode.value,
        "register_checkpoint": job.checkpoint.register_as,
        "training_backend": job.environment.get("TRAINING_BACKEND"),
        "dataset_bucket": config.dataset_bucket,
        "dataset_name": config.dataset_name,
        **vars(config.resources),
    }
    if job.workload == "isaaclab":
        values |= {
            "task": settings.get("task"),
            "num_envs": settings.get("num_envs"),
            "max_iterations": settings.get("max_iterations"),
            "run_azure_smoke_test": "1" if settings.get("run_smoke_test") else "0",
        }
    values |= {name: job.environment.get(variable) for variable, name in AZURE_VALUES.items()}
    if job.payload is not None and config.workflow is not None:
        training = code_folder(job.payload, settings.state_dir) / "training"
        values["training_localpath"] = os.path.relpath(training, config.workflow.parent)
    return {key: str(value) for key, value in values.items() if value not in (None, "")}


def template_arguments(job: JobSpec, config: OsmoConfig, settings: Settings) -> list[str]:
    assert config.workflow is not None
    values = template_values(job, config, settings)
    pairs = [f"{key}={value}" for key, value in values.items()]
    return [str(config.workflow), "-t", "json", *submit_options(config, settings), "--set-string", *pairs]


def template_preview(job: JobSpec, config: OsmoConfig, settings: Settings) -> dict[str, Any]:
    if config.payload_mode == "inline":
        raise _inline_template_error()
    return {
        "workflow_file": str(config.workflow),
        "set_string": template_values(job, config, settings),
        "command": ["osmo", "workflow", "submit", *template_arguments(job, config, settings)],
    }


def submit_template(job: JobSpec, config: OsmoConfig, settings: Settings) -> Submission:
    """Submit the user's templated workflow with ``--set-string`` values; the code goes as its localpath."""
    if config.payload_mode == "inline":
        raise _inline_template_error()
    args = ["workflow", "submit", *template_arguments(job, config, settings)]
    guard_secrets(settings, args)
    if job.payload is not None:
        unpacked_code(job.payload, settings.state_dir)
    assert config.workflow is not None
    return submission(runner.run_json(args), config.workflow)


def _inline_template_error() -> UserError:
    return UserError(
        "--payload inline cannot be used with --workflow: the archive would travel in argv and an "
        "environment variable (128 KiB limit); use --payload dataset or drop --workflow"
    )


def sensitive_values(settings: Settings) -> list[str]:
    """Values of settings that are sensitive (by option or because Terraform marks the output so)."""
    found = []
    for option in settings.options:
        if not (option.sensitive or option.terraform is not None):
            continue
        try:
            resolved = settings.resolve(option.name)
        except UserError:
            continue
        if resolved.sensitive and resolved.value not in (None, ""):
            found.append(str(resolved.value))
    return [value for value in found if len(value) >= MIN_SECRET_LENGTH]


def guard_secrets(settings: Settings, texts: Sequence[str]) -> None:
    """Refuse to send anything that carries the value of a sensitive setting."""
    for value in sensitive_values(settings):
        if any(value in text for text in texts):
            raise UserError(
                "a sensitive setting's value would be sent to OSMO in the spec or the command line; "
                "pass it as an OSMO credential instead"
            )

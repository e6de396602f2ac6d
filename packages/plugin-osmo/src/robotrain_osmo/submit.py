"""Turning a job into an ``osmo workflow submit`` call: the generated spec or the user's own template.

Everything that can be checked without OSMO is checked first; then the client version (``osmo
version``), the credentials (``osmo credential list``), staging, and the submission.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from robotrain import JobSpec, Payload, Settings, Submission, UserError
from robotrain.payload import unpack
from robotrain.payload_secrets import allowed_secrets
from robotrain_osmo import datasets, runner
from robotrain_osmo.config import OsmoConfig, check_labels_supported, load_config
from robotrain_osmo.spec import (
    ENV_STRING_LIMIT,
    WORKFLOW_ID_TOKEN,
    CodeDelivery,
    DatasetCode,
    InlineCode,
    Layout,
    TaskInput,
    archive_comment,
    archive_placeholder,
    check_nodes,
    checkpoint_output,
    credentials,
    encoded_archive,
    fits_inline,
    payload_root,
    render_spec,
    rendezvous_note,
    resume_from,
    tasks_of,
    to_yaml,
    too_large_inline,
)

PLATFORM = "osmo"
AZURE_VALUES = {
    "AZURE_SUBSCRIPTION_ID": "azure_subscription_id",
    "AZURE_RESOURCE_GROUP": "azure_resource_group",
    "AZUREML_WORKSPACE_NAME": "azure_workspace_name",
}
ARCHIVE_VARIABLE = "encoded_archive"
"""The variable the scripts' ``train.yaml`` template takes the base64 archive in."""
MIN_SECRET_LENGTH = 4
NODES_VARIABLE, GPUS_VARIABLE = "n_nodes", "n_gpus_per_node"
"""Template variables of a distributed job (docs/user_guide/how_to/training/multi_node.rst)."""
SPEC_FILE = "<spec file>"


def config_for(job: JobSpec, settings: Settings) -> OsmoConfig:
    return load_config(settings, job.resources, job.timeout_seconds)


def payload_mode(job: JobSpec, config: OsmoConfig) -> str | None:
    """``inline``, ``dataset`` or None (no code): the user's choice, else inline when it fits."""
    if job.payload is None:
        return None
    check_nodes(job)
    if config.payload_mode == "inline" and not fits_inline(job.payload, job.nodes):
        raise too_large_inline(job.payload, job.nodes)
    return config.payload_mode or ("inline" if fits_inline(job.payload, job.nodes) else "dataset")


def layout_for(
    job: JobSpec, config: OsmoConfig, settings: Settings, version: tuple[int, int], code: CodeDelivery
) -> Layout:
    """Inputs and the checkpoint output for this client version (nothing is contacted)."""
    output, location = checkpoint_output(job, config, version)
    inputs = {
        name: datasets.job_input(
            name, value, config.dataset_bucket, config.dataset_url, version, settings.state_dir
        )
        for name, value in job.inputs.items()
    }
    return Layout(version, code, inputs, output, location, resume_from(job.checkpoint.uri, version))


# --- dry run -------------------------------------------------------------------------------------


def render(job: JobSpec, settings: Settings) -> str:
    """What ``train --dry-run`` prints: the spec (archive shown as size, hash and files), and how it
    would be submitted. Calls ``osmo version`` at most (a local query)."""
    config = config_for(job, settings)
    version, version_source = datasets.version_for_dry_run(settings.get("osmo_client_version"))
    check_labels_supported(config.labels, version)
    if config.workflow is not None:
        text = template_preview(job, config, settings)
    else:
        layout = layout_for(job, config, settings, version, _dry_run_code(job, config, settings, version))
        spec = render_spec(job, config, layout)
        archive = layout.code.payload if isinstance(layout.code, InlineCode) else None
        notes = [
            f"OSMO client {version[0]}.{version[1]} ({version_source})",
            "submitted as: " + shlex.join(["osmo", *submit_arguments(SPEC_FILE, config, settings)]),
            f"checkpoints are kept in: {layout.checkpoint_location}",
            *rendezvous_note(job),
            *credential_notes(job),
            *(archive_comment(archive) if archive else []),
        ]
        text = _comments(notes) + to_yaml(spec, archive_placeholder(archive) if archive else None)
    guard_secrets(settings, [text])
    return text


def _comments(lines: Sequence[str]) -> str:
    return "".join(f"# {line}\n" for line in lines)


def _dry_run_code(
    job: JobSpec, config: OsmoConfig, settings: Settings, version: tuple[int, int]
) -> CodeDelivery:
    mode = payload_mode(job, config)
    if mode is None or job.payload is None:
        return None
    if mode == "inline":
        return InlineCode(job.payload)
    uses_url = version >= datasets.FIRST_URL_VERSION
    target = datasets.target_for(config.dataset_name, config.dataset_bucket, config.dataset_url, uses_url)
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


def credential_notes(job: JobSpec) -> list[str]:
    return [
        f"credential {name} must exist in OSMO with key(s) {', '.join(sorted(keys.values()))}: "
        f"osmo credential set {name} --type GENERIC --payload "
        + " ".join(f"{key}=..." for key in sorted(keys.values()))
        for name, keys in credentials(job).items()
    ]


# --- submit --------------------------------------------------------------------------------------


def submit(job: JobSpec, settings: Settings) -> Submission:
    """Check everything, stage the code if it goes by dataset, then submit the spec."""
    config = config_for(job, settings)
    mode = payload_mode(job, config) if config.workflow is None else None
    version = datasets.client_version()
    check_labels_supported(config.labels, version)
    if config.workflow is not None:
        return submit_template(job, config, settings)
    provisional = _provisional_code(job, config, mode, version)
    layout = layout_for(job, config, settings, version, provisional)
    spec = render_spec(job, config, layout)
    guard_secrets(settings, [json.dumps(spec), *submit_options(config, settings)])  # the YAML is written once
    check_credentials(job)
    if mode == "dataset" and job.payload is not None:
        staged = stage_code(job.payload, config, settings, version)
        for task in tasks_of(spec):
            task["inputs"][0] = _code_input(staged).entry
    archive = job.payload if mode == "inline" and job.payload is not None else None
    text = to_yaml(spec, encoded_archive(archive) if archive else None)
    path = _write_spec(settings.state_dir, job.name, text)
    result = runner.run_json(submit_arguments(str(path), config, settings))
    submission = submission_from(result, path)
    location = layout.checkpoint_location.replace(WORKFLOW_ID_TOKEN, submission.job_id)
    return replace(submission, details={**submission.details, "checkpoints": location})


def _code_input(code: DatasetCode) -> TaskInput:
    return TaskInput.url(code.reference) if code.is_url else TaskInput.dataset(code.reference)


def _provisional_code(
    job: JobSpec, config: OsmoConfig, mode: str | None, version: tuple[int, int]
) -> CodeDelivery:
    if mode is None or job.payload is None:
        return None
    if mode == "inline":
        return InlineCode(job.payload)
    uses_url = version >= datasets.FIRST_URL_VERSION
    target = datasets.target_for(config.dataset_name, config.dataset_bucket, config.dataset_url, uses_url)
    return DatasetCode(target.url_for(job.payload.sha256) if uses_url else target.key, uses_url)


def check_credentials(job: JobSpec) -> None:
    """Refuse before submitting when ``osmo credential list`` works and lacks a credential the job uses.

    src/cli/credential.py: ``--format-type`` belongs to ``credential``, before ``list``; the answer is
    ``{"credentials": [{"cred_name": ...}]}`` (names only: the keys cannot be checked from here).
    """
    needed = credentials(job)
    if not needed:
        return
    try:
        listed = runner.run_json(["credential", "--format-type", "json", "list"])
        names = {str(item.get("cred_name")) for item in listed["credentials"]}
    except (UserError, KeyError, TypeError, AttributeError):
        print(
            "robotrain: note: could not list OSMO credentials; not checked before submitting", file=sys.stderr
        )
        return
    missing = [name for name in needed if name not in names]
    if missing:
        name = missing[0]
        keys = " ".join(f"{key}=..." for key in sorted(needed[name].values()))
        raise UserError(
            f"OSMO credential {name} does not exist ({', '.join(missing)} missing); create it with "
            f"`osmo credential set {name} --type GENERIC --payload {keys}` and submit again"
        )


def stage_code(
    payload: Payload, config: OsmoConfig, settings: Settings, version: tuple[int, int]
) -> DatasetCode:
    """Stage the unpacked code archive as the configured dataset (unchanged code is not uploaded again)."""
    uses_url = version >= datasets.FIRST_URL_VERSION
    target = datasets.target_for(config.dataset_name, config.dataset_bucket, config.dataset_url, uses_url)
    source = unpacked_code(payload, settings.state_dir)
    staged = datasets.stage(
        source, target, settings.state_dir, digest=payload.sha256, allow=allowed_secrets(settings.config)
    )
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


def submit_arguments(workflow_file: str, config: OsmoConfig, settings: Settings) -> list[str]:
    """``workflow submit FILE -t json ...``: the file first, since ``--set`` and friends take
    ``nargs='+'`` and would swallow a trailing positional (src/cli/workflow.py)."""
    return ["workflow", "submit", workflow_file, "-t", "json", *submit_options(config, settings)]


def submission_from(result: Any, spec_path: Path) -> Submission:
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
    """Write the spec whole or not at all (a temporary file renamed into place)."""
    folder = state_dir / "osmo"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yaml"
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


# --- user templates ------------------------------------------------------------------------------


def template_values(job: JobSpec, config: OsmoConfig, settings: Settings) -> dict[str, str]:
    """The job's values under the variable names the OSMO scripts passed to their workflow templates."""
    values: dict[str, Any] = {
        "image": job.image.uri,
        "payload_root": payload_root(job, config),
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


def _prepared_template(
    job: JobSpec, config: OsmoConfig, settings: Settings
) -> tuple[str, dict[str, str], dict[str, Any], list[str]]:
    """The template rendered like OSMO would, the ``--set-string`` values and the submit arguments."""
    from robotrain_osmo import templates  # Jinja2 only when a template is used

    assert config.workflow is not None
    where = f"--workflow {config.workflow.name}"
    text = config.workflow.read_text(encoding="utf-8")
    values = template_values(job, config, settings)
    expected = templates.expected_variables(text, where)
    scale = distributed_values(job, expected, where)
    if ARCHIVE_VARIABLE in expected:
        values[ARCHIVE_VARIABLE] = _archive_value(job, where)
    elif config.payload_mode == "inline":
        raise UserError(
            f"--payload inline with {where}: the template takes no {ARCHIVE_VARIABLE}; use --payload "
            f"dataset (the code goes as training_localpath) or drop --workflow to use the generated spec"
        )
    rendered, spec = templates.render(text, {**values, **scale}, where)
    _check_template_environment(spec, where)
    pairs = [f"{key}={value}" for key, value in values.items()]
    args = [*submit_arguments(str(config.workflow), config, settings), "--set-string", *pairs]
    if scale:  # --set: OSMO casts to int (6.3.1 keeps only the last --set, so one holds both)
        args += ["--set", *(f"{key}={value}" for key, value in scale.items())]
    return rendered, values, spec, args


def distributed_values(job: JobSpec, expected: set[str], where: str) -> dict[str, int]:
    """``n_nodes`` and ``n_gpus_per_node`` (the names of OSMO's multi-node example) for a distributed
    job; a template that does not use the one it needs would silently train on one node or GPU."""
    if job.world_size == 1:
        return {}
    scale = {NODES_VARIABLE: job.nodes, GPUS_VARIABLE: job.processes_per_node}
    needed = [NODES_VARIABLE] if job.nodes > 1 else []
    needed += [GPUS_VARIABLE] if job.processes_per_node > 1 else []
    missing = [name for name in needed if name not in expected]
    if missing:
        raise UserError(
            f"{where} does not use {' or '.join(missing)}, so it would ignore --nodes {job.nodes} "
            f"--gpus {job.processes_per_node}; write it like OSMO's multi-node example (a group of "
            f"n_nodes tasks running torchrun --nproc_per_node n_gpus_per_node) or drop --workflow"
        )
    return scale


def _archive_value(job: JobSpec, where: str) -> str:
    """The base64 archive for a template's ``encoded_archive``, if it can reach the process."""
    if job.payload is None:
        raise UserError(f"{where} expects {ARCHIVE_VARIABLE} but this job has no code to send")
    value = encoded_archive(job.payload)
    if len(f"{ARCHIVE_VARIABLE}={value}".encode()) >= ENV_STRING_LIMIT:
        raise UserError(
            f"{where} takes the code as {ARCHIVE_VARIABLE}, but the archive is {len(value):,} characters "
            f"of base64, over the 128 KiB a variable or argument can hold; use a dataset-style template "
            f"(training_localpath, like train-dataset.yaml) or drop --workflow to use the generated spec"
        )
    return value


def _check_template_environment(spec: dict[str, Any], where: str) -> None:
    workflow = spec["workflow"]
    tasks = list(workflow.get("tasks") or []) + [
        task for group in workflow.get("groups") or [] for task in group.get("tasks") or []
    ]
    for task in tasks:
        for name, value in (task.get("environment") or {}).items():
            if len(f"{name}={value}".encode()) >= ENV_STRING_LIMIT:
                raise UserError(
                    f"{where}: environment variable {name} of task {task.get('name')} is over 128 KiB "
                    f"once rendered; a process cannot receive it: use a dataset-style template"
                )


def template_preview(job: JobSpec, config: OsmoConfig, settings: Settings) -> str:
    rendered, values, _, args = _prepared_template(job, config, settings)
    shown_args = list(args)
    if ARCHIVE_VARIABLE in values and job.payload is not None:
        archive = values[ARCHIVE_VARIABLE]
        placeholder = archive_placeholder(job.payload)
        rendered = rendered.replace(archive, placeholder)
        shown_args = [arg.replace(archive, placeholder) for arg in args]
    notes = ["submitted as: " + shlex.join(["osmo", *shown_args]), *credential_notes(job)]
    if job.payload is not None and ARCHIVE_VARIABLE in values:
        notes += archive_comment(job.payload)
    return _comments(notes) + rendered


def submit_template(job: JobSpec, config: OsmoConfig, settings: Settings) -> Submission:
    """Submit the user's template with ``--set-string`` values (checked by rendering it first)."""
    _, values, _, args = _prepared_template(job, config, settings)
    guard_secrets(settings, [arg for arg in args if not arg.startswith(f"{ARCHIVE_VARIABLE}=")])
    check_credentials(job)
    if job.payload is not None and "training_localpath" in values:
        unpacked_code(job.payload, settings.state_dir)
    assert config.workflow is not None
    return submission_from(runner.run_json(args), config.workflow)


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

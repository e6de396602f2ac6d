"""Talking to Azure ML through azure-ai-ml; the SDK is imported only inside these functions."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robotrain.errors import UserError
from robotrain.job import DatasetRef, JobSpec, JobStatus, ModelRef, Submission
from robotrain.settings import Settings
from robotrain_azureml import spec
from robotrain_azureml.spec import AzureJob, Workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Command

PLATFORM = "azureml"
RETRIES = 3
"""Bounded retries of the SDK's policy for transient failures (connection errors, 408/429/5xx)."""
CONTENT_TAG = "content_sha256"
_STATES = {
    "completed": "completed", "failed": "failed", "canceled": "canceled", "canceling": "canceling",
    "notstarted": "queued", "queued": "queued", "preparing": "starting", "provisioning": "starting",
    "starting": "starting", "running": "running", "finalizing": "running", "notresponding": "running",
    "paused": "paused",
}  # fmt: skip


@contextlib.contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Turn the SDK's exceptions into one-line UserErrors."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    try:
        yield
    except UserError:
        raise
    except ClientAuthenticationError as error:
        raise UserError(
            f"{what}: Azure sign-in failed ({_first_line(error)}); run `az login` or set "
            f"AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET"
        ) from None
    except ResourceNotFoundError as error:
        raise UserError(f"{what}: not found in Azure ML ({_first_line(error)})") from None
    except HttpResponseError as error:
        raise UserError(f"{what}: Azure ML answered {error.status_code}: {_first_line(error)}") from None
    except ServiceRequestError as error:
        raise UserError(
            f"{what}: cannot reach Azure ({_first_line(error)}); check the network and try again"
        ) from None
    except Exception as error:
        if _raised_by_azure(error):
            raise UserError(f"{what}: {type(error).__name__}: {_first_line(error)}") from None
        raise


def _raised_by_azure(error: BaseException) -> bool:
    """An exception type of the SDK, or any exception raised from inside its code."""
    if type(error).__module__.startswith("azure."):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and f"{os.sep}azure{os.sep}" in frames[-1].filename


def _first_line(error: BaseException) -> str:
    """The message on one line, without the SDK's troubleshooting boilerplate."""
    message = str(getattr(error, "message", None) or error)
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("To mitigate", "Attempted credentials"))]
    return " ".join(lines)[:400] if lines else type(error).__name__


def _quiet_sdk_logging() -> None:
    """The SDK logs warnings (experimental classes, credential chains) that our one-line errors replace."""
    import azure.ai.ml  # its import sets its own logger to INFO with a stderr handler

    for name in ("azure", azure.ai.ml.__name__):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _uploading() -> Iterator[None]:
    """Swallow the terminal colour codes the SDK prints to stderr after each upload."""
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def client(settings: Settings) -> MLClient:
    """An MLClient on the configured workspace, signed in with DefaultAzureCredential."""
    return _client(spec.workspace_from(settings))


def _client(workspace: Workspace) -> MLClient:
    _quiet_sdk_logging()
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    with azure_errors("connecting to Azure ML"):
        return MLClient(
            DefaultAzureCredential(),
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.workspace_name,
            retry_total=RETRIES,
            show_progress=False,
            enable_telemetry=False,
        )


def prepare(job: JobSpec, settings: Settings) -> AzureJob:
    """Stage the code and build the job, checking every reference; imports and sends nothing."""
    code = spec.stage_code(job.payload, settings.state_dir) if job.payload is not None else None
    return spec.build(job, settings, code)


def command_node(azure_job: AzureJob) -> Command:
    """The SDK's command for ``azure_job`` (what ``jobs.create_or_update`` takes)."""
    from azure.ai.ml import Input, Output, command
    from azure.ai.ml.entities import ManagedIdentityConfiguration

    inputs: dict[str, Any] = dict(azure_job.inputs)
    inputs |= {name: Input(type="uri_folder", path=uri) for name, uri in azure_job.data_inputs.items()}
    outputs = {spec.CHECKPOINTS: Output(type="uri_folder", mode="upload")}
    outputs |= {name: Output(type="uri_folder", path=uri, mode="upload")
                for name, uri in azure_job.data_outputs.items()}  # fmt: skip
    node = command(
        name=azure_job.name,
        display_name=azure_job.display_name,
        experiment_name=azure_job.experiment,
        command=azure_job.command,
        code=str(azure_job.code) if azure_job.code is not None else None,
        environment=azure_job.environment_ref,
        environment_variables=dict(azure_job.environment_variables),
        compute=azure_job.compute,
        instance_type=azure_job.instance_type,
        inputs=inputs,
        outputs=outputs,
        identity=ManagedIdentityConfiguration(),
        tags=dict(azure_job.tags),
        timeout=azure_job.timeout_seconds,
    )
    return node


def render(job: JobSpec, settings: Settings) -> str:
    """The command job as Azure ML job YAML (loadable with ``azure.ai.ml.load_job``); imports no SDK."""
    return spec.job_yaml(prepare(job, settings))


def _warn(message: str) -> None:
    print(f"robotrain: warning: {message}", file=sys.stderr)


def ensure_environment(ml: MLClient, azure_job: AzureJob) -> bool:
    """Create the environment version from the image, or reuse it; True when created."""
    from azure.ai.ml.entities import Environment
    from azure.core.exceptions import ResourceNotFoundError

    name, version = azure_job.environment_name, azure_job.environment_version
    with azure_errors(f"environment {name}:{version}"):
        try:
            existing = ml.environments.get(name=name, version=version)
        except ResourceNotFoundError:
            ml.environments.create_or_update(Environment(name=name, version=version, image=azure_job.image))
            return True
    if existing.image != azure_job.image:
        raise UserError(
            f"environment {name}:{version} already exists with image {existing.image}, not "
            f"{azure_job.image}; give a new --environment-version"
        )
    return False


def submit(job: JobSpec, settings: Settings) -> Submission | None:
    """Register the environment and (unless --assets-only) submit the command job."""
    workspace = spec.workspace_from(settings)
    if settings.get("assets_only"):
        azure_job = spec.build(job, settings, None) if settings.get("compute") else None
        return _assets_only(job, settings, workspace, azure_job)
    azure_job = prepare(job, settings)
    _quiet_sdk_logging()
    if azure_job.omitted_secrets:
        _warn(
            "Azure ML command jobs take no secret references; "
            f"{', '.join(azure_job.omitted_secrets)} are not set: read them from Key Vault "
            "with the job's managed identity"
        )
    sdk_job = command_node(azure_job)
    ml = _client(workspace)
    ensure_environment(ml, azure_job)
    retry = spec.pending_name(settings.state_dir, azure_job.spec_hash) == azure_job.name
    spec.remember_pending(settings.state_dir, azure_job)
    created = _create_job(ml, sdk_job, azure_job, retry)
    spec.forget_pending(settings.state_dir, azure_job)
    url = workspace.studio_url(created)
    print(f"job name: {created}\nstudio: {url}")
    if settings.get("stream"):
        with azure_errors(f"streaming job {created}"):
            ml.jobs.stream(created)
    return Submission(PLATFORM, created, url, {"environment": azure_job.environment_ref})


def _assets_only(
    job: JobSpec, settings: Settings, workspace: Workspace, azure_job: AzureJob | None
) -> Submission:
    environment = azure_job or _environment_only(job, settings)
    created = ensure_environment(_client(workspace), environment)
    state = "created" if created else "exists, unchanged"
    print(f"environment {environment.environment_ref} ({state}); --assets-only: no job submitted")
    return Submission(PLATFORM, environment.environment_ref, None, {"assets_only": True})


def _environment_only(job: JobSpec, settings: Settings) -> AzureJob:
    return AzureJob(
        name="", spec_hash="", display_name="", experiment="", command="", code=None,
        environment_name=str(settings.get("environment_name") or job.image.name),
        environment_version=str(settings.get("environment_version") or job.image.version),
        image=job.image.uri, compute="", instance_type="",
    )  # fmt: skip


def _create_job(ml: MLClient, sdk_job: Command, azure_job: AzureJob, retry: bool) -> str:
    """Create the job under the client-chosen name; a retry that finds it already there uses it."""
    from azure.core.exceptions import ResourceNotFoundError

    with azure_errors(f"submitting job {azure_job.name}"):
        if retry:
            with contextlib.suppress(ResourceNotFoundError):
                return str(ml.jobs.get(azure_job.name).name)
        with _uploading():
            created = ml.jobs.create_or_update(sdk_job, experiment_name=azure_job.experiment)
        return str(created.name)


def status(job_id: str, settings: Settings) -> JobStatus:
    ml = client(settings)
    with azure_errors(f"job {job_id}"):
        found = ml.jobs.get(job_id)
    return _job_status(job_id, _text(found.status))


def _text(value: object) -> str:
    """An SDK enum's value, or the string itself."""
    return str(getattr(value, "value", value))


def _job_status(job_id: str, state: str) -> JobStatus:
    return JobStatus(PLATFORM, job_id, _STATES.get(state.lower(), state.lower()), {"azureml_status": state})


def cancel(job_id: str, settings: Settings) -> JobStatus:
    ml = client(settings)
    with azure_errors(f"cancelling job {job_id}"):
        ml.jobs.begin_cancel(job_id).wait()
        found = ml.jobs.get(job_id)
    return _job_status(job_id, _text(found.status))


def logs(job_id: str, follow: bool, settings: Settings) -> bool:
    """Stream the job's logs (the SDK prints them) until it ends; without ``follow``, only if it has."""
    ml = client(settings)
    with azure_errors(f"logs of job {job_id}"):
        found = ml.jobs.get(job_id)
        state = _job_status(job_id, _text(found.status))
        if not follow and not state.finished:
            print(f"job {job_id} is {state.state}; use --follow to stream its logs until it ends")
            return True
        ml.jobs.stream(job_id)
    return True


def content_hash(folder: Path) -> str:
    """SHA-256 over relative paths and contents of every file, in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _next_version(versions: list[str]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def stage_dataset(source: Path, name: str, settings: Settings) -> DatasetRef:
    """A ``uri_folder`` data asset; unchanged content returns the existing version."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    ml = client(settings)
    sha = content_hash(source)
    with azure_errors(f"dataset {name}"):
        existing = list(ml.data.list(name=name))
        for data in existing:
            if (data.tags or {}).get(CONTENT_TAG) == sha:
                return DatasetRef(PLATFORM, name, str(data.version), str(data.path), uploaded=False)
        version = _next_version([str(d.version) for d in existing])
        asset = Data(name=name, version=version, type=AssetTypes.URI_FOLDER, path=str(source),
                     tags={CONTENT_TAG: sha})  # fmt: skip
        with _uploading():
            created = ml.data.create_or_update(asset)
    return DatasetRef(PLATFORM, name, str(created.version), str(created.path), uploaded=True)


def _model_source(source: str, settings: Settings) -> tuple[str, str, str | None]:
    """(path for the SDK, content key, source job) for a folder, job output or ``runs:/`` URI."""
    if source.startswith("azureml://jobs/"):
        job = source.removeprefix("azureml://jobs/").split("/", 1)[0]
        return source, _text_hash(source), job
    if source.startswith("runs:/"):
        run = source.removeprefix("runs:/").split("/", 1)[0]
        if not run:
            raise UserError(f"{source}: expected runs:/<run id>/<path>")
        return source, _text_hash(source), run
    if "://" in source or source.startswith(("models:/", "azureml:")):
        raise UserError(
            f"{source}: give a local folder, azureml://jobs/<job>/outputs/<output> or runs:/<run>/<path>"
        )
    folder = Path(source) if Path(source).is_absolute() else settings.project_root / source
    if not folder.is_dir():
        raise UserError(f"model folder {source} not found; give an existing folder")
    return str(folder.resolve()), content_hash(folder), None


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def model_tags(settings: Settings, sha: str, job: str | None) -> dict[str, str]:
    tags = {CONTENT_TAG: sha}
    for tag, setting in (("framework", "backend"), ("task", "task")):
        value = settings.get(setting)
        if value:
            tags[tag] = str(value)
    if job:
        tags["source_job"] = job
    return tags


def register_model(source: str, name: str, settings: Settings) -> ModelRef:
    """A model version; the same content (or the same job output) returns the existing version."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    path, sha, job = _model_source(source, settings)
    ml = client(settings)
    with azure_errors(f"model {name}"):
        existing = list(ml.models.list(name=name))
        for model in existing:
            if (model.tags or {}).get(CONTENT_TAG) == sha:
                return ModelRef(PLATFORM, name, str(model.version), _model_uri(name, model.version), False)
        version = _next_version([str(m.version) for m in existing])
        asset = Model(name=name, version=version, path=path, type=AssetTypes.CUSTOM_MODEL,
                      tags=model_tags(settings, sha, job))  # fmt: skip
        with _uploading():
            created = ml.models.create_or_update(asset)
    return ModelRef(PLATFORM, name, str(created.version), _model_uri(name, created.version), True)


def _model_uri(name: str, version: object) -> str:
    return f"azureml:{name}:{version}"

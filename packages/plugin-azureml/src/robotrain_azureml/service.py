"""Talking to Azure ML through azure-ai-ml; the SDK is imported only inside these functions."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from robotrain.errors import UserError
from robotrain.history import record_submission
from robotrain.job import (
    FAILED,
    OUT_OF_MEMORY,
    PREEMPTED,
    DatasetRef,
    JobSpec,
    JobStatus,
    ModelRef,
    Submission,
)
from robotrain.settings import Settings
from robotrain_azureml import spec
from robotrain_azureml.spec import AzureJob, Workspace

if TYPE_CHECKING:
    from azure.ai.ml import MLClient
    from azure.ai.ml.entities import Command

PLATFORM = "azureml"
RETRIES = 3
"""Bounded retries of the SDK's policy for transient failures (connection errors, 408/429/5xx)."""
SIGN_IN_BACKOFF = 0.2
"""Seconds the sign-in's retries back off by (doubling; azure-core's default 0.8 makes a refused
connection cost ~5 s before the credential gives up, and `invoke jobs` waits 10 s for every platform)."""
CONTENT_TAG = "content_sha256"
SPOT = "spot"
"""An instance type with this in its name runs on spot (low-priority) nodes, like the default ``gpuspot``."""
STATES = {
    "notstarted": "queued", "queued": "queued", "scheduled": "queued",
    "preparing": "starting", "provisioning": "starting", "starting": "starting",
    "running": "running", "finalizing": "running", "notresponding": "running",
    "cancelrequested": "canceling", "paused": "paused", "unknown": "unknown",
    "completed": "completed", "failed": "failed", "canceled": "canceled",
}  # fmt: skip
"""Every state the service reports (``azure.ai.ml.operations._run_history_constants.JobStatus`` and the
REST ``JobStatus`` enum) → robotrain's state."""
PREEMPTION = re.compile(r"PreemptionError|pre-?empted", re.IGNORECASE)
"""A failed run's error after its node was taken away. Azure ML has no preempted job state
(``_run_history_constants.JobStatus``, REST ``JobStatus``): a low-priority AmlCompute job is either
restarted by the service (it goes back to Queued and runs again under the same name, see the README)
or ends Failed with "AzureMLCompute job failed. PreemptionError: Nodes of this job got pre-empted.
..." (MicrosoftDocs/azure-docs#66288, Azure/MachineLearningNotebooks#1242)."""
OUT_OF_MEMORY_ERROR = re.compile(r"OOMKilled|out of memory|OutOfMemoryError", re.IGNORECASE)
"""A failed run's error when a process ran out of memory: Kubernetes' container termination reason
``OOMKilled`` (Kubernetes compute), the kernel's "Out of memory: Killed process", PyTorch's
``torch.OutOfMemoryError: CUDA out of memory``."""
USER_LOG = re.compile(r"^user_logs/std_log.*\.txt$")
"""The job's own output (``JobLogPattern.COMMON_RUNTIME_ALL_USER_LOG_PATTERN`` in the SDK)."""
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


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
    if type(error).__module__.startswith(("azure.", "msrest")):
        return True
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and f"{os.sep}azure{os.sep}" in frames[-1].filename


def _first_line(error: BaseException) -> str:
    """The message on one line, without colour codes or the SDK's troubleshooting boilerplate."""
    message = _ANSI.sub("", str(getattr(error, "message", None) or error))
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("To mitigate", "Attempted credentials"))]
    return " ".join(" ".join(lines).split())[:400] if lines else type(error).__name__


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
    return _client(spec.workspace_from(settings), settings)


def cloud_authority(settings: Settings) -> tuple[str, str]:
    """(cloud name, sign-in host) of the selected cloud, from the SDK's cloud table or ARM metadata."""
    from azure.ai.ml._azure_environments import (
        EndpointURLS,
        _get_cloud_details,
        _get_default_cloud_name,
    )

    with azure_errors("selecting the Azure cloud"):
        name = str(settings.get("cloud") or _get_default_cloud_name())
        details = _get_cloud_details(name)
    return name, str(details[EndpointURLS.ACTIVE_DIRECTORY_ENDPOINT]).rstrip("/")


def _client(workspace: Workspace, settings: Settings) -> MLClient:
    _quiet_sdk_logging()
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    cloud, authority = cloud_authority(settings)
    with azure_errors("connecting to Azure ML"):
        credential = DefaultAzureCredential(
            authority=os.environ.get("AZURE_AUTHORITY_HOST") or authority,
            retry_total=RETRIES,
            retry_backoff_factor=SIGN_IN_BACKOFF,
        )
        return MLClient(
            credential,
            subscription_id=workspace.subscription_id,
            resource_group_name=workspace.resource_group,
            workspace_name=workspace.workspace_name,
            cloud=cloud,
            retry_total=RETRIES,
            show_progress=False,
            enable_telemetry=False,
        )


def prepare(
    job: JobSpec, settings: Settings, vault_url: str | None = None, authority: str | None = None
) -> AzureJob:
    """Stage the code and build the job, checking every reference; imports and sends nothing."""
    code = spec.stage_code(job.payload, settings.state_dir)
    return spec.build(job, settings, code, vault_url, authority)


def command_node(azure_job: AzureJob) -> Command:
    """The SDK's command for ``azure_job`` (what ``jobs.create_or_update`` takes)."""
    from azure.ai.ml import Input, Output, PyTorchDistribution, command
    from azure.ai.ml.entities import ManagedIdentityConfiguration

    inputs: dict[str, Any] = dict(azure_job.inputs)
    inputs |= {name: Input(type="uri_folder", path=uri, mode="ro_mount")
               for name, uri in {**azure_job.data_inputs, **azure_job.mounted_inputs}.items()}  # fmt: skip
    outputs = {spec.CHECKPOINTS: Output(type="uri_folder", mode="upload")}
    outputs |= {name: Output(type="uri_folder", path=uri, mode="upload")
                for name, uri in azure_job.data_outputs.items()}  # fmt: skip
    distributed = azure_job.distributed
    return command(
        name=azure_job.name,
        display_name=azure_job.display_name,
        experiment_name=azure_job.experiment,
        command=azure_job.command,
        code=str(azure_job.code) if azure_job.code is not None else None,
        environment=azure_job.environment_ref,
        environment_variables=dict(azure_job.environment_variables),
        compute=azure_job.compute,
        instance_type=azure_job.instance_type,
        instance_count=azure_job.instance_count if distributed else None,
        distribution=PyTorchDistribution(process_count_per_instance=azure_job.processes_per_instance)
        if distributed
        else None,
        inputs=inputs,
        outputs=outputs,
        identity=ManagedIdentityConfiguration(),
        tags=dict(azure_job.tags),
        timeout=azure_job.timeout_seconds,
    )


def render(job: JobSpec, settings: Settings) -> str:
    """The command job as Azure ML job YAML (loadable with ``azure.ai.ml.load_job``); imports no SDK."""
    return spec.job_yaml(prepare(job, settings))


def ensure_environment(ml: MLClient, azure_job: AzureJob) -> bool:
    """Create the environment version from the image, or reuse it; True when created.

    Asset versions are immutable on the service: an existing version with another image is refused.
    """
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


def workspace_key_vault(ml: MLClient, settings: Settings) -> str:
    """The URL of the workspace's own Key Vault (from the workspace's ``key_vault`` ARM id)."""
    with azure_errors("looking up the workspace's Key Vault"):
        found = ml.workspaces.get(ml.workspace_name)
    vault_id = str(getattr(found, "key_vault", "") or "")
    name = vault_id.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise UserError(
            "the workspace has no Key Vault to read the job's secrets from; give --key-vault "
            "(or AZURE_KEY_VAULT_NAME, or a key_vault_name Terraform output)"
        )
    suffix = spec.CLOUDS.get(spec.cloud_from(settings), spec.CLOUDS[spec.DEFAULT_CLOUD])[1]
    return f"https://{name}.{suffix}"


def pinned_inputs(ml: MLClient, job: JobSpec) -> dict[str, str]:
    """Each ``NAME`` input as ``NAME:VERSION`` of the dataset's latest version, so the job records which.

    (The SDK cannot resolve ``azureml:NAME@latest`` given as an ``Input`` path in code: it looks up an
    asset named ``azureml:NAME``.)
    """
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import ResourceNotFoundError

    pinned = {}
    for input_name, reference in job.inputs.items():
        asset = reference.removeprefix("azureml:")
        if ":" in asset:
            pinned[input_name] = asset
            continue
        with azure_errors(f"dataset {asset}"):
            try:
                latest = ml.data.get(name=asset, label="latest")
            except (ResourceNotFoundError, MlException) as error:
                if not _not_found(error):
                    raise
                raise UserError(
                    f"job input {input_name}: dataset {asset} is not in the workspace; stage it with "
                    f"`invoke stage-dataset FOLDER --platform azureml --name {asset}`"
                ) from None
        pinned[input_name] = f"{asset}:{latest.version}"
    return pinned


def _not_found(error: BaseException | None) -> bool:
    """Whether the SDK's error (or one it was raised from) says the asset does not exist."""
    from azure.ai.ml.exceptions import ValidationErrorType
    from azure.core.exceptions import ResourceNotFoundError

    while error is not None:
        if isinstance(error, ResourceNotFoundError):
            return True
        if getattr(error, "error_type", None) == ValidationErrorType.RESOURCE_NOT_FOUND:
            return True
        error = error.__cause__ or error.__context__
    return False


def submit(job: JobSpec, settings: Settings) -> Submission | None:
    """Register the environment and (unless --assets-only) submit the command job."""
    workspace = spec.workspace_from(settings)
    if settings.get("assets_only"):
        return _assets_only(job, settings, workspace)
    prepare(job, settings)  # every reference is checked before the first request
    ml = _client(workspace, settings)
    azure_job = _resolved(ml, job, settings)
    sdk_job = command_node(azure_job)  # the SDK's own checks, before anything is created
    ensure_environment(ml, azure_job)
    created = _submit_once(ml, sdk_job, azure_job, settings.state_dir)
    url = workspace.studio_url(created)
    checkpoints = spec.job_output_uri(created, spec.CHECKPOINTS)
    submission = Submission(PLATFORM, created, url, {"environment": azure_job.environment_ref,
                                                     "checkpoints": checkpoints})  # fmt: skip
    print(f"job name: {created}\nstudio: {url}")  # core prints details["checkpoints"]
    if SPOT in azure_job.instance_type.lower() and not settings.get("retries"):
        print(
            f"note: instance type {azure_job.instance_type} runs on spot nodes, which Azure can take away "
            f"mid-run; --retries 3 resubmits a preempted job from its checkpoints"
        )
    if settings.get("stream"):
        record_submission(settings.state_dir, submission)  # in history even if the stream fails
        _stream(ml, created)
    return submission


def _resolved(ml: MLClient, job: JobSpec, settings: Settings) -> AzureJob:
    """The job with what only the workspace knows: its Key Vault, its cloud's authority, dataset versions."""
    _, authority = cloud_authority(settings)
    vault = spec.key_vault_url(settings)
    if job.secrets and vault is None:
        vault = workspace_key_vault(ml, settings)
    return prepare(job.evolve(inputs=pinned_inputs(ml, job)), settings, vault, authority)


def _submit_once(ml: MLClient, sdk_job: Command, azure_job: AzureJob, state_dir: Path) -> str:
    """Create the job; its name stays recorded as pending until the service has accepted it."""
    retry = spec.pending_name(state_dir, azure_job.spec_hash) == azure_job.name
    spec.remember_pending(state_dir, azure_job)
    created = _create_job(ml, sdk_job, azure_job, retry)
    spec.forget_pending(state_dir, azure_job)
    return created


def _assets_only(job: JobSpec, settings: Settings, workspace: Workspace) -> Submission:
    environment = _environment_only(job, settings)
    created = ensure_environment(_client(workspace, settings), environment)
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
    """Create the job under its client-chosen name.

    Job names are unique in a workspace for good, so a name that is taken is ours only when the job
    there carries this submission's fingerprint: an earlier attempt (an interrupted submit, or a
    PUT whose answer was lost) that got through. ``retry``: the name comes from an interrupted submit.
    """
    from azure.core.exceptions import HttpResponseError

    with azure_errors(f"submitting job {azure_job.name}"):
        if retry and _is_ours(ml, azure_job):
            return azure_job.name
        try:
            with _uploading():
                created = ml.jobs.create_or_update(sdk_job, experiment_name=azure_job.experiment)
        except HttpResponseError as error:
            if error.status_code in (400, 409) and _is_ours(ml, azure_job):
                return azure_job.name
            raise
        return str(created.name)


def _is_ours(ml: MLClient, azure_job: AzureJob) -> bool:
    """Whether the job named ``azure_job.name`` exists with this submission's fingerprint."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        found = ml.jobs.get(azure_job.name)
    except ResourceNotFoundError:
        return False
    if (found.tags or {}).get(spec.FINGERPRINT_TAG) != azure_job.spec_hash:
        raise UserError(
            f"job name {azure_job.name} is already taken in the workspace by another job; "
            f"submit again (a new name is chosen) or give another --job-name"
        )
    return True


class FollowingStopped(UserError):
    """Ctrl-C while following a job's log: the job goes on."""


def _stream(ml: MLClient, job_name: str) -> None:
    """Follow the job's log until it ends (the SDK prints it); a failed job is a one-line error.

    After Ctrl-C nothing more is requested: the interrupt may have cut a response short, and the
    connection it left behind must not be read from again.
    """
    try:
        with azure_errors(f"streaming job {job_name}"):
            _follow(ml, job_name)
    except FollowingStopped:
        raise
    except UserError:
        if _state_of(ml, job_name).state == "failed":
            raise UserError(f"job {job_name} failed: {_failure(ml, job_name)}") from None
        raise
    finally:
        sys.stdout.flush()


def _follow(ml: MLClient, job_name: str) -> None:
    """``jobs.stream``, with Ctrl-C (which the SDK wraps in a JobException) said plainly."""
    try:
        ml.jobs.stream(job_name)
    except Exception as error:
        if not isinstance(error.__cause__, KeyboardInterrupt):
            raise
        raise FollowingStopped(
            f"stopped following job {job_name} (Ctrl-C); it keeps running: `invoke logs {job_name} "
            f"--follow` follows it again, `invoke cancel {job_name}` stops it"
        ) from None


def _failure(ml: MLClient, job_name: str) -> str:
    """The service's error message of a failed job, on one line."""
    with azure_errors(f"job {job_name}"):
        details = ml.jobs._runs_operations.get_run_details(job_name)
    error = getattr(details, "error", None)
    inner = getattr(error, "error", None)
    message = _ANSI.sub("", str(getattr(inner, "message", "") or "see its log with `invoke logs`"))
    return " ".join(message.split())[:400]


def _state_of(ml: MLClient, job_id: str) -> JobStatus:
    with azure_errors(f"job {job_id}"):
        found = ml.jobs.get(job_id)
    return job_status(job_id, _text(found.status))


def status(job_id: str, settings: Settings) -> JobStatus:
    """The job's state; a failed job's run error says whether it was preempted or ran out of memory."""
    ml = client(settings)
    state = _state_of(ml, job_id)
    if state.state != FAILED:
        return state
    with azure_errors(f"job {job_id}"):
        details = ml.jobs._runs_operations.get_run_details(job_id)
    return classified(state, _run_error(details))


def _run_error(details: object) -> str:
    """``RunDetails.error.error`` (a ``RootError``) as "code: message", with its nested details."""
    parts: list[str] = []
    pending = [getattr(getattr(details, "error", None), "error", None)]
    while pending:
        error = pending.pop(0)
        if error is None:
            continue
        code, message = (str(getattr(error, key, "") or "") for key in ("code", "message"))
        parts.append(f"{code}: {message}" if code and message else code or message)
        pending += list(getattr(error, "details", None) or [])
    return _ANSI.sub("", " ".join(" ".join(part for part in parts if part).split()))


def classified(status: JobStatus, error: str) -> JobStatus:
    """A failed job as robotrain names its end: preempted, out of memory, or failed, with the error."""
    details = {**status.details, "error": error[:400]}
    if PREEMPTION.search(error):
        return JobStatus(PLATFORM, status.job_id, PREEMPTED, details)
    if OUT_OF_MEMORY_ERROR.search(error):
        details[OUT_OF_MEMORY] = True
    return JobStatus(PLATFORM, status.job_id, FAILED, details)


def _text(value: object) -> str:
    """An SDK enum's value, or the string itself."""
    return str(getattr(value, "value", value))


def job_status(job_id: str, state: str) -> JobStatus:
    """robotrain's state for the service's; an unmapped one (a newer service) is passed on lower-cased."""
    return JobStatus(PLATFORM, job_id, STATES.get(state.lower(), state.lower()), {"azureml_status": state})


def cancel(job_id: str, settings: Settings) -> JobStatus:
    """Request cancellation and report the state the service then gives (``canceling`` until canceled)."""
    ml = client(settings)
    with azure_errors(f"cancelling job {job_id}"):
        ml.jobs.begin_cancel(job_id).wait()
    return _state_of(ml, job_id)


def logs(job_id: str, follow: bool, write: Callable[[str], None], settings: Settings) -> bool:
    """A finished job's user log; a running job's log so far, or with ``follow`` streamed until it ends.

    ``jobs.stream`` only follows a running job (for a finished one it prints the run summary without
    log lines), so finished jobs' logs are read from the run history's log files.
    """
    ml = client(settings)
    state = _state_of(ml, job_id)
    if follow and not state.finished:
        _stream(ml, job_id)
        return True
    printed = _print_user_logs(ml, job_id, write)
    if not state.finished:
        write(f"-- job {job_id} is {state.state}; `invoke logs {job_id} --follow` streams until it ends\n")
    elif not printed:
        write(f"-- job {job_id} is {state.state} and has no user log\n")
    return True


def _print_user_logs(ml: MLClient, job_id: str, write: Callable[[str], None]) -> bool:
    """Write every ``user_logs/std_log*.txt`` of the job's run; True when there was any."""
    from azure.ai.ml._utils.utils import download_text_from_url

    with azure_errors(f"logs of job {job_id}"):
        details = ml.jobs._runs_operations.get_run_details(job_id)
        files = {name: url for name, url in (details.log_files or {}).items() if USER_LOG.match(name)}
        for name in sorted(files):
            text = download_text_from_url(files[name], ml.jobs._requests_pipeline, timeout=(5, 120))
            write(f"== {name}\n{text}" + ("" if text.endswith("\n") or not text else "\n"))
    return bool(files)


def _checked_copy(source: Path, name: str, settings: Settings) -> Path:
    """The files robotrain stages from ``source`` (ignore rules, no secrets), copied for the upload.

    The SDK uploads a folder as it finds it, so it gets a copy holding only what passed the checks
    packing makes: credential files and secrets are refused, caches and ``.env`` files left out.
    """
    import shutil

    from robotrain.payload import checked_files, tree_sha256
    from robotrain.payload_secrets import allowed_secrets

    entries = checked_files(
        {"": source}, f"stage {source}", allowed_secrets(settings.config), settings.state_dir / "cache"
    )
    if not entries:
        raise UserError(f"nothing to stage in {source}: every file is ignored or the folder is empty")
    copy = settings.state_dir / "azureml" / "staging" / f"{name}-{tree_sha256(entries)[:12]}"
    if not copy.is_dir():
        partial = copy.with_name(f".{copy.name}.{os.getpid()}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        for entry in entries:
            target = partial / entry.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry.path, target)
        partial.replace(copy)
    return copy


def content_hash(folder: Path) -> str:
    """The SDK's own hash of a folder, honouring the ``.amlignore``/``.gitignore`` its upload honours."""
    from azure.ai.ml._utils._asset_utils import get_ignore_file, get_object_hash

    return get_object_hash(folder, get_ignore_file(folder))


def _next_version(versions: list[str]) -> str:
    numbers = [int(v) for v in versions if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def stage_dataset(source: Path, name: str, settings: Settings) -> DatasetRef:
    """A ``uri_folder`` data asset; unchanged content returns the existing version.

    Versions count archived ones too (the service keeps their numbers), and an existing version is
    never replaced: a new version gets the next free number.
    """
    from azure.ai.ml.constants import AssetTypes, ListViewType
    from azure.ai.ml.entities import Data

    source = _checked_copy(source, name, settings)
    ml = client(settings)
    sha = content_hash(source)
    with azure_errors(f"dataset {name}"):
        existing = list(ml.data.list(name=name, list_view_type=ListViewType.ALL))
        for data in existing:
            if (data.tags or {}).get(CONTENT_TAG) == sha:
                return DatasetRef(PLATFORM, name, str(data.version), str(data.path), uploaded=False)
        version = _next_version([str(d.version) for d in existing])
        asset = Data(name=name, version=version, type=AssetTypes.URI_FOLDER, path=str(source),
                     tags={CONTENT_TAG: sha})  # fmt: skip
        with _uploading():
            created = ml.data.create_or_update(asset)
    return DatasetRef(PLATFORM, name, str(created.version), str(created.path), uploaded=True)


_JOB_OUTPUT = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:/paths/(?P<path>.*))?$")


def _model_source(source: str, settings: Settings) -> tuple[str, str, str | None, str]:
    """(path for the SDK, content key, source job, model type) for a folder, job output or ``runs:/`` URI."""
    from azure.ai.ml.constants import AssetTypes

    output = _JOB_OUTPUT.match(source)
    if output:
        path = spec.job_output_uri(output["job"], output["output"], output["path"] or "")
        return path, _text_hash(path), output["job"], AssetTypes.CUSTOM_MODEL
    if source.startswith("runs:/"):
        run, _, inner = source.removeprefix("runs:/").partition("/")
        if not run or not inner:
            raise UserError(f"{source}: expected runs:/<run id>/<path>")
        return source, _text_hash(source), run, AssetTypes.MLFLOW_MODEL
    if "://" in source or source.startswith(("models:/", "azureml:")):
        raise UserError(
            f"{source}: give a local folder, azureml://jobs/<job>/outputs/<output>/paths/<path> "
            f"or runs:/<run>/<path>"
        )
    folder = Path(source) if Path(source).is_absolute() else settings.project_root / source
    if not folder.is_dir():
        raise UserError(f"model folder {source} not found; give an existing folder")
    return str(folder.resolve()), content_hash(folder), None, AssetTypes.CUSTOM_MODEL


def _text_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def model_tags(ml: MLClient, settings: Settings, sha: str, job: str | None) -> dict[str, str]:
    """Tags of the workload that produced the checkpoint: its job's tags, else the options given."""
    from azure.core.exceptions import ResourceNotFoundError

    tags = {CONTENT_TAG: sha}
    if job:
        tags["source_job"] = job
        with contextlib.suppress(ResourceNotFoundError):
            found = ml.jobs.get(job)
            tags |= {k: str(v) for k, v in (found.tags or {}).items() if k != spec.FINGERPRINT_TAG}
            return tags
    for tag, setting in (("framework", "backend"), ("task", "task")):
        if settings.get(setting) and settings.resolve(setting).source != "default":
            tags[tag] = str(settings.get(setting))
    return tags


def register_model(source: str, name: str, settings: Settings) -> ModelRef:
    """A model version; the same content (or the same job output) returns the existing version."""
    from azure.ai.ml.constants import ListViewType
    from azure.ai.ml.entities import Model

    path, sha, job, kind = _model_source(source, settings)
    ml = client(settings)
    with azure_errors(f"model {name}"):
        existing = list(ml.models.list(name=name, list_view_type=ListViewType.ALL))
        for model in existing:
            if (model.tags or {}).get(CONTENT_TAG) == sha:
                return ModelRef(PLATFORM, name, str(model.version), _model_uri(name, model.version), False)
        version = _next_version([str(m.version) for m in existing])
        asset = Model(name=name, version=version, path=path, type=kind,
                      tags=model_tags(ml, settings, sha, job))  # fmt: skip
        with _uploading():
            created = ml.models.create_or_update(asset)
    return ModelRef(PLATFORM, name, str(created.version), _model_uri(name, created.version), True)


def _model_uri(name: str, version: object) -> str:
    return f"azureml:{name}:{version}"


def latest_checkpoint(job_id: str, settings: Settings) -> str:
    """``azureml://jobs/<job>/outputs/checkpoints/paths/`` when the job's checkpoint output holds a file,
    else "". The next attempt's train mounts that URI (read-only) for ``--checkpoint-uri``; the
    training code picks the newest checkpoint inside it."""
    ml = client(settings)
    datastore, prefix = checkpoint_location(ml, job_id)
    with azure_errors(f"checkpoints of job {job_id}"):
        written = any(True for _ in _blobs(_container(ml, datastore), prefix))
    return spec.job_output_uri(job_id, spec.CHECKPOINTS) if written else ""


def checkpoint_location(ml: MLClient, job_id: str) -> tuple[str, str]:
    """(datastore, blob prefix) of the job's ``checkpoints`` output.

    Its path when the job names one, else where Azure ML puts an output without a path:
    ``azureml/<job>/<output>/`` on the workspace's default datastore (the place the SDK's own
    ``JobOperations._get_named_output_uri`` looks for such an output).
    """
    from azure.ai.ml._utils._storage_utils import AzureMLDatastorePathUri

    with azure_errors(f"job {job_id}"):
        found = ml.jobs.get(job_id)
        output = (found.outputs or {}).get(spec.CHECKPOINTS)
        path = str(getattr(output, "path", None) or "")
        if path.startswith("azureml://datastores/") or path.startswith("azureml://subscriptions/"):
            parsed = AzureMLDatastorePathUri(path)
            return str(parsed.datastore), str(parsed.path).rstrip("/") + "/"
        default = ml.datastores.get_default().name
    return str(default), f"azureml/{job_id}/{spec.CHECKPOINTS}/"


def _container(ml: MLClient, datastore: str) -> Any:
    """A blob ``ContainerClient`` on the datastore, signed in as the SDK's own downloads are
    (``_artifact_utilities.get_datastore_info``: a SAS from the datastore, else the user's token)."""
    from azure.ai.ml._artifacts._artifact_utilities import get_datastore_info
    from azure.ai.ml._restclient.arm_ml_service.models import DatastoreType
    from azure.storage.blob import ContainerClient

    info = get_datastore_info(ml.datastores, datastore)
    if info["storage_type"] != DatastoreType.AZURE_BLOB:
        raise UserError(
            f"datastore {datastore} is {info['storage_type']}; robotrain downloads from Azure Blob "
            f"datastores only (use `az ml job download`)"
        )
    return ContainerClient(info["account_url"], info["container_name"], credential=info["credential"],
                           retry_total=RETRIES)  # fmt: skip


def _blobs(container: Any, prefix: str) -> Iterator[Any]:
    """The files under ``prefix`` (a Data Lake folder marker, ``hdi_isfolder``, is not a file)."""
    for blob in container.list_blobs(name_starts_with=prefix, include=["metadata"]):
        if (blob.metadata or {}).get("hdi_isfolder") != "true":
            yield blob


def download(job_id: str, destination: Path, settings: Settings) -> list[Path]:
    """The job's checkpoint output into ``checkpoints/`` and its run logs into ``logs/``.

    Files are read with ranged GETs (``download_blob(offset=...)``), so ``transfer.fetch`` picks a
    stopped download up where it ended. The SDK's ``jobs.download`` rewrites whole files and
    refuses jobs that are not finished; this reads whatever is there now.
    """
    from robotrain.transfer import fetch

    ml = client(settings)
    datastore, prefix = checkpoint_location(ml, job_id)
    with azure_errors(f"downloading job {job_id}"):
        container = _container(ml, datastore)
        files = [_blob_file(container.get_blob_client(blob.name), f"checkpoints/{blob.name[len(prefix):]}",
                            blob.size) for blob in _blobs(container, prefix)]  # fmt: skip
        files += _log_files(ml, job_id)
        if not files:
            raise UserError(
                f"job {job_id} has no checkpoints or logs yet; `invoke status {job_id}` shows its state"
            )
        return fetch(files, destination, f"azureml job {job_id}")


def _log_files(ml: MLClient, job_id: str) -> list[Any]:
    """Every log file of the run (``RunDetails.log_files``: name → SAS URL of a blob)."""
    from azure.storage.blob import BlobClient

    details = ml.jobs._runs_operations.get_run_details(job_id)
    files = []
    for name, url in sorted((details.log_files or {}).items()):
        blob = BlobClient.from_blob_url(url, retry_total=RETRIES)
        files.append(_blob_file(blob, f"logs/{name}", blob.get_blob_properties().size))
    return files


def _blob_file(blob: Any, relative: str, size: int) -> Any:
    from robotrain.transfer import RemoteFile

    def open_at(offset: int) -> BinaryIO:
        return io.BufferedReader(_BlobReader(blob.download_blob(offset=offset or None)))

    return RemoteFile(relative, int(size), open_at)


class _BlobReader(io.RawIOBase):
    """A ``StorageStreamDownloader`` as a readable file (it fetches the blob in ranged chunks)."""

    def __init__(self, downloader: Any) -> None:
        self._downloader = downloader

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._downloader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

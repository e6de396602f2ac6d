"""The built-in ``local`` platform: run the job in a subprocess on this machine, tracked in MLflow.

Everything lives under the project's ``.robotrain/``: ``jobs/<job-id>/`` (see
``local_jobs``), ``mlflow.db`` and ``mlartifacts/`` (see ``local_tracking``),
``datasets/`` (see ``local_datasets``).

Checkpoints: a ``runs:/`` or ``models:/`` URI given to ``train`` is downloaded
from the local store into ``jobs/<job-id>/inputs/checkpoint`` before the job
starts, and the URI in the job's command is replaced by that folder's path, so
the training code always receives a local folder. An unknown run or model stops
``train`` before anything runs. The job writes its checkpoints to
``TRAINING_CHECKPOINT_OUTPUT`` (``jobs/<job-id>/outputs/checkpoints``), which
``register-model <job-id>`` registers.

Secrets: a ``SecretRef`` is filled from the variable of the same name in your
own environment; its value is never written to job.json or the log.

Distributed jobs run on this machine only (``nodes`` must be 1): ``--gpus N`` starts
N processes of the command (on the CPUs; they are processes, not GPUs), each with
``RANK_VARIABLES`` meeting at a free loopback port, or one copy with
``NODE_VARIABLES`` when the job launches its processes (see ``local_runner``).
At most one process per CPU (at least 2); more is refused in one line.

A job with ``timeout_seconds`` is stopped after that long and recorded as
failed ("timed out after ..."). Ctrl-C at any step stops what was started: the
store is never left half-built (see ``local_tracking``), a job folder whose job
never started is removed, and a started job is recorded as canceled.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from robotrain.errors import UserError
from robotrain.history import record_submission
from robotrain.hookspecs import hookimpl
from robotrain.job import (
    CHECKPOINT_OUTPUT_VARIABLE,
    OUT_OF_MEMORY,
    DatasetRef,
    JobSpec,
    JobStatus,
    ModelRef,
    Submission,
    input_variable,
)
from robotrain.options import Option, OptionRegistry
from robotrain.platforms import local_jobs, local_tracking
from robotrain.platforms.local_jobs import (
    COMPLETED,
    FAILED,
    FINISHED,
    STARTING,
    LocalJob,
    format_duration,
    jobs_dir,
    test_hook,
)
from robotrain.registry import Platform
from robotrain.settings import Settings

NAME = "local"
START_TIMEOUT_SECONDS = 60.0
STATUS_FIELDS = ("exit_code", "pid", "started", "ended", "reason", OUT_OF_MEMORY)


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    options.add(Option("detach", "start the local job in the background and print its id at once",
                       kind=bool, default=False))  # fmt: skip


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(
        Platform(
            NAME,
            "this machine: a subprocess (--gpus N: N processes on this machine's CPUs, "
            "not GPUs), tracked in MLflow on a local SQLite store",
            distributed=True,
        )
    )


def _check_processes(job: JobSpec) -> None:
    """One machine, and at most one process per CPU of it."""
    if job.nodes != 1:
        raise UserError(
            f"--nodes {job.nodes}: the local platform runs on this machine only; use --nodes 1 "
            f"(--gpus N starts N processes here) or a platform with several machines"
        )
    limit = local_jobs.max_processes()
    if job.processes_per_node > limit:
        raise UserError(
            f"--gpus {job.processes_per_node}: the local platform starts at most {limit} processes "
            f"(one per CPU of this machine); use --gpus {limit} or fewer"
        )


def _input_environment(job: JobSpec, state_dir: Path) -> dict[str, str]:
    """``ROBOTRAIN_INPUT_<NAME>``: the folder of each staged dataset the job takes as input."""
    from robotrain.platforms.local_datasets import resolve_input

    return {input_variable(name): str(resolve_input(state_dir, ref)) for name, ref in job.inputs.items()}


def _platform_environment(job: JobSpec, state_dir: Path, local: LocalJob) -> dict[str, str]:
    """The job's environment plus what the local platform adds (no secret values)."""
    return {
        **job.environment,
        **_input_environment(job, state_dir),
        **local_tracking.job_environment(state_dir, job.experiment),
        "PYTHON": sys.executable,
        "PYTHONUNBUFFERED": "1",
        CHECKPOINT_OUTPUT_VARIABLE: str(local.checkpoint_output),
        "ROBOTRAIN_JOB_ID": local.job_id,
    }


def _with_local_checkpoint(command: tuple[str, ...], uri: str | None, path: Path | None) -> tuple[str, ...]:
    """The command with the checkpoint URI (``URI`` or ``--flag=URI``) replaced by its local folder."""
    if not uri or path is None:
        return command
    return tuple(
        str(path) if item == uri else item.removesuffix(uri) + str(path) if item.endswith(f"={uri}") else item
        for item in command
    )


@hookimpl
def robotrain_render_job(platform: str, job: JobSpec, settings: Settings) -> str | None:
    if platform != NAME:
        return None
    import yaml

    _check_names(job)
    _check_processes(job)
    local = LocalJob(jobs_dir(settings.state_dir) / "<job-id>")
    checkpoint = local.checkpoint_input if job.checkpoint.uri else None
    environment = _platform_environment(job, settings.state_dir, local)
    spec = {
        "platform": NAME,
        "job": job.name,
        "workspace": str(local.workspace),
        "payload": None if job.payload is None else {"archive": str(job.payload.archive),
                                                     "sha256": job.payload.sha256},
        "command": shlex.join(_with_local_checkpoint(job.command, job.checkpoint.uri, checkpoint)),
        "environment": environment,
        "processes": _processes(job, _process_environment(environment)),
        "secrets": {ref.env: f"from your environment (${ref.env})" for ref in job.secrets},
        "tracking": {
            "uri": local_tracking.tracking_uri(settings.state_dir),
            "experiment": job.experiment,
            "artifacts": str(local_tracking.artifact_root(settings.state_dir)),
        },
        "checkpoint": {"uri": job.checkpoint.uri, "mode": job.checkpoint.mode.value,
                       "local_path": None if checkpoint is None else str(checkpoint)},
        "log": str(local.log),
        "timeout": None if job.timeout_seconds is None else format_duration(job.timeout_seconds),
        "detach": bool(settings.get("detach", False)),
    }  # fmt: skip
    return yaml.safe_dump(spec, sort_keys=False, width=10**6)


def _processes(job: JobSpec, environment: Mapping[str, str]) -> list[dict[str, Any]]:
    """The copies of the command the job starts, each with the variables it adds and its log prefix."""
    variables = local_jobs.process_variables(
        job.world_size, job.launches_processes, "<a free loopback port, chosen at start>", environment
    )
    return [
        {"log_prefix": local_jobs.log_prefix(rank), "environment": copy}
        for rank, copy in enumerate(variables)
    ]


def _check_names(job: JobSpec) -> None:
    """Names MLflow would refuse, checked before anything runs rather than when the job registers."""
    if not job.experiment.strip():
        raise UserError("the experiment name is empty; give one with --experiment-name or leave it out")
    if job.checkpoint.register_as:
        local_tracking.check_name(job.checkpoint.register_as, "model")


@hookimpl
def robotrain_submit(platform: str, job: JobSpec, settings: Settings) -> Submission | None:
    if platform != NAME:
        return None
    local_tracking.require_mlflow()
    _check_names(job)
    _check_processes(job)
    local = LocalJob(jobs_dir(settings.state_dir) / local_jobs.new_job_id())
    if job.checkpoint.uri and job.checkpoint.mode.needs_checkpoint:
        local_tracking.check_checkpoint(settings.state_dir, settings.project_root, job.checkpoint.uri)
    print(f"robotrain: preparing local job {local.job_id}", flush=True)
    local_tracking.prepare_tracking(settings.state_dir, job.experiment, job.checkpoint.register_as)
    process: subprocess.Popen[bytes] | None = None
    try:
        local.root.mkdir(parents=True)
        test_hook("job-folder-created")
        environment = _prepare(job, settings, local)
        test_hook("job-recorded")
    except BaseException:
        shutil.rmtree(local.root, ignore_errors=True)
        raise
    try:
        process = _spawn(local, environment)
        test_hook("supervisor-spawned")
        _wait_until_started(local, process)
        if settings.get("detach", False):
            return _submission(local, local.read())
        return _run_in_foreground(local, process, settings)
    except KeyboardInterrupt:
        raise _cancel_on_ctrl_c(local, process, settings) from None


def _prepare(job: JobSpec, settings: Settings, local: LocalJob) -> dict[str, str]:
    """Resolve the checkpoint, unpack the code, write job.json; nothing runs yet.

    Returns the job's environment, secret values included (they are not written to job.json).
    """
    checkpoint = None
    if job.checkpoint.uri and job.checkpoint.mode.needs_checkpoint:
        checkpoint = local_tracking.resolve_checkpoint(
            settings.state_dir, settings.project_root, job.checkpoint.uri, local.checkpoint_input
        )
    if job.payload is not None:
        from robotrain.payload import unpack

        unpack(job.payload, local.workspace)
    test_hook("workspace-unpacked")
    local.workspace.mkdir(parents=True, exist_ok=True)
    local.checkpoint_output.mkdir(parents=True, exist_ok=True)
    command = _with_local_checkpoint(job.command, job.checkpoint.uri, checkpoint)
    environment = _platform_environment(job, settings.state_dir, local)
    local.write(
        id=local.job_id, name=job.name, workload=job.workload, state=STARTING, created=time.time(),
        command=list(command), workspace=str(local.workspace), log=str(local.log),
        experiment=job.experiment, tracking_uri=environment["MLFLOW_TRACKING_URI"],
        checkpoint={"uri": job.checkpoint.uri, "mode": job.checkpoint.mode.value,
                    "local_path": None if checkpoint is None else str(checkpoint)},
        environment=environment, secrets=[ref.env for ref in job.secrets],
        timeout_seconds=job.timeout_seconds, processes=job.world_size,
        launches_processes=job.launches_processes,
    )  # fmt: skip
    return environment | _secret_values(job)


def _secret_values(job: JobSpec) -> dict[str, str]:
    values = {}
    for ref in job.secrets:
        if os.environ.get(ref.env):
            values[ref.env] = os.environ[ref.env]
        else:
            print(f"robotrain: warning: {ref.env} is not set in your environment; the job runs without it",
                  file=sys.stderr)  # fmt: skip
    return values


def _process_environment(job_environment: Mapping[str, str]) -> dict[str, str]:
    """Your environment (PATH, HOME, ...) without MLflow settings of its own, plus the job's."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return inherited | dict(job_environment)


def _spawn(local: LocalJob, job_environment: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start the supervisor in its own session, its output appended to the job's log."""
    with local.log.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "robotrain.platforms.local_runner", str(local.root)],
            cwd=local.workspace, env=_process_environment(job_environment),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _wait_until_started(local: LocalJob, process: subprocess.Popen[bytes]) -> None:
    """Wait for the supervisor to record itself; one that does not is killed and the job failed."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while local.read().get("state") == STARTING and process.poll() is None and time.monotonic() < deadline:
        time.sleep(local_jobs.POLL_SECONDS)
    with local.locked():
        started = local.read().get("state") != STARTING
        if not started:
            local.write(state=FAILED, ended=time.time(), reason="the job's supervisor did not start")
    if not started:
        process.kill()
        process.wait()


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _cancel_on_ctrl_c(
    local: LocalJob, process: subprocess.Popen[bytes] | None, settings: Settings
) -> UserError:
    """Ctrl-C at any point after the job folder exists: stop the job, record it canceled.

    A supervisor that has not recorded itself sees the canceled record and never starts the command.
    """
    record = local_jobs.cancel(local)
    if process is not None:
        if not isinstance(record.get("pid"), int):
            local_jobs.stop_group(process.pid)
        process.wait()
    record_submission(settings.state_dir, _submission(local, local.read()))
    return UserError(f"local job {local.job_id} canceled (Ctrl-C); its log is {local.log}")


def _run_in_foreground(local: LocalJob, process: subprocess.Popen[bytes], settings: Settings) -> Submission:
    """Stream the log until the job ends. A job that did not complete is an error."""
    local_jobs.follow(local, _write_stdout, running=lambda: process.poll() is None)
    record = local_jobs.current_state(local)
    submission = _submission(local, record)
    if record.get("state") != COMPLETED:
        record_submission(settings.state_dir, submission)
        reason = f": {record['reason']}" if record.get("reason") else ""
        raise UserError(
            f"local job {local.job_id} {record.get('state')}{reason} (exit code {record.get('exit_code')}); "
            f"its log is {local.log}"
        )
    return submission


def _submission(local: LocalJob, record: Mapping[str, Any]) -> Submission:
    details = {"state": record.get("state"), "exit_code": record.get("exit_code"), "log": str(local.log),
               "workspace": str(local.workspace), "pid": record.get("pid")}  # fmt: skip
    return Submission(NAME, local.job_id, None, details)


def _status(local: LocalJob, record: Mapping[str, Any]) -> JobStatus:
    details = {key: record.get(key) for key in STATUS_FIELDS} | {"log": str(local.log)}
    return JobStatus(NAME, local.job_id, str(record.get("state")), details)


@hookimpl
def robotrain_status(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    if platform != NAME:
        return None
    local = local_jobs.find_job(settings.state_dir, job_id)
    return _status(local, local_jobs.current_state(local))


@hookimpl
def robotrain_cancel(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    if platform != NAME:
        return None
    local = local_jobs.find_job(settings.state_dir, job_id)
    return _status(local, local_jobs.cancel(local))


@hookimpl
def robotrain_logs(
    platform: str, job_id: str, follow: bool, write: Callable[[str], None], settings: Settings
) -> bool | None:
    if platform != NAME:
        return None
    local = local_jobs.find_job(settings.state_dir, job_id)
    if follow:
        local_jobs.follow(
            local, write, running=lambda: local_jobs.current_state(local).get("state") not in FINISHED
        )
    elif local.log.exists():
        write(local.log.read_text(encoding="utf-8", errors="replace"))
    return True


@hookimpl
def robotrain_stage_dataset(platform: str, source: Path, name: str, settings: Settings) -> DatasetRef | None:
    if platform != NAME:
        return None
    from robotrain.platforms.local_datasets import stage_dataset

    return stage_dataset(settings.state_dir, source, name)


@hookimpl
def robotrain_register_model(platform: str, source: str, name: str, settings: Settings) -> ModelRef | None:
    if platform != NAME:
        return None
    local_tracking.require_mlflow()
    return local_tracking.register_model(settings.state_dir, settings.project_root, source, name)


@hookimpl
def robotrain_latest_checkpoint(platform: str, job_id: str, settings: Settings) -> str | None:
    """The job's checkpoint output folder, which ``--checkpoint-uri`` takes as it is; "" when empty."""
    if platform != NAME:
        return None
    output = local_jobs.find_job(settings.state_dir, job_id).checkpoint_output
    return str(output) if output.is_dir() and any(output.iterdir()) else ""


@hookimpl
def robotrain_download(
    platform: str, job_id: str, destination: Path, settings: Settings
) -> list[Path] | None:
    if platform != NAME:
        return None
    from robotrain.transfer import fetch, local_file, local_files

    local = local_jobs.find_job(settings.state_dir, job_id)
    files = local_files(local.checkpoint_output, "checkpoints")
    if local.log.is_file():
        files.append(local_file(local.log, f"logs/{local.log.name}"))
    return fetch(files, destination, f"local job {job_id}")

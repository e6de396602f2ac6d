"""The OSMO options, and their values checked against OSMO's own formats before anything is sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from robotrain import Option, OptionRegistry, Resources, Settings, UserError

TRAIN = frozenset({"train"})
TRAIN_AND_STAGE = frozenset({"train", "stage-dataset"})

WORKFLOW_NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
SIZE = re.compile(r"^\d+(\.\d+)?(TiB|Ti|T|GiB|Gi|G|MiB|Mi|M|KiB|Ki|K|B|m)$")
LABEL_KEY = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9_.-]*[a-zA-Z0-9])?$")
DATASET_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
STORAGE_URL = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
PRIORITIES = ("HIGH", "NORMAL", "LOW")
PAYLOAD_MODES = ("inline", "dataset")
MAX_LABELS = 16
DEFAULT_TIMEOUT_SECONDS = 23 * 3600


def add_options(options: OptionRegistry) -> None:
    for option in (
        Option("pool", "OSMO pool to run in (default: your OSMO profile's)", env="OSMO_POOL"),
        Option("priority", "OSMO scheduling priority: HIGH, NORMAL or LOW", env="OSMO_PRIORITY"),
        Option("label", "workflow label KEY=VALUE (repeat the flag; at most 16)", kind=list),
        Option("gpu", "GPUs for the task (default: the workload's)", kind=int, minimum=0),
        Option("cpu", "CPUs for the task (default: the workload's)", kind=int, minimum=1),
        Option("memory", "memory for the task, e.g. 400Gi (default: the workload's)"),
        Option("storage", "local storage for the task, e.g. 200Gi (default: the workload's)"),
        Option("payload", "how the code travels: inline (in the spec) or dataset (staged); "
               "default: inline when it fits", choices=PAYLOAD_MODES, env="OSMO_PAYLOAD"),
        Option("dataset_bucket", "OSMO bucket for staged datasets", default="training",
               env="OSMO_DATASET_BUCKET", commands=TRAIN_AND_STAGE),
        Option("dataset_name", "dataset name for the staged training code", default="training-code",
               env="OSMO_DATASET_NAME"),
        Option("dataset_url", "storage URL datasets go under with OSMO 6.4+ (s3://bucket/prefix)",
               env="OSMO_DATA_URL", commands=TRAIN_AND_STAGE),
        Option("workflow", "submit this templated OSMO workflow file instead of the generated spec",
               env="OSMO_WORKFLOW"),
    ):  # fmt: skip
        options.add(option)


@dataclass(frozen=True)
class OsmoConfig:
    """The OSMO settings of one run, every value already checked."""

    pool: str | None
    priority: str | None
    labels: tuple[str, ...]
    resources: Resources
    timeout: str
    payload_mode: str | None
    dataset_bucket: str
    dataset_name: str
    dataset_url: str | None
    workflow: Path | None


def load_config(settings: Settings, resources: Resources, timeout_seconds: int | None) -> OsmoConfig:
    """Read and check the OSMO options, with the job's resources and timeout as defaults."""
    workflow = settings.path("workflow")
    if workflow is not None and not workflow.is_file():
        raise UserError(f"--workflow: {workflow} not found; give the path of an OSMO workflow file")
    return OsmoConfig(
        pool=settings.get("pool") or None,
        priority=check_priority(settings.get("priority")),
        labels=check_labels(settings.get("label", [])),
        resources=check_resources(settings, resources),
        timeout=format_duration(timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
        payload_mode=settings.get("payload"),
        dataset_bucket=check_dataset_name(settings["dataset_bucket"], "--dataset-bucket"),
        dataset_name=check_dataset_name(settings["dataset_name"], "--dataset-name"),
        dataset_url=check_dataset_url(settings.get("dataset_url")),
        workflow=workflow,
    )


def check_workflow_name(name: str) -> str:
    if not WORKFLOW_NAME.match(name):
        raise UserError(
            f"job name {name!r} is not a valid OSMO workflow name (a letter first, then letters, "
            f"digits, - or _, not ending in - or _); set --job-name"
        )
    return name


def check_priority(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.upper() not in PRIORITIES:
        raise UserError(f"--priority: {value!r} is not one of {', '.join(PRIORITIES)}")
    return value.upper()


def check_labels(values: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_LABELS:
        raise UserError(f"--label: {len(values)} labels given; OSMO allows at most {MAX_LABELS}")
    for value in values:
        key, sep, _ = value.partition("=")
        if not sep or not LABEL_KEY.match(key):
            raise UserError(f"--label: {value!r} is not KEY=VALUE (key of letters, digits, - _ .)")
    return tuple(values)


def check_size(value: str, flag: str) -> str:
    if not SIZE.match(value):
        raise UserError(
            f"{flag}: {value!r} is not an OSMO size; write a number with one of the units "
            f"Ti Gi Mi Ki T G M K B (e.g. 400Gi)"
        )
    return value


def check_resources(settings: Settings, defaults: Resources) -> Resources:
    memory = settings.get("memory") or defaults.memory
    storage = settings.get("storage") or defaults.storage
    return Resources(
        gpu=settings.get("gpu", defaults.gpu),
        cpu=settings.get("cpu", defaults.cpu),
        memory=None if memory is None else check_size(memory, "--memory"),
        storage=None if storage is None else check_size(storage, "--storage"),
    )


def format_duration(seconds: int) -> str:
    """``82800`` → ``23h``: the largest unit that divides exactly (days shown as hours)."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def check_dataset_name(value: str, flag: str) -> str:
    if not DATASET_NAME.match(value):
        raise UserError(f"{flag}: {value!r} is not a valid OSMO name (letters, digits, - _ .)")
    return value


def check_dataset_url(value: str | None) -> str | None:
    if not value:
        return None
    if not STORAGE_URL.match(value):
        raise UserError(
            f"--dataset-url: {value!r} is not a storage URL OSMO accepts "
            f"(s3://, gs://, azure://, swift:// or tos://, then bucket and path)"
        )
    return value.rstrip("/")

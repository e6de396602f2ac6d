"""The OSMO options, and their values checked against what OSMO (and Kubernetes under it) accepts.

Every rule names the file of NVIDIA/OSMO it copies; the README lists them with the release.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from robotrain import Option, OptionRegistry, Resources, Settings, UserError
from robotrain.common_options import parse_duration
from robotrain.settings import DEFAULT

TRAIN = frozenset({"train"})
TRAIN_AND_STAGE = frozenset({"train", "stage-dataset"})

WORKFLOW_NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
"""src/utils/job/task_common.py NamePattern (workflow and task names)."""
MAX_WORKFLOW_NAME = 64
"""src/utils/connectors/postgres.py: the workflow name column and its check."""
SIZE = re.compile(r"^(?P<number>\d+(\.\d+)?)(?P<unit>TiB|Ti|T|GiB|Gi|G|MiB|Mi|M|KiB|Ki|K|B|m)$")
"""src/utils/job/workflow.py resource spec: the units OSMO accepts for memory and storage."""
KUBERNETES_UNIT = {"TiB": "Ti", "GiB": "Gi", "MiB": "Mi", "KiB": "Ki", "K": "Ki", "B": ""}
"""Units OSMO accepts but passes unchanged into the pod (src/utils/job/kb_objects.py), where Kubernetes'
resource.Quantity refuses them; the value is the Kubernetes unit to write instead."""
LABEL_PART = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
"""src/lib/utils/workflow_labels.py _LABEL_NAME_PATTERN: label names and values (Kubernetes rules)."""
DNS_PREFIX = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*$"
)
"""src/lib/utils/workflow_labels.py _DNS_PREFIX_PATTERN: the optional ``prefix/`` of a label key."""
DATASET_PART = re.compile(r"^[a-zA-Z0-9_-]+$")
"""src/lib/utils/common.py DATASET_NAME_COMPONENT: dataset bucket, name and tag."""
STORAGE_URL = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
PRIORITIES = ("HIGH", "NORMAL", "LOW")
PAYLOAD_MODES = ("inline", "dataset")
MAX_LABELS = 16
"""src/lib/utils/workflow_labels.py MAX_WORKFLOW_LABELS."""
CLIENT_VERSIONS = ("6.3", "6.4")
CREDENTIALS_HELP = (
    "the credentials a job references must exist in OSMO before it is submitted (checked with "
    "`osmo credential list`); LeRobot jobs use hf_token (key token, for HF_TOKEN) and, with "
    "--tracking wandb, wandb (key api_key, for WANDB_API_KEY): create them with "
    "`osmo credential set hf_token --type GENERIC --payload token=...`"
)


def add_options(options: OptionRegistry) -> None:
    size_help = (
        "a number with a Kubernetes unit, e.g. 400Gi (Gi/Mi/Ti/Ki are powers of 2; G/M/T are "
        "powers of 10 to Kubernetes: 400G is 400*10^9 bytes); GiB-style units are refused"
    )
    for option in (
        Option("pool", "OSMO pool to run in (default: your OSMO profile's)", env="OSMO_POOL"),
        Option("priority", "OSMO scheduling priority: HIGH, NORMAL or LOW", env="OSMO_PRIORITY"),
        Option("label", "workflow label KEY=VALUE (repeat the flag; at most 16; needs the OSMO 6.4 "
               "CLI; values are Kubernetes label values: no /, at most 63 characters)", kind=list),
        Option("osmo_gpu", "GPUs of each task's resource request when --gpus is not given, with one "
               "training process (the scripts' OSMO_GPU)", kind=int, minimum=0, env="OSMO_GPU"),
        Option("cpu", "CPUs for the task (default: the workload's)", kind=int, minimum=1, env="OSMO_CPU"),
        Option("memory", f"memory for the task: {size_help} (default: the workload's)", env="OSMO_MEMORY"),
        Option("storage", f"local storage for the task: {size_help} (default: the workload's)",
               env="OSMO_STORAGE"),
        Option("payload", "how the code travels: inline (in the spec) or dataset (staged); "
               "default: dataset when --dataset-name/--dataset-bucket is given, else inline when it fits",
               choices=PAYLOAD_MODES, env="OSMO_PAYLOAD"),
        Option("payload_root", "folder in the container the code is unpacked into and run from "
               "(default: /workspace/isaac_payload for isaaclab, /workspace/lerobot_payload for lerobot)",
               env="PAYLOAD_ROOT"),
        Option("dataset_bucket", "OSMO bucket for staged datasets (letters, digits, - and _)",
               default="training", env="OSMO_DATASET_BUCKET", commands=TRAIN_AND_STAGE),
        Option("dataset_name", "dataset name for the staged training code (letters, digits, - and _)",
               default="training-code", env="OSMO_DATASET_NAME"),
        Option("dataset_url", "storage URL datasets and checkpoints go under with OSMO 6.4+ "
               "(s3://bucket/prefix)", env="OSMO_DATA_URL", commands=TRAIN_AND_STAGE),
        Option("checkpoint_upload", "how often OSMO uploads the checkpoint folder while a task runs "
               "(seconds, or 10m, 1h), so a preempted task leaves its checkpoints; OSMO 6.4, where "
               "checkpoints go under --dataset-url", default="10m", env="OSMO_CHECKPOINT_UPLOAD"),
        Option("workflow", "submit this templated OSMO workflow file instead of the generated spec",
               env="OSMO_WORKFLOW"),
        Option("osmo_client_version", "OSMO client version a --dry-run writes for, 6.3 or 6.4 (default: "
               f"the installed osmo CLI's, which a submit always uses). Credentials: {CREDENTIALS_HELP}",
               choices=CLIENT_VERSIONS,
               env="OSMO_CLIENT_VERSION"),
    ):  # fmt: skip
        options.add(option)


@dataclass(frozen=True)
class OsmoConfig:
    """The OSMO settings of one run, every value already checked."""

    pool: str | None
    priority: str | None
    labels: tuple[str, ...]
    resources: Resources
    timeout_seconds: int | None
    payload_mode: str | None
    payload_root: str | None
    dataset_bucket: str
    dataset_name: str
    dataset_url: str | None
    workflow: Path | None
    checkpoint_upload_seconds: int = 600
    """``checkpoint.frequency`` of the checkpoint folder (src/utils/job/task.py CheckpointSpec)."""


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
        timeout_seconds=timeout_seconds,
        payload_mode=payload_choice(settings),
        payload_root=check_payload_root(settings.get("payload_root")),
        dataset_bucket=check_dataset_part(settings["dataset_bucket"], "--dataset-bucket"),
        dataset_name=check_dataset_part(settings["dataset_name"], "--dataset-name"),
        dataset_url=check_dataset_url(settings.get("dataset_url")),
        workflow=workflow,
        checkpoint_upload_seconds=parse_duration(str(settings["checkpoint_upload"]), "--checkpoint-upload"),
    )


def payload_choice(settings: Settings) -> str | None:
    """The payload mode asked for: ``--payload``, or dataset when a dataset name or bucket was given."""
    chosen = settings.get("payload")
    if chosen:
        return str(chosen)
    given = [name for name in ("dataset_name", "dataset_bucket") if settings.resolve(name).source != DEFAULT]
    return "dataset" if given else None


def check_workflow_name(name: str) -> str:
    if not WORKFLOW_NAME.match(name):
        raise UserError(
            f"job name {name!r} is not a valid OSMO workflow name (a letter first, then letters, "
            f"digits, - or _, not ending in - or _); set --job-name"
        )
    if len(name) > MAX_WORKFLOW_NAME:
        raise UserError(
            f"job name {name[:20]}... is {len(name)} characters; OSMO workflow names have at most "
            f"{MAX_WORKFLOW_NAME}: set a shorter --job-name"
        )
    return name


def check_priority(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if value.upper() not in PRIORITIES:
        raise UserError(f"--priority: {value!r} is not one of {', '.join(PRIORITIES)}")
    return value.upper()


def check_labels(values: list[str]) -> tuple[str, ...]:
    """KEY=VALUE pairs whose key and value pass OSMO 6.4's workflow label rules."""
    if len(values) > MAX_LABELS:
        raise UserError(f"--label: {len(values)} labels given; OSMO allows at most {MAX_LABELS}")
    for item in values:
        key, sep, value = item.partition("=")
        prefix, slash, name = key.rpartition("/")
        if not sep or not LABEL_PART.match(name) or (slash and not DNS_PREFIX.match(prefix)):
            raise UserError(
                f"--label: {item!r} is not KEY=VALUE with a Kubernetes label key ([prefix/]name of "
                f"letters, digits, - _ ., at most 63 characters)"
            )
        if not LABEL_PART.match(value):
            raise UserError(
                f"--label: value {value!r} of {key} is not a Kubernetes label value: non-empty, at most "
                f"63 letters, digits, - _ or ., starting and ending with a letter or digit (no /)"
            )
    return tuple(values)


def check_labels_supported(labels: tuple[str, ...], version: tuple[int, int]) -> None:
    """src/cli/workflow.py: ``submit --label`` exists from 6.4; the 6.3.1 parser exits 2."""
    if labels and version < (6, 4):
        raise UserError(
            f"--label needs the OSMO 6.4 CLI; this run is for {version[0]}.{version[1]}, whose "
            f"`workflow submit` has no --label: drop --label or upgrade the osmo CLI"
        )


def check_size(value: str, flag: str) -> str:
    match = SIZE.match(value)
    if match is None:
        raise UserError(
            f"{flag}: {value!r} is not a size; write a number with one of the units Ti Gi Mi Ki "
            f"(powers of 2) or T G M (powers of 10), e.g. 400Gi"
        )
    unit = match.group("unit")
    if unit in KUBERNETES_UNIT:
        fixed = match.group("number") + KUBERNETES_UNIT[unit]
        raise UserError(
            f"{flag}: {value!r} passes OSMO but Kubernetes refuses the unit {unit} when it creates "
            f"the pod; write {fixed!r}"
        )
    return value


def check_resources(settings: Settings, defaults: Resources) -> Resources:
    """The task's request: --gpus (core's, also the processes) wins over OSMO_GPU (the request alone)."""
    memory = settings.get("memory") or defaults.memory
    storage = settings.get("storage") or defaults.storage
    return Resources(
        gpu=defaults.gpu if settings.get("gpus") is not None else settings.get("osmo_gpu", defaults.gpu),
        cpu=settings.get("cpu", defaults.cpu),
        memory=None if memory is None else check_size(memory, "--memory"),
        storage=None if storage is None else check_size(storage, "--storage"),
    )


def check_payload_root(value: str | None) -> str | None:
    if not value:
        return None
    if not value.startswith("/") or value.rstrip("/") in {"", "/osmo"} or value.startswith("/osmo/"):
        raise UserError(
            f"--payload-root: {value!r} must be an absolute folder outside /osmo, e.g. /workspace/payload"
        )
    return value.rstrip("/")


def check_dataset_part(value: str, flag: str) -> str:
    if not DATASET_PART.match(value):
        raise UserError(f"{flag}: {value!r} is not a valid OSMO dataset name (letters, digits, - and _ only)")
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

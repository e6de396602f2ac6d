"""The OSMO workflow spec generated from a robotrain job, and its YAML text.

A job of one process is one task. A distributed job is a group with one task per node (the first is
the lead), each starting its node's processes with ``torch.distributed.run`` (or, when the job
``launches_processes``, running the command once with the node variables).
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from robotrain import JobSpec, Payload, UserError
from robotrain.job import CHECKPOINT_OUTPUT, CHECKPOINT_OUTPUT_VARIABLE, input_variable
from robotrain_osmo.config import OsmoConfig, check_workflow_name

TASK_NAME = "train"
GROUP_NAME = "train"
"""The group of a distributed job; its tasks are ``train-0`` (the lead, node rank 0), ``train-1``, ..."""
MAX_TASKS = 20
"""src/utils/connectors/postgres.py WorkflowConfig.max_num_tasks (default 20), checked at submit by
src/service/core/workflow/workflow_service.py ("Workflow cannot have more than 20 tasks")."""
MASTER_PORT = 29500
"""The rendezvous port on the lead task (torch.distributed's default)."""
LOCAL_MASTER = "127.0.0.1"
"""The rendezvous address of a one-node job: OSMO gives a task a resolvable ``{{host:TASK}}`` only in a
group of more than one task (src/utils/job/task.py: hostname, subdomain and headless service)."""
LAUNCHER = '${PYTHON:-python3} -m torch.distributed.run "$@"'
"""The launcher line of a distributed task: ``PYTHON`` may be a command with arguments
(``/workspace/isaaclab/isaaclab.sh -p``), so it is expanded unquoted, as train.sh does."""
RESOURCE_NAME = "default"
WORK_DIR = "/workspace/robotrain"
ENTRY_SCRIPT = f"{WORK_DIR}/entry.sh"
ARCHIVE_PATH = f"{WORK_DIR}/payload.tar.gz"
CODE_INPUT_ENV = "ROBOTRAIN_CODE_INPUT"
INPUT_ROOT = "/osmo/data/input"
"""src/utils/job/task.py TaskSpec.parse: ``{{input:N}}`` becomes ``/osmo/data/input/N``."""
OUTPUT_TOKEN = "{{output}}"
WORKFLOW_ID_TOKEN = "{{workflow_id}}"
FILE_ENTRY_LIMIT = 1024 * 1024
"""Decoded bytes of one ``files:`` entry: each is its own Kubernetes Secret (src/utils/job/kb_objects.py),
and Kubernetes limits a Secret's decoded data to 1 MiB."""
ENV_STRING_LIMIT = 131_072
"""Linux MAX_ARG_STRLEN: one ``NAME=value`` environment string longer than this cannot start a process."""
PAYLOAD_ROOTS = {"isaaclab": "/workspace/isaac_payload", "lerobot": "/workspace/lerobot_payload"}
OSMO_TOKEN = re.compile(r"\{\{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)\}\}")
"""src/utils/job/workflow.py: the tokens the service protects from Jinja (written without inner spaces)."""
TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")
ARCHIVE_MARKER = "ROBOTRAIN-INLINE-ARCHIVE"
"""Stands for the archive's base64 text until the YAML is written (see ``to_yaml``)."""
DATASET_SCHEME = "dataset://"
DATASET_URI = re.compile(
    r"^dataset://(?P<dataset>[A-Za-z0-9_-]+/[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?)(?P<path>(/[A-Za-z0-9._-]+)*)/?$"
)
"""A 6.3 dataset version as ``--checkpoint-uri`` takes it: ``dataset://BUCKET/NAME:TAG/PATH``."""
STORAGE_URI = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
"""src/lib/utils/constants.py StorageBackendPattern: the URLs a task can mount as an input."""
CHECKPOINT_INPUT_ENV = "ROBOTRAIN_CHECKPOINT_INPUT"
"""The folder a mounted ``--checkpoint-uri`` is in; the job's command gets it in the URI's place."""


@dataclass(frozen=True)
class InlineCode:
    """The code archive travels base64-encoded in a ``files:`` entry of the spec."""

    payload: Payload


@dataclass(frozen=True)
class DatasetCode:
    """The code was staged: ``reference`` is ``bucket/name[:version]`` (6.3) or a storage URL (6.4+)."""

    reference: str
    is_url: bool = False


CodeDelivery = InlineCode | DatasetCode | None


@dataclass(frozen=True)
class TaskInput:
    """One ``inputs:`` entry and the folder its files land in inside the container."""

    entry: dict[str, Any]
    folder_below: str
    """Below ``{{input:N}}``: ``/<dataset name>`` for a 6.3 dataset, empty for a URL."""

    @classmethod
    def dataset(cls, reference: str) -> TaskInput:
        """A 6.3 dataset: its upload keeps each folder's basename under the dataset's name."""
        name = reference.split("/")[-1].split(":")[0]
        return cls({"dataset": {"name": reference}}, f"/{name}")

    @classmethod
    def url(cls, url: str) -> TaskInput:
        return cls({"url": url}, "")


@dataclass(frozen=True)
class Layout:
    """Where things go for one submission: the client version, the inputs, the checkpoint output."""

    version: tuple[int, int]
    code: CodeDelivery
    inputs: dict[str, TaskInput] = field(default_factory=dict)
    """Job input name → task input (after the code input, when there is one)."""
    checkpoint_output: dict[str, Any] = field(default_factory=dict)
    checkpoint_location: str = ""
    """The checkpoint folder's URI (``{{workflow_id}}`` in it), what ``--checkpoint-uri`` takes."""
    resume_from: ResumeFrom | None = None
    """The checkpoint the job starts from, when it is one OSMO mounts."""


@dataclass(frozen=True)
class ResumeFrom:
    """A ``--checkpoint-uri`` OSMO mounts: the task input, and the URI as the job's command has it."""

    uri: str
    task_input: TaskInput


def payload_root(job: JobSpec, config: OsmoConfig) -> str:
    return config.payload_root or PAYLOAD_ROOTS.get(job.workload, f"/workspace/{job.workload}_payload")


def fits_inline(payload: Payload, nodes: int = 1) -> bool:
    """Whether the archive may travel in the spec: every task carries its own copy, and all copies
    together stay within what one task's entry may hold, so a spec never grows past one archive's size."""
    return payload.size * nodes <= FILE_ENTRY_LIMIT


def too_large_inline(payload: Payload, nodes: int = 1) -> UserError:
    if nodes > 1:
        return UserError(
            f"the code archive is {payload.size:,} bytes and each of the {nodes} tasks would carry a copy, "
            f"over the {FILE_ENTRY_LIMIT:,} bytes robotrain puts inline in one spec; use --payload dataset "
            f"to stage it once as an OSMO dataset, or leave files out with .amlignore"
        )
    return UserError(
        f"the code archive is {payload.size:,} bytes, over OSMO's limit of {FILE_ENTRY_LIMIT:,} bytes for "
        f"one files: entry (a Kubernetes Secret); use --payload dataset to stage it as an OSMO dataset, "
        f"or leave files out with .amlignore"
    )


def checkpoint_output(
    job: JobSpec, config: OsmoConfig, version: tuple[int, int]
) -> tuple[dict[str, Any], str]:
    """The declared output that keeps ``{{output}}`` after the pod, and the URI of its checkpoint folder.

    src/utils/job/task.py: OutputType is DatasetInputOutput | URLInputOutput on 6.3.1, URLInputOutput
    only from 6.4. A 6.3 dataset output ``BUCKET/NAME:TAG`` tags the version it makes
    (src/runtime/pkg/data/input_output.go DatasetOutput.UploadFolder runs ``osmo dataset tag``); the tag
    ``{{workflow_id}}`` names each run's version (src/lib/utils/common.py DatasetStructure allows
    ``{`` and ``}`` in a workflow spec).
    """
    folder = f"/{CHECKPOINT_OUTPUT}"
    if version < (6, 4):
        name = f"{config.dataset_bucket}/{job.name}-{CHECKPOINT_OUTPUT}:{WORKFLOW_ID_TOKEN}"
        return {"dataset": {"name": name}}, f"{DATASET_SCHEME}{name}{folder}"
    if not config.dataset_url:
        raise UserError(
            "the OSMO 6.4 CLI keeps a task's outputs only under a storage URL: set --dataset-url "
            "(or OSMO_DATA_URL), e.g. s3://my-bucket/robotrain, so the checkpoints outlive the pod"
        )
    url = f"{config.dataset_url}/{CHECKPOINT_OUTPUT}/{job.name}/{WORKFLOW_ID_TOKEN}"
    return {"url": url}, url + folder


def periodic_checkpoint(layout: Layout, seconds: int) -> list[dict[str, Any]]:
    """``checkpoint:`` entries that upload the checkpoint folder while the task runs.

    A task's outputs are uploaded only when its command ends: a preempted, evicted or lost pod uploads
    none (docs/user_guide/workflows/lifecycle/index.rst, "Task's Output Behavior"; src/runtime/cmd/ctrl/
    ctrl.go exits on SIGTERM without uploading). OSMO's checkpointing (src/utils/job/task.py
    CheckpointSpec: path, url, frequency) uploads a folder every ``frequency`` (``--checkpoint-upload``)
    and once more at the end; it takes a storage URL only, so jobs whose checkpoint output is a URL (6.4)
    get it, to the same place the output goes.
    """
    url = layout.checkpoint_output.get("url")
    if not url:
        return []
    return [{
        "path": f"{OUTPUT_TOKEN}/{CHECKPOINT_OUTPUT}",
        "url": f"{url}/{CHECKPOINT_OUTPUT}",
        "frequency": seconds,
    }]  # fmt: skip


def resume_from(uri: str | None, version: tuple[int, int]) -> ResumeFrom | None:
    """The task input for a ``--checkpoint-uri`` OSMO can mount: ``dataset://BUCKET/NAME:TAG/PATH``
    (6.3) or a storage URL; None for any other URI (``runs:/``, ``models:/``: the job reads those)."""
    if not uri:
        return None
    match = DATASET_URI.match(uri)
    if match:
        if version >= (6, 4):
            raise UserError(
                f"--checkpoint-uri {uri}: OSMO 6.4 has no datasets; give the checkpoint's storage URL "
                f"(train prints where checkpoints are kept)"
            )
        dataset = TaskInput.dataset(match.group("dataset"))
        return ResumeFrom(uri, TaskInput(dataset.entry, dataset.folder_below + (match.group("path") or "")))
    if STORAGE_URI.match(uri):
        return ResumeFrom(uri, TaskInput.url(uri))
    return None


def render_spec(job: JobSpec, config: OsmoConfig, layout: Layout) -> dict[str, Any]:
    """The complete workflow spec as a dict; raises UserError for anything OSMO would reject."""
    check_nodes(job)
    if isinstance(layout.code, InlineCode) and not fits_inline(layout.code.payload, job.nodes):
        raise too_large_inline(layout.code.payload, job.nodes)
    workflow: dict[str, Any] = {"name": check_workflow_name(job.name)}
    if job.timeout_seconds:
        # src/utils/job/workflow.py TimeoutSpec: an int is seconds; a string needs a unit.
        workflow["timeout"] = {"exec_timeout": int(job.timeout_seconds)}
    resources = {k: v for k, v in vars(config.resources).items() if v is not None}
    if resources:
        workflow["resources"] = {RESOURCE_NAME: resources}
    tasks = [_task(job, config, layout, bool(resources), rank) for rank in range(job.nodes)]
    if job.nodes > 1:
        # src/utils/job/task.py TaskGroupSpec: exactly one lead; ignoreNonleadStatus false makes a
        # failing worker fail the group (and stop the others) instead of leaving the lead waiting.
        workflow["groups"] = [{"name": GROUP_NAME, "ignoreNonleadStatus": False, "tasks": tasks}]
    else:
        workflow["tasks"] = tasks
    spec = {"version": 2, "workflow": workflow}
    check_rendered(spec)
    return spec


def check_nodes(job: JobSpec) -> None:
    """One task per node, within OSMO's task limit."""
    if job.nodes < 1 or job.processes_per_node < 1:
        raise UserError(
            f"--nodes {job.nodes} and {job.processes_per_node} process(es) per node: both must be "
            f"positive whole numbers"
        )
    if job.nodes > MAX_TASKS:
        raise UserError(
            f"--nodes {job.nodes}: OSMO runs one task per node and at most {MAX_TASKS} tasks in a "
            f"workflow; use --nodes {MAX_TASKS} or fewer (and more --gpus per node)"
        )


def tasks_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task of the spec: its ``tasks``, or those of its groups."""
    workflow = spec["workflow"]
    return list(workflow.get("tasks") or []) + [
        task for group in workflow.get("groups") or [] for task in group["tasks"]
    ]


def task_name(job: JobSpec, rank: int) -> str:
    return f"{TASK_NAME}-{rank}" if job.nodes > 1 else TASK_NAME


def rendezvous(job: JobSpec, rank: int) -> dict[str, str]:
    """The ``NODE_VARIABLES`` of node ``rank``: the lead task is the rendezvous point."""
    master = f"{{{{host:{task_name(job, 0)}}}}}" if job.nodes > 1 else LOCAL_MASTER
    return {
        "NNODES": str(job.nodes),
        "NODE_RANK": str(rank),
        "NPROC_PER_NODE": str(job.processes_per_node),
        "MASTER_ADDR": master,
        "MASTER_PORT": str(MASTER_PORT),
    }


def launcher_arguments(variables: dict[str, str]) -> list[str]:
    """``torch.distributed.run``'s options for one node; ``--no-python`` runs the job's command as it is
    (``bash training/scripts/train.sh ...``) in each of the node's processes."""
    return [
        "--nnodes", variables["NNODES"],
        "--nproc_per_node", variables["NPROC_PER_NODE"],
        "--node_rank", variables["NODE_RANK"],
        "--master_addr", variables["MASTER_ADDR"],
        "--master_port", variables["MASTER_PORT"],
        "--no-python",
    ]  # fmt: skip


def uses_launcher(job: JobSpec) -> bool:
    """Whether each task starts its node's processes with ``torch.distributed.run``."""
    return job.world_size > 1 and not job.launches_processes


def _task(job: JobSpec, config: OsmoConfig, layout: Layout, has_resources: bool, rank: int) -> dict[str, Any]:
    task: dict[str, Any] = {"name": task_name(job, rank)}
    if job.nodes > 1:
        task["lead"] = rank == 0
    task["image"] = job.image.uri
    environment = dict(job.environment)
    environment[CHECKPOINT_OUTPUT_VARIABLE] = f"{OUTPUT_TOKEN}/{CHECKPOINT_OUTPUT}"
    inputs, folders = task_inputs(layout)
    command = list(job.command)
    if layout.resume_from is not None:
        folder = folders[CHECKPOINT_INPUT_ENV]
        command = [folder if part == layout.resume_from.uri else part for part in command]
    if job.world_size > 1:
        variables = rendezvous(job, rank)
        environment |= variables
        if uses_launcher(job):
            command = launcher_arguments(variables) + command
    files = _files(job, config, layout.code)
    if files:
        task["command"] = ["bash", ENTRY_SCRIPT]
        task["args"] = command
    else:
        task["command"] = command
    environment |= folders
    if inputs:
        task["inputs"] = inputs
    if rank == 0:  # the lead keeps what rank 0 writes; other nodes' output folders are not uploaded
        task["outputs"] = [layout.checkpoint_output, *({"url": uri} for uri in job.outputs.values())]
        uploads = periodic_checkpoint(layout, config.checkpoint_upload_seconds)
        if uploads:
            task["checkpoint"] = uploads
    task["environment"] = environment
    if job.secrets:
        task["credentials"] = credentials(job)
    if has_resources:
        task["resource"] = RESOURCE_NAME
    if files:
        task["files"] = files
    return task


def task_inputs(layout: Layout) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The ``inputs:`` entries (the staged code first, then the job's inputs) and the variables naming
    the folder each lands in."""
    named: dict[str, TaskInput] = {}
    if isinstance(layout.code, DatasetCode):
        reference = layout.code.reference
        named[CODE_INPUT_ENV] = (
            TaskInput.url(reference) if layout.code.is_url else TaskInput.dataset(reference)
        )
    named |= {input_variable(name): task_input for name, task_input in layout.inputs.items()}
    if layout.resume_from is not None:
        named[CHECKPOINT_INPUT_ENV] = layout.resume_from.task_input
    folders = {
        variable: f"{{{{input:{index}}}}}{task_input.folder_below}"
        for index, (variable, task_input) in enumerate(named.items())
    }
    return [task_input.entry for task_input in named.values()], folders


def credentials(job: JobSpec) -> dict[str, dict[str, str]]:
    """``credentials: {SECRET: {ENV: key}}``: OSMO fills each variable from its credential store."""
    found: dict[str, dict[str, str]] = {}
    for ref in job.secrets:
        found.setdefault(ref.secret, {})[ref.env] = ref.key
    return found


def _files(job: JobSpec, config: OsmoConfig, code: CodeDelivery) -> list[dict[str, Any]]:
    root = payload_root(job, config)
    launcher = uses_launcher(job)
    if isinstance(code, InlineCode):
        return [
            {"path": ENTRY_SCRIPT, "contents": inline_entry_script(root, launcher)},
            {"path": ARCHIVE_PATH, "contents": ARCHIVE_MARKER, "base64": True},
        ]
    if isinstance(code, DatasetCode):
        return [{"path": ENTRY_SCRIPT, "contents": dataset_entry_script(root, launcher)}]
    if launcher:
        return [{"path": ENTRY_SCRIPT, "contents": _script(launcher=True)}]
    return []


def inline_entry_script(root: str, launcher: bool = False) -> str:
    """Unpack the archive (OSMO writes the decoded bytes) into the payload root and run the command."""
    return _script(
        f"payload_root={shlex.quote(root)}",
        f"archive={shlex.quote(ARCHIVE_PATH)}",
        'mkdir -p "$payload_root"',
        'tar -xzf "$archive" -C "$payload_root"',
        'cd "$payload_root"',
        launcher=launcher,
    )


def dataset_entry_script(root: str, launcher: bool = False) -> str:
    """Copy the staged code from the task's code input to the payload root and run the command there."""
    return _script(
        f"payload_root={shlex.quote(root)}",
        f'source_root="${CODE_INPUT_ENV}"',
        'if [ ! -d "$source_root/training" ]; then',
        '  echo "robotrain: no training/ folder in $source_root" >&2',
        '  ls -la "$source_root" >&2 || true',
        "  exit 1",
        "fi",
        'mkdir -p "$payload_root"',
        'cp -a "$source_root/." "$payload_root/"',
        'cd "$payload_root"',
        launcher=launcher,
    )


def _script(*setup: str, launcher: bool = False) -> str:
    """The entry script: ``setup``, the checkpoint folder, then the command (``"$@"``) itself or, for a
    distributed job, ``torch.distributed.run`` with the launcher arguments and the command."""
    lines = [
        "#!/bin/bash",
        "set -euo pipefail",
        *setup,
        f'mkdir -p "${CHECKPOINT_OUTPUT_VARIABLE}"',
        f"exec {LAUNCHER}" if launcher else 'exec "$@"',
    ]
    return "\n".join(lines) + "\n"


def check_rendered(spec: dict[str, Any]) -> None:
    """Refuse template syntax OSMO's renderer would choke on, and values a process cannot receive."""
    for task in tasks_of(spec):
        for entry in task.get("files", []):
            if TEMPLATE_SYNTAX.search(entry["contents"]):
                raise UserError(
                    f"file {entry['path']} of the spec contains template syntax ({{{{, {{% or {{#)"
                )
        for name, value in task.get("environment", {}).items():
            if len(f"{name}={value}".encode()) >= ENV_STRING_LIMIT:
                raise UserError(f"environment variable {name} is over 128 KiB; a process cannot receive it")
    for text in _strings(spec, skip_files=True):
        if TEMPLATE_SYNTAX.search(OSMO_TOKEN.sub("", text)):
            raise UserError(
                f"the value {text[:60]!r} contains template syntax ({{{{, {{% or {{#}}) that OSMO "
                f"would try to render; remove it"
            )


def _strings(value: Any, skip_files: bool = False) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [
            s for k, v in value.items() if not (skip_files and k == "files") for s in _strings(v, skip_files)
        ]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item, skip_files)]
    return []


_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _SpecDumper(_BaseDumper):  # type: ignore[valid-type,misc]
    """libyaml's emitter when present; multi-line strings as literal blocks; ``Y``/``N`` quoted."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else '"' if value.lower() in {"y", "n"} else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _represent_str)


def to_yaml(spec: dict[str, Any], archive: str | None = None) -> str:
    """The spec as YAML; the archive marker becomes ``archive`` (base64, or a placeholder) as one
    double-quoted scalar written directly, so the emitter never walks the megabyte of base64."""
    text = yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, width=120)
    if archive is not None:
        text = text.replace(ARCHIVE_MARKER, f'"{archive}"')  # once per task
    return text


def encoded_archive(payload: Payload) -> str:
    return base64.b64encode(payload.archive.read_bytes()).decode("ascii")


def archive_placeholder(payload: Payload) -> str:
    return f"<inline archive not shown: {payload.size} bytes, sha256 {payload.sha256}>"


def archive_comment(payload: Payload) -> list[str]:
    """What a dry run shows of the inline archive: its size, hash and file list."""
    return [
        f"inline payload {ARCHIVE_PATH}: {payload.size:,} bytes, sha256 {payload.sha256}, "
        f"{len(payload.files)} files:",
        *(f"  {name}" for name in payload.files),
    ]


def rendezvous_note(job: JobSpec) -> list[str]:
    """What a dry run says about a distributed job: its tasks, the lead and how processes start."""
    if job.world_size == 1:
        return []
    master = rendezvous(job, 0)["MASTER_ADDR"]
    start = (
        "the command once per node with NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT"
        if job.launches_processes
        else f"{job.processes_per_node} process(es) per node through ${{PYTHON:-python3}} -m "
        f"torch.distributed.run --no-python"
    )
    where = (
        f"group {GROUP_NAME} of {job.nodes} tasks (lead {task_name(job, 0)})" if job.nodes > 1 else "one task"
    )
    return [
        f"distributed: {job.nodes} node(s) x {job.processes_per_node} = {job.world_size} processes; "
        f"{where}; rendezvous {master}:{MASTER_PORT}; each task starts {start}"
    ]

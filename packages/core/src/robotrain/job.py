"""The platform-neutral job description that workloads build and platforms run."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

CHECKPOINT_OUTPUT = "checkpoints"
"""The output every training job has: a folder whose contents outlive the job."""
CHECKPOINT_OUTPUT_VARIABLE = "TRAINING_CHECKPOINT_OUTPUT"
"""The environment variable through which the job learns the checkpoint output folder."""


RANK_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
)
"""What each process of a distributed job is given (the names ``torch.distributed.run`` uses)."""
NODE_VARIABLES = ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT")
"""What each node's copy of a job that ``launches_processes`` itself is given."""


def input_variable(name: str) -> str:
    """The environment variable holding the mounted path of job input ``name``.

    ``input_variable("dataset")`` is ``ROBOTRAIN_INPUT_DATASET``.
    """
    return "ROBOTRAIN_INPUT_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


class CheckpointMode(enum.StrEnum):
    """How training starts from a checkpoint."""

    FROM_SCRATCH = "from-scratch"
    """Random weights; no checkpoint is read."""
    WARM_START = "warm-start"
    """Load the weights; fresh optimizer and counters."""
    RESUME = "resume"
    """Load weights, optimizer state and counters; continue where it stopped."""
    FRESH = "fresh"
    """Take only the architecture from the checkpoint; reinitialise every parameter."""

    @property
    def needs_checkpoint(self) -> bool:
        return self is not CheckpointMode.FROM_SCRATCH


@dataclass(frozen=True)
class Checkpoint:
    """Where training starts from and under which name its result is registered."""

    uri: str | None = None
    mode: CheckpointMode = CheckpointMode.FROM_SCRATCH
    register_as: str | None = None


@dataclass(frozen=True)
class SecretRef:
    """An environment variable whose value a platform fills from its own secret store.

    Only the reference travels: ``SecretRef("HF_TOKEN", "hf", "token")`` means
    "set HF_TOKEN from key ``token`` of the platform secret ``hf``".
    """

    env: str
    secret: str
    key: str


@dataclass(frozen=True)
class Resources:
    """What one task of the job asks for; ``None`` leaves the platform's default."""

    gpu: int | None = None
    cpu: int | None = None
    memory: str | None = None
    storage: str | None = None


@dataclass(frozen=True)
class Image:
    """The container image, with a stable name and version for platforms that register environments."""

    uri: str
    name: str
    version: str


@dataclass(frozen=True)
class Payload:
    """A packed code folder: a deterministic ``.tar.gz`` named by its content hash."""

    archive: Path
    sha256: str
    size: int
    files: tuple[str, ...]
    """Archive member names, sorted."""

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]


@dataclass(frozen=True)
class JobSpec:
    """One training job, described once and run by any platform.

    ``command`` runs from the root of the unpacked payload (``training/`` holds
    the training folder, ``common/`` the shared one when present).

    What every platform guarantees the command:

    - ``inputs`` maps an input name to a dataset staged with ``invoke stage-dataset``
      on the same platform (``NAME`` or ``NAME:VERSION``); the platform mounts it and
      sets ``input_variable(name)`` (``ROBOTRAIN_INPUT_<NAME>``) to the mounted folder.
    - A checkpoint output folder, named by ``TRAINING_CHECKPOINT_OUTPUT``, whose
      contents are kept after the job ends (and reported by ``train``). ``outputs``
      maps further output names to destination URIs.
    - ``environment`` as given, plus the platform's own variables; ``secrets`` filled
      from the platform's secret store, never written into a spec.
    - ``timeout_seconds``: the job is stopped after that long (``None``: no limit).
    - ``nodes`` × ``processes_per_node`` copies of ``command`` (one per GPU), each with the
      ``RANK_VARIABLES``; or, when ``launches_processes``, one copy per node with the
      ``NODE_VARIABLES``, which starts its node's processes itself (e.g. ``accelerate launch``).
      A single copy without either when the job has one process. Only platforms declared
      ``distributed`` get jobs with more than one process.
    """

    workload: str
    name: str
    image: Image
    command: tuple[str, ...]
    experiment: str
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[SecretRef, ...] = ()
    resources: Resources = Resources()
    payload: Payload | None = None
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    checkpoint: Checkpoint = Checkpoint()
    timeout_seconds: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    nodes: int = 1
    """Machines the job runs on."""
    processes_per_node: int = 1
    """Training processes on each machine: one per GPU."""
    launches_processes: bool = False
    """The command starts its node's processes itself; the platform starts one copy per node."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    def evolve(self, **changes: Any) -> JobSpec:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (secret references only, never values)."""
        return {
            "workload": self.workload,
            "name": self.name,
            "image": {"uri": self.image.uri, "name": self.image.name, "version": self.image.version},
            "command": list(self.command),
            "experiment": self.experiment,
            "environment": dict(self.environment),
            "secrets": [{"env": s.env, "secret": s.secret, "key": s.key} for s in self.secrets],
            "resources": {k: v for k, v in vars(self.resources).items() if v is not None},
            "payload": None
            if self.payload is None
            else {"sha256": self.payload.sha256, "size": self.payload.size},
            "inputs": dict(self.inputs),
            "outputs": dict(self.outputs),
            "checkpoint": {
                "uri": self.checkpoint.uri,
                "mode": self.checkpoint.mode.value,
                "register_as": self.checkpoint.register_as,
            },
            "timeout_seconds": self.timeout_seconds,
            "tags": dict(self.tags),
            "nodes": self.nodes,
            "processes_per_node": self.processes_per_node,
            "launches_processes": self.launches_processes,
        }


@dataclass(frozen=True)
class Submission:
    """What a platform reports after accepting a job.

    ``details`` is the platform's own; ``details["checkpoints"]``, when set, says where the
    job's checkpoint output is kept, and ``train`` prints it.
    """

    platform: str
    job_id: str
    url: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


COMPLETED, FAILED, CANCELED, PREEMPTED = "completed", "failed", "canceled", "preempted"
FINISHED_STATES = frozenset({COMPLETED, FAILED, CANCELED, PREEMPTED})
"""States a job never leaves. ``preempted``: the platform took the job's machine away (a spot
eviction, a node lost); the job did not fail by itself, and ``--on-preemption`` decides what follows."""
OUT_OF_MEMORY = "out_of_memory"
"""``JobStatus.details[OUT_OF_MEMORY] = True``: the job failed because a process ran out of memory."""


@dataclass(frozen=True)
class JobStatus:
    """A job's state as the platform reports it.

    ``state`` is the platform's state in lower case; these have a shared meaning: ``queued``,
    ``running``, and the finished ones ``completed``, ``failed``, ``canceled`` and ``preempted``.
    """

    platform: str
    job_id: str
    state: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def out_of_memory(self) -> bool:
        return self.state == FAILED and self.details.get(OUT_OF_MEMORY) is True


@dataclass(frozen=True)
class DatasetRef:
    """A staged dataset: a name and version the platform can mount."""

    platform: str
    name: str
    version: str
    uri: str
    uploaded: bool
    """False when the same content was already staged and nothing was sent."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version."""

    platform: str
    name: str
    version: str
    uri: str
    created: bool
    """False when the same content was already registered."""

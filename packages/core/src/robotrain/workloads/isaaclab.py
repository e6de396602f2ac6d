"""The built-in ``isaaclab`` workload: Isaac Lab reinforcement learning through ``scripts/train.sh``."""

from __future__ import annotations

from collections.abc import Callable

from robotrain.common_options import world_size
from robotrain.errors import UserError
from robotrain.hookspecs import hookimpl
from robotrain.job import Checkpoint, CheckpointMode, Image, JobSpec, Resources
from robotrain.options import Option, OptionRegistry
from robotrain.registry import Workload
from robotrain.settings import Settings
from robotrain.workloads import azure_environment, pack_training_code, registered_name

NAME = "isaaclab"
DEFAULT_IMAGE = "nvcr.io/nvidia/isaac-lab:2.3.2"
IMAGE_PYTHON = "/workspace/isaaclab/isaaclab.sh -p"
"""Isaac Lab images have no ``python`` on PATH for a non-interactive shell (it is a .bashrc alias)."""
ENTRY_POINT = "training/scripts/train.sh"
MODES = tuple(mode.value for mode in CheckpointMode)


BACKENDS = ("skrl", "rsl_rl")
BACKEND_SPELLINGS = {"rsl-rl": "rsl_rl", "rslrl": "rsl_rl"}
"""Other spellings of a backend that the reference ``train.sh`` accepts."""


def normalize_backend(text: str) -> str:
    """``RSL-RL``, ``rslrl`` → ``rsl_rl``; other values are only lower-cased."""
    lowered = text.strip().lower()
    return BACKEND_SPELLINGS.get(lowered, lowered)


def normalize_mode(text: str) -> str:
    """Checkpoint modes are case-insensitive, as in the scripts (``Warm-Start`` → ``warm-start``)."""
    return text.strip().lower()


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    for option in (
        Option("task", "Isaac Lab task id", default="Isaac-Velocity-Rough-Anymal-C-v0", env="TASK",
               aliases=("t",)),
        Option("num_envs", "parallel simulation environments per training process", kind=int, default=2048,
               env="NUM_ENVS", minimum=1, aliases=("n",)),
        Option("max_iterations", "training iteration limit (default: the task's)", kind=int,
               env="MAX_ITERATIONS", minimum=1, aliases=("m",)),
        Option("backend", "training backend (rsl-rl and rslrl also accepted)", default="skrl",
               env="TRAINING_BACKEND", choices=BACKENDS, normalize=normalize_backend, aliases=("b",)),
        Option("headless", "run without rendering", kind=bool, default=True, negation="gui"),
        Option("checkpoint_uri", "checkpoint to start from: runs:/RUN/PATH, models:/NAME/VERSION, or where "
               "a job kept its checkpoints as train printed it (a folder on local, dataset:// or a storage "
               "URL on OSMO, azureml:// on Azure ML)",
               env="CHECKPOINT_URI", aliases=("c",)),
        Option("checkpoint_mode", "how to start from the checkpoint (any letter case)",
               default="from-scratch", env="CHECKPOINT_MODE", choices=MODES, normalize=normalize_mode,
               aliases=("M",)),
        Option("run_smoke_test", "run the smoke test instead of training", kind=bool,
               default=False, env="RUN_AZURE_SMOKE_TEST", aliases=("s",)),
    ):  # fmt: skip
        options.add(option)


@hookimpl
def robotrain_register_workloads(register: Callable[[Workload], None]) -> None:
    register(Workload(NAME, "Isaac Lab reinforcement learning (scripts/train.sh contract)"))


def checkpoint_from(settings: Settings, register_as: str | None) -> Checkpoint:
    """The checkpoint settings, refusing a weight-loading mode without a URI."""
    mode = CheckpointMode(settings["checkpoint_mode"])
    uri = settings.get("checkpoint_uri")
    if mode.needs_checkpoint and not uri:
        raise UserError(
            f"--checkpoint-mode {mode.value} loads a checkpoint; give --checkpoint-uri "
            f"(runs:/RUN/PATH or models:/NAME/VERSION) or use --checkpoint-mode from-scratch"
        )
    if uri and not mode.needs_checkpoint:
        raise UserError(
            f"--checkpoint-uri is set but --checkpoint-mode is {mode.value}, which ignores it; "
            f"choose warm-start, resume or fresh, or drop the URI"
        )
    return Checkpoint(uri, mode, register_as)


@hookimpl
def robotrain_build_job(workload: str, settings: Settings) -> JobSpec | None:
    if workload != NAME:
        return None
    task = settings["task"]
    checkpoint = checkpoint_from(settings, registered_name(settings, task))
    image = settings.get("image", DEFAULT_IMAGE)
    command = (
        "bash", ENTRY_POINT,
        "--mode", "smoke-test" if settings["run_smoke_test"] else "train",
        "--task", task,
        "--num_envs", str(settings["num_envs"]),
        "--max_iterations", str(settings.get("max_iterations", "")),
        "--checkpoint-uri", checkpoint.uri or "",
        "--checkpoint-mode", checkpoint.mode.value,
        "--register-checkpoint", checkpoint.register_as or "",
    ) + (("--headless",) if settings["headless"] else ()) + (
        ("--distributed",) if world_size(settings) > 1 else ()
    )  # fmt: skip
    environment = {
        "TRAINING_BACKEND": settings["backend"],
        "PYTHON": settings.get("python") or IMAGE_PYTHON,
        "ACCEPT_EULA": "Y",
        "PRIVACY_CONSENT": "Y",
        "NVIDIA_DRIVER_CAPABILITIES": "all",
    } | azure_environment(settings)
    return JobSpec(
        workload=NAME,
        name=settings.get("job_name", "isaaclab-training"),
        image=Image(image, "isaaclab-training-env", _tag(image, "2.3.2")),
        command=command,
        experiment=settings.get("experiment_name", "isaaclab-training"),
        environment=environment,
        resources=Resources(gpu=1, cpu=30, memory="400Gi", storage="200Gi"),
        payload=pack_training_code(settings),
        checkpoint=checkpoint,
        timeout_seconds=23 * 3600,
        tags={"framework": settings["backend"], "task": task},
    )


def _tag(image: str, default: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else default

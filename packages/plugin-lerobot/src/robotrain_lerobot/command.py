"""The ``lerobot-train`` command line for one training request, per pinned LeRobot version."""

from __future__ import annotations

from dataclasses import dataclass

from robotrain_lerobot.versions import LeRobotVersion, PolicyFields

HUB = "hub"
BLOB = "blob"
STAGED = "staged"
BLOB_DATASET_ROOT = "datasets"
"""Where the entry script downloads a blob dataset, relative to the payload root."""


@dataclass(frozen=True)
class TrainRequest:
    """Validated training options, independent of robotrain's settings."""

    lerobot: LeRobotVersion
    dataset_repo_id: str
    policy_type: str | None
    """None when fine-tuning and the pretrained policy's type is unknown."""
    pretrained: str | None
    output_dir: str
    job_name: str
    steps: int
    batch_size: int
    save_freq: int
    log_freq: int
    seed: int
    learning_rate: float | None = None
    warmup_steps: int | None = None
    eval_freq: int | None = None
    """How often the validation loss is computed (``--eval_steps``); needs a validation split."""
    val_split: float = 0.0
    wandb_project: str | None = None
    """Set when tracking with Weights & Biases."""
    hub_repo_id: str | None = None
    """Set when pushing the trained policy to the Hugging Face Hub."""
    data_source: str = HUB
    num_workers: int | None = None

    @property
    def fields(self) -> PolicyFields:
        """The policy's tuning fields; an unknown fine-tune source is assumed to have the usual ones."""
        if self.policy_type is None:
            return PolicyFields()
        return self.lerobot.policies[self.policy_type]

    @property
    def blob_dataset_root(self) -> str:
        return f"{BLOB_DATASET_ROOT}/{self.dataset_repo_id}"


def _flag(name: str, value: object) -> str:
    if isinstance(value, bool):
        value = str(value).lower()
    return f"--{name}={value}"


def lerobot_train_args(request: TrainRequest) -> list[str]:
    """The arguments after ``lerobot-train``, every one a flag the pinned LeRobot reads."""
    args = [_flag("dataset.repo_id", request.dataset_repo_id)]
    if request.data_source == BLOB:
        args.append(_flag("dataset.root", request.blob_dataset_root))
    args += _policy_args(request)
    args += [
        _flag("output_dir", request.output_dir),
        _flag("job_name", request.job_name),
        _flag("steps", request.steps),
        _flag("batch_size", request.batch_size),
        _flag("save_freq", request.save_freq),
        _flag("log_freq", request.log_freq),
        _flag("seed", request.seed),
    ]
    if request.num_workers is not None:
        args.append(_flag("num_workers", request.num_workers))
    args += _evaluation_args(request)
    args.append(_flag("wandb.enable", request.wandb_project is not None))
    if request.wandb_project is not None:
        args.append(_flag("wandb.project", request.wandb_project))
    return args


def _policy_args(request: TrainRequest) -> list[str]:
    if request.pretrained is not None:
        args = [_flag("policy.path", request.pretrained)]
    else:
        args = [_flag("policy.type", request.policy_type)]
    args.append(_flag("policy.push_to_hub", request.hub_repo_id is not None))
    if request.hub_repo_id is not None:
        args.append(_flag("policy.repo_id", request.hub_repo_id))
    fields = request.fields
    if request.learning_rate is not None and fields.learning_rate:
        args.append(_flag(f"policy.{fields.learning_rate}", request.learning_rate))
    if request.warmup_steps is not None and fields.warmup_steps:
        args.append(_flag(f"policy.{fields.warmup_steps}", request.warmup_steps))
    return args


def _evaluation_args(request: TrainRequest) -> list[str]:
    """The validation loss on held-out episodes; simulation evaluation (no environment here) stays off."""
    args = []
    if request.val_split > 0:
        args.append(_flag("dataset.eval_split", request.val_split))
        args.append(_flag("eval_steps", request.eval_freq or request.save_freq))
    return args

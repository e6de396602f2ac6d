"""What each supported LeRobot version accepts: policy types, their tuning fields, renamed flags.

Every table here was read from the released package's own config classes and is
checked against LeRobot's parser by the plugin's tests (tests/test_lerobot_schema.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PolicyFields:
    """Where a policy type takes the learning rate and the warm-up (None: it has no such field)."""

    learning_rate: str | None = "optimizer_lr"
    warmup_steps: str | None = "scheduler_warmup_steps"


CONSTANT_RATE = PolicyFields(warmup_steps=None)
"""A preset with a learning rate but no warm-up (act, tdmpc, …)."""
NO_SINGLE_RATE = PolicyFields(learning_rate=None, warmup_steps=None)
"""A policy whose preset has no single learning rate to set (sac, reward_classifier, …)."""
WITH_WARMUP = PolicyFields()


@dataclass(frozen=True)
class LeRobotVersion:
    """One pinned LeRobot release and the command-line facts that differ between releases."""

    version: str
    policies: Mapping[str, PolicyFields]
    env_eval_flag: str
    """Simulation evaluation frequency: ``eval_freq`` up to 0.5, ``env_eval_freq`` from 0.6."""
    has_val_split: bool
    """``--dataset.eval_split`` and ``--eval_steps`` (held-out validation loss) exist."""
    min_python: tuple[int, int]
    default_image: str | None
    """An image the release installs into; None when the user must name one."""
    image_torch: tuple[str, ...] = ()
    """The torch packages of ``default_image``, pinned: the install keeps them (pip constraints)."""
    base_extras: tuple[str, ...] = ()
    """Package extras ``lerobot-train`` always needs."""
    policy_extras: Mapping[str, str] = field(default_factory=dict)
    """The package extra a policy's model needs (``pi0`` → ``pi``)."""
    policy_packages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Packages a policy's model imports that no extra of LeRobot brings."""
    untrainable: frozenset[str] = frozenset()
    """Policy types the parser knows but ``lerobot-train`` cannot train from a dataset."""
    gated: frozenset[str] = frozenset()
    """Policy types whose model loads a gated Hub model (the PaliGemma tokenizer): they need HF_TOKEN."""
    multi_gpu: bool = False
    """``lerobot-train`` runs under ``accelerate launch`` on several GPUs and machines (LeRobot 0.4.0+)."""

    @property
    def policy_types(self) -> tuple[str, ...]:
        return tuple(sorted(self.policies))

    @property
    def trainable_policy_types(self) -> tuple[str, ...]:
        return tuple(p for p in self.policy_types if p not in self.untrainable)

    def requirement(self, policy_type: str | None) -> str:
        """The pip requirement the job installs: ``lerobot[training,pi]==0.6.1``."""
        extra = self.policy_extras.get(policy_type or "")
        extras = [*self.base_extras, *([extra] if extra else [])]
        return f"lerobot{'[' + ','.join(extras) + ']' if extras else ''}=={self.version}"

    def requirements(self, policy_type: str | None) -> tuple[str, ...]:
        """LeRobot with the policy's extra, plus the packages the policy imports beyond it."""
        return (self.requirement(policy_type), *self.policy_packages.get(policy_type or "", ()))


LEROBOT_0_3 = LeRobotVersion(
    version="0.3.3",
    policies={
        "act": CONSTANT_RATE,
        "diffusion": WITH_WARMUP,
        "pi0": WITH_WARMUP,
        "pi0fast": WITH_WARMUP,
        "reward_classifier": NO_SINGLE_RATE,
        "sac": NO_SINGLE_RATE,
        "smolvla": WITH_WARMUP,
        "tdmpc": CONSTANT_RATE,
        "vqbet": WITH_WARMUP,
    },
    env_eval_flag="eval_freq",
    has_val_split=False,
    min_python=(3, 10),
    default_image="pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
    image_torch=("torch==2.7.1", "torchvision==0.22.1"),
    policy_extras={
        "pi0": "pi0",
        "pi0fast": "pi0",
        "smolvla": "smolvla",
        "reward_classifier": "transformers-dep",
    },
    policy_packages={"pi0": ("pytest>=8.1",), "pi0fast": ("scipy>=1.10",)},
    untrainable=frozenset({"sac"}),
    gated=frozenset({"pi0", "pi0fast"}),
)

LEROBOT_0_6 = LeRobotVersion(
    version="0.6.1",
    policies={
        "act": CONSTANT_RATE,
        "diffusion": WITH_WARMUP,
        "eo1": WITH_WARMUP,
        "evo1": WITH_WARMUP,
        "fastwam": CONSTANT_RATE,
        "gaussian_actor": NO_SINGLE_RATE,
        "groot": CONSTANT_RATE,
        "lingbot_va": WITH_WARMUP,
        "molmoact2": WITH_WARMUP,
        "multi_task_dit": WITH_WARMUP,
        "pi0": WITH_WARMUP,
        "pi05": WITH_WARMUP,
        "pi0_fast": WITH_WARMUP,
        "smolvla": WITH_WARMUP,
        "tdmpc": CONSTANT_RATE,
        "vla_jepa": WITH_WARMUP,
        "vqbet": WITH_WARMUP,
        "wall_x": WITH_WARMUP,
        "xvla": WITH_WARMUP,
    },
    env_eval_flag="env_eval_freq",
    has_val_split=True,
    min_python=(3, 12),
    default_image=None,
    base_extras=("training",),
    policy_extras={
        "diffusion": "diffusion",
        "eo1": "eo1",
        "evo1": "evo1",
        "fastwam": "fastwam",
        "groot": "groot",
        "lingbot_va": "lingbot-va",
        "molmoact2": "molmoact2",
        "multi_task_dit": "multi-task-dit",
        "pi0": "pi",
        "pi05": "pi",
        "pi0_fast": "pi",
        "smolvla": "smolvla",
        "vla_jepa": "vla-jepa",
        "wall_x": "wallx",
        "xvla": "xvla",
    },
    untrainable=frozenset({"gaussian_actor"}),
    gated=frozenset({"pi0", "pi05", "pi0_fast"}),
    multi_gpu=True,
)

SUPPORTED: Mapping[str, LeRobotVersion] = {v.version: v for v in (LEROBOT_0_3, LEROBOT_0_6)}
DEFAULT_VERSION = LEROBOT_0_3.version
"""The pin: what the current scripts use; it installs into the default image (Python 3.11, torch 2.7.1)."""

RENAMED_POLICIES = {"pi0fast": "pi0_fast", "pi0_fast": "pi0fast"}
"""Policy types spelled differently across releases (0.3 ``pi0fast`` is 0.4+ ``pi0_fast``)."""

KNOWN_PRETRAINED = {
    "lerobot/pi0": "pi0",
    "lerobot/smolvla_base": "smolvla",
    "lerobot/diffusion_pusht": "diffusion",
    "lerobot/act_aloha_sim_transfer_cube_human": "act",
    "lerobot/act_aloha_sim_insertion_human": "act",
}
"""Published pretrained policies whose type is known without downloading their config."""

"""Recovery: submit a job again after a preemption (or running out of memory), as ``--retries`` says.

With ``--retries N`` ``train`` watches the job until it ends (polling ``robotrain_status``
every ``--poll-interval`` seconds; a foreground platform such as local returns when
it ends anyway). A job that ended ``preempted`` is submitted again as ``--on-preemption``
says: ``resume`` rebuilds it with ``--checkpoint-mode resume`` from the newest checkpoint
the attempt wrote (``robotrain_latest_checkpoint``; the start again when it wrote none),
``restart`` submits the same job, ``fail`` stops. A job that ran out of memory is
retried with half the environments when ``--on-oom halve-envs``. Any other end is final.
Each attempt is a job of its own in ``invoke jobs``, linked to the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robotrain.errors import UserError
from robotrain.job import PREEMPTED, JobStatus

if TYPE_CHECKING:
    from robotrain.settings import Settings

ON_PREEMPTION = ("resume", "restart", "fail")
ON_OOM = ("fail", "halve-envs")
RESUME_OPTIONS = ("checkpoint_uri", "checkpoint_mode")
"""The options a workload takes to start from a checkpoint; ``resume`` needs both."""
ENVIRONMENTS_OPTION = "num_envs"


@dataclass(frozen=True)
class Policy:
    """What ``train`` does when an attempt does not complete."""

    retries: int = 0
    on_preemption: str = "restart"
    on_oom: str = "fail"

    @property
    def watching(self) -> bool:
        return self.retries > 0

    def next_step(self, status: JobStatus) -> str | None:
        """``resume``, ``restart`` or ``halve-envs`` for an attempt that ended so; None: stop here."""
        if status.state == PREEMPTED and self.on_preemption != "fail":
            return self.on_preemption
        if status.out_of_memory and self.on_oom == "halve-envs":
            return "halve-envs"
        return None


def policy(settings: Settings, workload_options: set[str]) -> Policy:
    """The policy the settings ask for, refused in one line when the workload cannot follow it."""
    retries = int(settings.get("retries", 0) or 0)
    on_preemption = settings.get("on_preemption")
    can_resume = all(name in workload_options for name in RESUME_OPTIONS)
    if on_preemption is None:
        on_preemption = "resume" if can_resume else "restart"
    elif on_preemption == "resume" and not can_resume:
        raise UserError(
            f"--on-preemption resume: workload {settings['workload']!r} takes no --checkpoint-uri and "
            f"--checkpoint-mode to resume with; use --on-preemption restart"
        )
    on_oom = str(settings.get("on_oom", "fail"))
    if on_oom == "halve-envs" and ENVIRONMENTS_OPTION not in workload_options:
        raise UserError(
            f"--on-oom halve-envs: workload {settings['workload']!r} has no --num-envs to halve; "
            f"use --on-oom fail"
        )
    if retries and settings.get("detach", False):
        raise UserError("--retries needs train to watch the job until it ends; leave out --detach")
    return Policy(retries, str(on_preemption), on_oom)


def overrides(step: str, checkpoint: str | None, settings: Settings) -> dict[str, Any]:
    """The settings the next attempt changes."""
    if step == "resume" and checkpoint:
        return {"checkpoint_uri": checkpoint, "checkpoint_mode": "resume"}
    if step == "halve-envs":
        environments = int(settings[ENVIRONMENTS_OPTION])
        if environments <= 1:
            return {}
        return {ENVIRONMENTS_OPTION: environments // 2}
    return {}


def describe(step: str, checkpoint: str | None, changes: dict[str, Any]) -> str:
    if step == "resume":
        if checkpoint is None:
            return "starting again (the platform cannot tell its newest checkpoint)"
        return f"resuming from {checkpoint}" if checkpoint else "starting again (it wrote no checkpoint)"
    if step == "halve-envs":
        return f"with --num-envs {changes[ENVIRONMENTS_OPTION]}"
    return "starting again"

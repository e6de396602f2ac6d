"""Options every job takes, whatever its workload and platform; core applies them to the built job.

``--timeout`` sets ``JobSpec.timeout_seconds``, ``--env KEY=VALUE`` adds to the job's environment,
and arguments after ``--`` go to the platform's own submit command where it has one.
"""

from __future__ import annotations

import re
from dataclasses import replace

from robotrain.errors import UserError
from robotrain.job import CHECKPOINT_OUTPUT_VARIABLE, JobSpec
from robotrain.registry import Platform
from robotrain.settings import Settings

MAX_TIMEOUT_SECONDS = 60 * 86400
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:\d+[dhms])+$")
_DURATION_PART = re.compile(r"(\d+)([dhms])")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_PREFIXES = ("ROBOTRAIN_", "MLFLOW_TRACKING_", "AZUREML_", "AZURE_ML_", "OSMO_")
RESERVED_NAMES = frozenset({"PYTHON", CHECKPOINT_OUTPUT_VARIABLE, "PATH", "HOME"})
_SECRET_NAME = re.compile(
    r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)
_SECRET_VALUE = re.compile(
    r"^(ghp_|gho_|github_pat_|hf_[A-Za-z0-9]{20}|AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9]{20}|xox[abpr]-"
    r"|eyJ[A-Za-z0-9_-]{10,}\.)"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


def parse_duration(text: str, flag: str = "--timeout") -> int:
    """``3600`` → 3600, ``23h`` → 82800, ``1h30m`` → 5400: whole seconds, at most 60 days."""
    value = text.strip()
    if value.isdigit():
        seconds = int(value)
    elif _DURATION.match(value):
        seconds = sum(int(n) * UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(value))
    else:
        raise UserError(
            f"{flag}: {text!r} is not a duration; give whole seconds (3600) or whole numbers "
            f"with d, h, m or s (23h, 90m, 1h30m)"
        )
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise UserError(f"{flag}: {text!r} must be more than 0 seconds and at most 60d")
    return seconds


def parse_env(items: list[str], job: JobSpec) -> dict[str, str]:
    """``--env KEY=VALUE`` items, refusing names robotrain sets and values that look like secrets."""
    owned = set(job.environment) | {ref.env for ref in job.secrets} | RESERVED_NAMES
    variables: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise UserError(f"--env: {item!r} is not KEY=VALUE (KEY of letters, digits and _)")
        if name in owned or name.startswith(RESERVED_PREFIXES):
            raise UserError(
                f"--env: {name} is set by robotrain for this job; use the option that sets it "
                f"(`invoke train --help`) instead of --env"
            )
        if _SECRET_NAME.search(name) or _SECRET_VALUE.search(value):
            raise UserError(
                f"--env: {name} looks like a secret; never put secrets in the job's environment, "
                f"give the job a secret reference from the platform's secret store instead"
            )
        variables[name] = value
    return variables


def check_passthrough(platform: Platform, settings: Settings) -> None:
    """Arguments after ``--`` need a platform submit command to go to."""
    if settings.extra_args and platform.passthrough is None:
        raise UserError(
            f"arguments after -- ({' '.join(settings.extra_args)}) go to the platform's own submit "
            f"command, and platform {platform.name!r} has none; remove them"
        )


def processes_per_node(settings: Settings) -> int:
    """Training processes per machine: one per GPU (``--gpus``), one for a CPU-only job."""
    return max(int(settings.get("gpus", 1)), 1)


def world_size(settings: Settings) -> int:
    """All training processes of the job: ``--nodes`` × processes per node."""
    return int(settings.get("nodes", 1)) * processes_per_node(settings)


def check_distributed(platform: Platform, job: JobSpec) -> None:
    """A job of more than one process needs a platform that runs them."""
    if job.world_size > 1 and not platform.distributed:
        raise UserError(
            f"platform {platform.name!r} cannot run a distributed job ({job.nodes} node(s) x "
            f"{job.processes_per_node} process(es)); use --nodes 1 --gpus 1 or a platform that can"
        )


def apply_common_options(job: JobSpec, settings: Settings) -> JobSpec:
    """The job with ``--timeout``, ``--env``, ``--nodes`` and ``--gpus`` applied."""
    changes: dict[str, object] = {}
    if settings.get("gpus") is not None:
        changes["resources"] = replace(job.resources, gpu=int(settings["gpus"]))
    if settings.get("nodes") is not None or settings.get("gpus") is not None:
        changes["nodes"] = int(settings.get("nodes", 1))
        changes["processes_per_node"] = processes_per_node(settings)
    timeout = settings.get("timeout")
    if timeout not in (None, ""):
        changes["timeout_seconds"] = parse_duration(str(timeout))
    extra = parse_env(list(settings.get("env", [])), job)
    if extra:
        changes["environment"] = {**job.environment, **extra}
    return job.evolve(**changes) if changes else job

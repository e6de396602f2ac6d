"""Options every job takes, whatever its workload and platform; core applies them to the built job.

``--timeout`` sets ``JobSpec.timeout_seconds``, ``--env KEY=VALUE`` adds to the job's environment,
and arguments after ``--`` go to the platform's own submit command where it has one.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any

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
SECRET_WORDS = frozenset({
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS",
    "APIKEY", "ACCESSKEY", "SECRETKEY", "PRIVATEKEY",
})  # fmt: skip
"""A variable whose name has one of these words (parts between ``_``) holds a secret: ``HF_TOKEN``."""
KEY_QUALIFIERS = frozenset({"API", "ACCESS", "ACCOUNT", "PRIVATE", "SECRET", "CLIENT", "SIGNING", "MASTER"})
"""``KEY`` after one of these words names a secret too: ``WANDB_API_KEY``, ``AZURE_CLIENT_KEY``."""
_PLAIN_SETTING = re.compile(r"^(|true|false|yes|no|on|off|\d{1,6})$", re.IGNORECASE)
"""Values that cannot be secrets even under such a name (``HF_HUB_DISABLE_IMPLICIT_TOKEN=1``)."""
_SECRET_FORMATS = re.compile(
    r"\bhf_[A-Za-z0-9]{30,}"  # Hugging Face access tokens (huggingface.co/docs/hub/security-tokens)
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic API keys
    r"|AccountKey=|SharedAccessKey=|SharedAccessSignature=|[?&]sig=[A-Za-z0-9%]{20,}"  # Azure keys, SAS
)
"""Credential formats detect-secrets has no detector for; its detectors cover the rest."""
IGNORED_DETECTORS = frozenset({"IPPublicDetector"})
"""A public IP address is an address, not a credential."""


def looks_like_secret(name: str, value: str) -> bool:
    """Whether ``NAME=value`` carries a credential: by the variable's name, or by the value's format.

    Formats are recognised by detect-secrets' pattern detectors (AWS, GitHub, GitLab, JWT, Slack,
    Stripe, private keys, passwords in URLs, ...) plus the few in ``_SECRET_FORMATS``. Its entropy
    detectors are not used: paths, task ids and hashes would look like secrets too.
    """
    parts = name.upper().split("_")
    named = any(part in SECRET_WORDS for part in parts) or any(
        part == "KEY" and before in KEY_QUALIFIERS for before, part in itertools.pairwise(parts)
    )
    if named and not _PLAIN_SETTING.match(value.strip()):
        return True
    return bool(_SECRET_FORMATS.search(value)) or _detected(value)


def _detected(value: str) -> bool:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    # Any: the package types its plugin classes as a Union it cannot instantiate
    kinds: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    detectors = [
        kind
        for kind in kinds
        if issubclass(kind, RegexBasedDetector) and kind.__name__ not in IGNORED_DETECTORS
    ]
    return any(any(True for _ in detector().analyze_string(value)) for detector in detectors)


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
            shown = f"{name!r}" if sep else "an item without ="  # the text may be a value: never shown
            raise UserError(f"--env: {shown} is not KEY=VALUE with a KEY of letters, digits and _")
        if name in owned or name.startswith(RESERVED_PREFIXES):
            raise UserError(
                f"--env: {name} is set by robotrain for this job; use the option that sets it "
                f"(`invoke train --help`) instead of --env"
            )
        if looks_like_secret(name, value):
            raise UserError(
                f"--env: {name} looks like a secret; secrets never go into the job's environment: keep "
                f"it in the platform's secret store and give the job a secret reference to it"
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

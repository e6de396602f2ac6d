"""robotrain: submit robot-learning training jobs to the platforms where they run.

The public API for plugin authors: ``hookimpl`` and the hook specifications in
``robotrain.hookspecs``, the job description in ``robotrain.job``, ``Option``
for contributed settings, ``Workload``/``Platform`` declarations, ``Settings``
and ``UserError``.

Names are imported on first use, so that ``import robotrain`` (and the command
line's listing and help) stays cheap.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

# invoke turns bytecode caching off for its whole process (Program.parse_core), and robotrain is imported
# after that: without this, an install made without .pyc files (uv's default) compiles robotrain and its
# plugins on every command (~0.1 s). Python's own switches (-B, PYTHONDONTWRITEBYTECODE) still apply.
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)

if TYPE_CHECKING:
    from robotrain.errors import UserError
    from robotrain.hookspecs import hookimpl
    from robotrain.job import (
        Checkpoint,
        CheckpointMode,
        DatasetRef,
        Image,
        JobSpec,
        JobStatus,
        ModelRef,
        Payload,
        Resources,
        SecretRef,
        Submission,
    )
    from robotrain.options import Option, OptionRegistry
    from robotrain.registry import Platform, Workload
    from robotrain.settings import Settings

_HOMES = {
    "UserError": "robotrain.errors",
    "hookimpl": "robotrain.hookspecs",
    **dict.fromkeys(
        ("Checkpoint", "CheckpointMode", "DatasetRef", "Image", "JobSpec", "JobStatus", "ModelRef",
         "Payload", "Resources", "SecretRef", "Submission"),
        "robotrain.job",
    ),
    "Option": "robotrain.options",
    "OptionRegistry": "robotrain.options",
    "Platform": "robotrain.registry",
    "Workload": "robotrain.registry",
    "Settings": "robotrain.settings",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("robotrain-core")
        except PackageNotFoundError:  # running from a source tree without an install
            return "0.0.0"
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'robotrain' has no attribute {name!r}")


__all__ = [
    "Checkpoint",
    "CheckpointMode",
    "DatasetRef",
    "Image",
    "JobSpec",
    "JobStatus",
    "ModelRef",
    "Option",
    "OptionRegistry",
    "Payload",
    "Platform",
    "Resources",
    "SecretRef",
    "Settings",
    "Submission",
    "UserError",
    "Workload",
    "__version__",
    "hookimpl",
]  # fmt: skip

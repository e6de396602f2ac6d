"""robotrain: submit robot-learning training jobs to the platforms where they run.

The public API for plugin authors: ``hookimpl`` and the hook specifications in
``robotrain.hookspecs``, the job description in ``robotrain.job``, ``Option``
for contributed settings, ``Workload``/``Platform`` declarations, ``Settings``
and ``UserError``.
"""

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("robotrain-core")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0"

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

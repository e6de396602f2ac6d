"""What a LeRobot job installs: one pinned set per platform, tracking, data source, policy and version.

Each set is installed in one go and must resolve as a whole (``nox -s lerobot-installs``
resolves every set :func:`every_install_set` lists with ``uv pip compile``). The helper
pins were chosen together: azureml-mlflow 1.62.0.post6 needs mlflow-skinny <= 3.15.0 and
azure-storage-blob <= 12.27.1, so newer ones beside it do not resolve.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from robotrain_lerobot.versions import SUPPORTED, LeRobotVersion

MLFLOW = ("mlflow-skinny==3.15.0",)
AZUREML_MLFLOW = ("azureml-mlflow==1.62.0.post6", "mlflow-skinny==3.15.0", "azure-identity==1.27.0")
"""azureml-mlflow reads ``azureml://`` tracking URIs; azure-identity signs in to find the workspace's."""
BLOB = ("azure-storage-blob==12.27.1", "azure-identity==1.27.0")
SYSTEM_METRICS = ("psutil==7.2.2", "nvidia-ml-py==13.615.71")
PLATFORM_TAG = "x86_64-manylinux_2_35"
"""The job images' platform (Ubuntu 22.04, glibc 2.35), for resolving without installing."""


class Tracker(enum.StrEnum):
    """Where the job's MLflow run lives, which decides the MLflow packages the job needs."""

    NONE = "none"
    """No MLflow run (``--tracking wandb`` or ``none``)."""
    HOST = "host"
    """The local platform: the entry point runs on robotrain's own interpreter, which has MLflow."""
    SERVER = "server"
    """An MLflow server (``--mlflow-uri`` or a platform's ``MLFLOW_TRACKING_URI``): mlflow-skinny."""
    AZUREML = "azureml"
    """An Azure ML workspace's MLflow (``azureml://`` URIs): azureml-mlflow."""

    @property
    def packages(self) -> tuple[str, ...]:
        return {Tracker.SERVER: MLFLOW, Tracker.AZUREML: AZUREML_MLFLOW}.get(self, ())


@dataclass(frozen=True)
class InstallSet:
    """The packages one job installs into its Python, and the constraints that keep the image's torch."""

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    python: str
    """The Python version it installs into (``3.11``)."""


def install_set(
    lerobot: LeRobotVersion,
    policy_type: str | None,
    *,
    blob: bool,
    tracker: Tracker,
    system_metrics: bool,
    default_image: bool,
    python: str | None = None,
) -> InstallSet:
    """The set a job installs; ``default_image`` adds constraints that keep that image's torch."""
    requirements = [*lerobot.requirements(policy_type)]
    if blob:
        requirements += BLOB
    requirements += tracker.packages
    if system_metrics and tracker in (Tracker.SERVER, Tracker.AZUREML):
        requirements += SYSTEM_METRICS
    return InstallSet(
        requirements=tuple(dict.fromkeys(requirements)),
        constraints=lerobot.image_torch if default_image else (),
        python=python or default_python(lerobot),
    )


def default_python(lerobot: LeRobotVersion) -> str:
    """The Python a job of this version runs on: the default image's 3.11, else the version's minimum."""
    return "3.11" if lerobot.default_image else ".".join(map(str, lerobot.min_python))


def every_install_set(versions: Iterable[LeRobotVersion] = SUPPORTED.values()) -> list[InstallSet]:
    """Every distinct set the plugin can generate (what ``nox -s lerobot-installs`` resolves)."""
    found: dict[InstallSet, None] = {}
    for lerobot in versions:
        images = (True, False) if lerobot.default_image else (False,)
        for policy_type, blob, tracker, metrics, default_image in itertools.product(
            lerobot.trainable_policy_types, (False, True), Tracker, (False, True), images
        ):
            chosen = install_set(
                lerobot,
                policy_type,
                blob=blob,
                tracker=tracker,
                system_metrics=metrics,
                default_image=default_image,
            )
            found[chosen] = None
    return list(found)

"""Run one LeRobot training job inside the container: ``python3 lerobot_job.py <lerobot-train args>``.

1. Install the pinned LeRobot (``LEROBOT_REQUIREMENT``, e.g. ``lerobot[pi0]==0.3.3``: the
   policy's extra included) unless that exact version is there,
   plus the pinned helpers the job needs (Azure Blob download, MLflow).
2. Fetch the dataset: from the Hub (LeRobot itself), from Azure Blob
   (``AZURE_STORAGE_ACCOUNT``/``AZURE_STORAGE_CONTAINER``/``BLOB_PREFIX`` into
   ``LEROBOT_DATASET_ROOT``, signed in with the job's managed identity), or from a dataset
   the platform mounted (its path in ``ROBOTRAIN_INPUT_DATASET``).
3. Run ``lerobot-train`` with the arguments given.
4. Register the newest checkpoint under ``REGISTER_CHECKPOINT`` in MLflow when
   ``MLFLOW_TRACKING_URI`` is set (Azure ML and the local platform set it); otherwise the
   checkpoint stays in the output folder and the log says so. When ``TRAINING_CHECKPOINT_OUTPUT``
   is set (Azure ML's checkpoints output) the checkpoint is copied there too.

Only the standard library is imported at start; secrets arrive as environment variables
set by the platform and are never printed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BLOB_PACKAGES = ("azure-storage-blob==12.31.1", "azure-identity==1.27.0")
MLFLOW_PACKAGES = ("mlflow-skinny==3.17.2",)
AZUREML_MLFLOW_PACKAGES = ("azureml-mlflow==1.62.0.post6",)
SYSTEM_METRICS_PACKAGES = ("psutil==7.2.2", "nvidia-ml-py==13.615.71")


def log(message: str) -> None:
    print(f"robotrain-lerobot: {message}", flush=True)


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def missing(requirements: Sequence[str]) -> list[str]:
    """The ``name[extras]==version`` pins whose exact version is not installed."""
    return [r for r in requirements if installed_version(re.split(r"[\[=]", r)[0]) != r.split("==")[1]]


def install(requirements: Sequence[str]) -> None:
    needed = missing(requirements)
    if not needed:
        return
    log(f"installing {' '.join(needed)}")
    if importlib.util.find_spec("pip") is None and shutil.which("uv"):
        command = ["uv", "pip", "install", "--python", sys.executable, *needed]
    else:
        command = [sys.executable, "-m", "pip", "install", "--no-cache-dir", *needed]
    subprocess.run(command, check=True)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", "")


def uses_mlflow() -> bool:
    wanted = os.environ.get("LEROBOT_TRACKING") == "mlflow" or bool(os.environ.get("REGISTER_CHECKPOINT"))
    return wanted and bool(tracking_uri())


def requirements() -> list[str]:
    """Every package this job needs, pinned."""
    needed = [os.environ.get("LEROBOT_REQUIREMENT") or f"lerobot=={os.environ['LEROBOT_VERSION']}"]
    if os.environ.get("LEROBOT_DATASET_SOURCE") == "blob":
        needed += BLOB_PACKAGES
    if uses_mlflow():
        if not (installed_version("mlflow") or installed_version("mlflow-skinny")):
            needed += MLFLOW_PACKAGES
        if tracking_uri().startswith("azureml:"):
            needed += AZUREML_MLFLOW_PACKAGES
        if os.environ.get("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING") == "true":
            needed += SYSTEM_METRICS_PACKAGES
    return needed


def fetch_blob_dataset(root: Path) -> None:
    """Download every blob under BLOB_PREFIX into ``root``, keeping the relative layout."""
    from azure.identity import DefaultAzureCredential
    from azure.storage.blob import ContainerClient

    account, container = os.environ["AZURE_STORAGE_ACCOUNT"], os.environ["AZURE_STORAGE_CONTAINER"]
    prefix = os.environ["BLOB_PREFIX"].strip("/") + "/"
    client = ContainerClient(f"https://{account}.blob.core.windows.net", container, DefaultAzureCredential())
    count = 0
    for blob in client.list_blobs(name_starts_with=prefix):
        target = root / blob.name[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            client.download_blob(blob.name).readinto(handle)
        count += 1
    if count == 0:
        raise SystemExit(f"robotrain-lerobot: no blobs under {container}/{prefix} in account {account}")
    log(f"downloaded {count} files from {container}/{prefix} to {root}")


def dataset_args() -> list[str]:
    """Fetch the dataset when it is not on the Hub; the extra lerobot-train arguments that need."""
    source = os.environ.get("LEROBOT_DATASET_SOURCE", "hub")
    if source == "blob":
        fetch_blob_dataset(Path(os.environ["LEROBOT_DATASET_ROOT"]))
    elif source == "staged":
        mounted = os.environ.get("ROBOTRAIN_INPUT_DATASET", "")
        if not mounted:
            raise SystemExit("robotrain-lerobot: the platform did not set ROBOTRAIN_INPUT_DATASET")
        return [f"--dataset.root={mounted}"]
    return []


def output_dir(args: Sequence[str]) -> Path:
    for arg in args:
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1])
    raise SystemExit("robotrain-lerobot: no --output_dir= among the lerobot-train arguments")


def newest_checkpoint(output: Path) -> Path | None:
    """``checkpoints/last/pretrained_model``, else the highest-numbered checkpoint's."""
    checkpoints = output / "checkpoints"
    last = checkpoints / "last" / "pretrained_model"
    if last.is_dir():
        return last
    numbered = [p for p in checkpoints.glob("*/pretrained_model") if re.fullmatch(r"\d+", p.parent.name)]
    return max(numbered, key=lambda p: int(p.parent.name), default=None)


def train(args: Sequence[str]) -> int:
    log(f"lerobot-train {' '.join(args)}")
    return subprocess.run(["lerobot-train", *args], check=False).returncode


def register(mlflow: Any, checkpoint: Path, name: str) -> None:
    """Log the checkpoint to the active run and make it a new version of model ``name``."""
    from mlflow.exceptions import MlflowException

    mlflow.log_artifacts(str(checkpoint), artifact_path="checkpoint")
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run_id = mlflow.active_run().info.run_id
    version = client.create_model_version(name, mlflow.get_artifact_uri("checkpoint"), run_id)
    log(f"registered {checkpoint} as model {name} version {version.version}")


def train_tracked(args: Sequence[str], name: str) -> int:
    """Train inside an MLflow run; on success register the newest checkpoint under ``name``."""
    import mlflow

    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "lerobot-training"))
    with mlflow.start_run():
        mlflow.log_params(
            {"lerobot_version": os.environ["LEROBOT_VERSION"], "command": " ".join(args)[:6000]}
        )
        code = train(args)
        checkpoint = newest_checkpoint(output_dir(args))
        if code == 0 and name and checkpoint is not None:
            register(mlflow, checkpoint, name)
    return code


def copy_to_output(args: Sequence[str]) -> None:
    destination = os.environ.get("TRAINING_CHECKPOINT_OUTPUT")
    checkpoint = newest_checkpoint(output_dir(args))
    if destination and checkpoint is not None:
        shutil.copytree(checkpoint, Path(destination) / "pretrained_model", dirs_exist_ok=True)
        log(f"copied {checkpoint} to {destination}")


def main(argv: Sequence[str]) -> int:
    install(requirements())
    args = [*argv, *dataset_args()]
    name = os.environ.get("REGISTER_CHECKPOINT", "")
    if uses_mlflow():
        code = train_tracked(args, name)
    else:
        code = train(args)
        if name:
            log(f"MLFLOW_TRACKING_URI is not set: {name} is not registered; the checkpoint stays in place")
    if code == 0:
        if newest_checkpoint(output_dir(args)) is None:
            log("lerobot-train finished but wrote no checkpoint")
            return 1
        copy_to_output(args)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

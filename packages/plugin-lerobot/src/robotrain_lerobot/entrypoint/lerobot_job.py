"""Run one LeRobot training job: ``python3 lerobot_job.py <lerobot-train args>``.

1. Install the job's set (``LEROBOT_INSTALL``, pinned by the plugin and resolved as a whole;
   ``LEROBOT_CONSTRAINTS`` keeps the image's torch) into the job's Python. On the local
   platform that is LeRobot's own virtual environment (``LEROBOT_VENV``, created with uv from
   ``LEROBOT_VENV_PYTHON`` and reused); this script itself then runs on robotrain's interpreter
   and installs nothing into it.
2. Find the MLflow server: the platform's ``MLFLOW_TRACKING_URI``, or with
   ``LEROBOT_MLFLOW_FROM_WORKSPACE`` the Azure ML workspace's (looked up with the job's identity).
3. Fetch the dataset: Hub (LeRobot itself), Azure Blob (into ``LEROBOT_DATASET_ROOT``), or a
   dataset the platform mounted (its folder in the variable ``LEROBOT_DATASET_VARIABLE`` names).
4. Check video decoding: torchcodec needs FFmpeg's libraries; without them PyAV's bundled
   FFmpeg is chosen (``--dataset.video_backend=pyav``), and one line says so.
5. Run ``lerobot-train``; its loss, gradient norm, learning rate and validation loss go to
   the MLflow run as metrics. A failed training ends the run FAILED, SIGTERM ends it KILLED.
   A job of several processes (``LEROBOT_LAUNCHER=accelerate``) runs this script once per
   node, which starts its node's processes with ``accelerate launch`` from the platform's
   node variables (``NNODES``, ``NODE_RANK``, ``NPROC_PER_NODE``, ``MASTER_ADDR``, ``MASTER_PORT``).
6. Copy the newest checkpoint to ``TRAINING_CHECKPOINT_OUTPUT`` (also after a failure or
   SIGTERM), then register it as a new version of ``REGISTER_CHECKPOINT`` in MLflow.
   Under accelerate only the main process (rank 0, on node 0) logs and saves checkpoints, so
   only node 0 tracks to MLflow, copies and registers; the other nodes only train.

Only the standard library is imported at start; secrets arrive as environment variables
set by the platform and are never printed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

INSTALLED_MARKER = "robotrain-installed.txt"
VIDEO_CHECK = """
def first_line(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    return next((line for line in lines if ".so" in line), lines[0])
try:
    import torchcodec.decoders
    print("torchcodec")
except Exception as error:
    try:
        import av
        print("pyav", first_line(error))
    except Exception as av_error:
        print("none", first_line(error), "| PyAV:", first_line(av_error))
"""
"""Run in the job's Python: which video decoder loads there (torchcodec's error names the missing library)."""
METRIC_NAMES = {"loss": "loss", "grdn": "grad_norm", "lr": "learning_rate"}
"""LeRobot's training log fields (``loss:0.512 grdn:8.1 lr:1.0e-05``) and the MLflow metric each becomes."""
VALIDATION_LINE = re.compile(r"step (\d+): eval_loss=([0-9.eE+-]+)")
NODE_VARIABLES = ("NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT")
"""What the platform gives each node's copy of a job that starts its processes itself (robotrain.job)."""
ARM = "https://management.azure.com"
WORKSPACE_API = "2024-10-01"


def log(message: str) -> None:
    print(f"robotrain-lerobot: {message}", flush=True)


class JobError(Exception):
    """A problem the job reports in one line before it stops."""


# --- 1. the job's Python and its packages -------------------------------------------------


class JobPython:
    """The interpreter LeRobot runs on, and how packages are installed into it."""

    def __init__(self) -> None:
        self.venv = Path(os.environ["LEROBOT_VENV"]) if os.environ.get("LEROBOT_VENV") else None
        self.python = str(self.venv / "bin" / "python") if self.venv else sys.executable

    def executable(self, name: str) -> str:
        """A console script of the job's Python (``lerobot-train``)."""
        if self.venv is not None:
            return str(self.venv / "bin" / name)
        return shutil.which(name) or str(Path(sys.executable).parent / name)

    def prepare(self, requirements: Sequence[str], constraints: Sequence[str]) -> None:
        if self.venv is None:
            install_here(requirements, constraints)
        else:
            prepare_venv(self.venv, requirements, constraints)


def prepare_venv(venv: Path, requirements: Sequence[str], constraints: Sequence[str]) -> None:
    """Create LeRobot's environment with uv on first use; reinstall only when the set changed."""
    wanted = "\n".join([*requirements, "--", *constraints]) + "\n"
    marker = venv / INSTALLED_MARKER
    if marker.is_file() and marker.read_text() == wanted:
        log(f"using LeRobot's environment {venv}")
        return
    uv = shutil.which("uv")
    if uv is None:
        raise JobError(
            "uv is needed to create LeRobot's environment on this machine; install it (pip install uv)"
        )
    if not (venv / "bin" / "python").exists():
        log(f"creating LeRobot's environment {venv}")
        run([uv, "venv", "--quiet", "--python", os.environ["LEROBOT_VENV_PYTHON"], str(venv)])
    log(f"installing {' '.join(requirements)} into {venv}")
    run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), *requirements,
         *constraint_args(constraints, venv)])  # fmt: skip
    marker.write_text(wanted)


def install_here(requirements: Sequence[str], constraints: Sequence[str]) -> None:
    """Install into this interpreter unless every requirement is already satisfied."""
    needed = [r for r in requirements if not satisfied(r)]
    if not needed:
        return
    before = installed_version("torch")
    log(f"installing {' '.join(needed)}")
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    if importlib.util.find_spec("pip") is None and shutil.which("uv"):
        command = ["uv", "pip", "install", "--python", sys.executable]
    else:
        command = [sys.executable, "-m", "pip", "install", "--no-cache-dir"]
    run([*command, *needed, *constraint_args(constraints, folder)])
    importlib.invalidate_caches()
    after = installed_version("torch")
    if before and after != before:
        log(f"the install replaced the image's torch {before} with {after}: pick an image whose torch "
            f"LeRobot {os.environ.get('LEROBOT_VERSION')} accepts to save that download")  # fmt: skip


def constraint_args(constraints: Sequence[str], folder: Path) -> list[str]:
    if not constraints:
        return []
    path = folder / "robotrain-constraints.txt"
    path.write_text("\n".join(constraints) + "\n")
    return ["-c", str(path)]


def run(command: Sequence[str]) -> None:
    if subprocess.run(list(command), check=False).returncode != 0:
        raise JobError(f"{Path(command[0]).name} failed: {' '.join(command[1:4])} ...")


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def satisfied(requirement: str) -> bool:
    """``name==version`` installed at exactly that version, any other requirement installed at all."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    version = installed_version(name)
    if version is None:
        return False
    pinned = re.search(r"==([^,;\s]+)", requirement)
    return pinned is None or pinned.group(1) == version


# --- 2. MLflow --------------------------------------------------------------------------


def uses_mlflow() -> bool:
    return os.environ.get("LEROBOT_TRACKING") == "mlflow"


def workspace_tracking_uri() -> str:
    """The Azure ML workspace's MLflow URI, read from Azure Resource Manager with the job's identity."""
    from azure.identity import DefaultAzureCredential

    subscription, group = os.environ["AZURE_SUBSCRIPTION_ID"], os.environ["AZURE_RESOURCE_GROUP"]
    workspace = os.environ["AZUREML_WORKSPACE_NAME"]
    token = DefaultAzureCredential().get_token(f"{ARM}/.default").token
    url = (
        f"{ARM}/subscriptions/{subscription}/resourceGroups/{group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace}?api-version={WORKSPACE_API}"
    )
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        uri = json.load(response)["properties"]["mlFlowTrackingUri"]
    return str(uri)


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri and os.environ.get("LEROBOT_MLFLOW_FROM_WORKSPACE") == "true":
        try:
            uri = workspace_tracking_uri()
        except Exception as error:
            raise JobError(
                f"cannot find the MLflow of Azure ML workspace {os.environ.get('AZUREML_WORKSPACE_NAME')}: "
                f"{error}"
            ) from None
        os.environ["MLFLOW_TRACKING_URI"] = uri
        log(f"tracking to the MLflow of workspace {os.environ['AZUREML_WORKSPACE_NAME']}")
    return uri


# --- 3. the dataset ---------------------------------------------------------------------


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
        raise JobError(f"no blobs under {container}/{prefix} in account {account}")
    log(f"downloaded {count} files from {container}/{prefix} to {root}")


def dataset_args(job: JobPython) -> list[str]:
    """Fetch the dataset when it is not on the Hub; the extra lerobot-train arguments that needs."""
    source = os.environ.get("LEROBOT_DATASET_SOURCE", "hub")
    if source == "blob":
        run([job.python, __file__, "--fetch-blob-dataset", os.environ["LEROBOT_DATASET_ROOT"]])
    elif source == "staged":
        variable = os.environ.get("LEROBOT_DATASET_VARIABLE", "ROBOTRAIN_INPUT_DATASET")
        mounted = os.environ.get(variable, "")
        if not mounted:
            raise JobError(f"the platform did not set {variable} (the folder of the staged dataset)")
        return [f"--dataset.root={mounted}"]
    return []


# --- 4. video decoding ------------------------------------------------------------------


def video_args(job: JobPython, args: Sequence[str]) -> list[str]:
    """Keep torchcodec when it loads; else PyAV's bundled FFmpeg; one line either way."""
    if any(a.startswith("--dataset.video_backend=") for a in args):
        return []
    result = subprocess.run([job.python, "-c", VIDEO_CHECK], capture_output=True, text=True, check=False)
    backend, _, reason = result.stdout.strip().partition(" ")
    if backend == "torchcodec":
        log("video decoding: torchcodec (FFmpeg found)")
        return []
    if backend == "pyav":
        log(f"video decoding: torchcodec cannot load FFmpeg ({reason}); using PyAV's bundled FFmpeg "
            f"(--dataset.video_backend=pyav)")  # fmt: skip
        return ["--dataset.video_backend=pyav"]
    detail = reason or result.stderr.strip()[-300:]
    log(f"video decoding unavailable: {detail}; video datasets fail at the first batch: install FFmpeg's "
        f"libraries in the image or the av package (image-only datasets still train)")  # fmt: skip
    return []


# --- 5. training ------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """This machine's part of the job: the whole job, or one node of several under ``accelerate launch``."""

    launcher: tuple[str, ...] = ()
    """What starts ``lerobot-train`` (nothing for a job of one process)."""
    rank: int = 0
    processes: int = 1

    @property
    def main(self) -> bool:
        """The node of LeRobot's main process (rank 0), the one that logs and saves checkpoints."""
        return self.rank == 0


def this_node(job: JobPython) -> Node:
    """The platform's node variables, as ``accelerate launch`` arguments when the job has several processes.

    ``--num_processes`` is accelerate's total over all machines (it gives each machine
    ``num_processes // num_machines``); ``--mixed_precision=no`` and ``--dynamo_backend=no`` are
    accelerate's defaults, given so that no accelerate config in the image changes them (LeRobot
    picks the precision from the policy's dtype itself) and accelerate does not warn about defaults.
    """
    if os.environ.get("LEROBOT_LAUNCHER") != "accelerate":
        return Node()
    values = {name: os.environ.get(name, "") for name in NODE_VARIABLES}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise JobError(
            f"the platform did not set {', '.join(missing)}, which a job of several processes needs to "
            f"start accelerate launch on each node"
        )
    numbers = {name: value for name, value in values.items() if name != "MASTER_ADDR"}
    if not all(value.isdigit() for value in numbers.values()):
        shown = ", ".join(f"{name}={value}" for name, value in numbers.items())
        raise JobError(f"the platform's node variables are not whole numbers: {shown}")
    nodes, rank, per_node = (int(numbers[name]) for name in ("NNODES", "NODE_RANK", "NPROC_PER_NODE"))
    launcher = (
        job.executable("accelerate"), "launch", "--multi_gpu", f"--num_machines={nodes}",
        f"--machine_rank={rank}", f"--num_processes={nodes * per_node}",
        f"--main_process_ip={values['MASTER_ADDR']}", f"--main_process_port={values['MASTER_PORT']}",
        "--mixed_precision=no", "--dynamo_backend=no",
    )  # fmt: skip
    return Node(launcher, rank, nodes * per_node)


def output_dir(args: Sequence[str]) -> Path:
    for arg in args:
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1])
    raise JobError("no --output_dir= among the lerobot-train arguments")


def log_freq(args: Sequence[str]) -> int:
    for arg in args:
        if arg.startswith("--log_freq="):
            return int(arg.split("=", 1)[1])
    return 1


def newest_checkpoint(output: Path) -> Path | None:
    """``checkpoints/last/pretrained_model``, else the highest-numbered checkpoint's."""
    checkpoints = output / "checkpoints"
    last = checkpoints / "last" / "pretrained_model"
    if last.is_dir():
        return last
    numbered = [p for p in checkpoints.glob("*/pretrained_model") if re.fullmatch(r"\d+", p.parent.name)]
    return max(numbered, key=lambda p: int(p.parent.name), default=None)


def big_number(text: str) -> int | None:
    """LeRobot's ``format_big_number`` read back exactly, or None when it was rounded (``1K``)."""
    return int(text) if text.isdigit() else None


class MetricReader:
    """Turns lerobot-train's log lines into MLflow metrics, numbered by training step."""

    def __init__(self, frequency: int) -> None:
        self.frequency = frequency
        self.step = 0

    def read(self, line: str) -> tuple[dict[str, float], int] | None:
        validation = VALIDATION_LINE.search(line)
        if validation:
            return {"val_loss": float(validation.group(2))}, int(validation.group(1))
        fields = dict(re.findall(r"(?<!\S)([a-z_]+):(\S+)", line))
        if "loss" not in fields or "step" not in fields:
            return None
        exact = big_number(fields["step"])
        self.step = exact if exact is not None else self.step + self.frequency
        metrics = {}
        for field, name in METRIC_NAMES.items():
            try:
                metrics[name] = float(fields[field])
            except (KeyError, ValueError):
                continue
        return metrics, self.step


class Training:
    """``lerobot-train`` as a child process; SIGTERM is passed on and remembered."""

    def __init__(self, command: Sequence[str]) -> None:
        self.command = list(command)
        self.terminated = False
        self.child: subprocess.Popen[str] | None = None

    def on_terminate(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True
        log("SIGTERM: stopping training; the newest checkpoint is kept")
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signal.SIGTERM)

    def lines(self) -> Iterator[str]:
        log(" ".join(self.command))
        self.child = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            errors="replace",
        )  # fmt: skip
        assert self.child.stdout is not None
        for line in self.child.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            yield line

    def wait(self) -> int:
        assert self.child is not None
        return self.child.wait()


def train(training: Training, mlflow: Any, frequency: int) -> int:
    reader = MetricReader(frequency)
    for line in training.lines():
        found = reader.read(line)
        if found and mlflow is not None:
            try:
                mlflow.log_metrics(found[0], step=found[1])
            except Exception as error:
                log(f"could not log metrics to MLflow: {error}")
    return training.wait()


# --- 6. checkpoints ---------------------------------------------------------------------


def copy_to_output(checkpoint: Path) -> None:
    destination = os.environ.get("TRAINING_CHECKPOINT_OUTPUT")
    if destination:
        shutil.copytree(checkpoint, Path(destination) / "pretrained_model", dirs_exist_ok=True)
        log(f"copied {checkpoint} to {destination}")


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


def keep_checkpoint(args: Sequence[str], mlflow: Any, code: int, terminated: bool) -> int:
    """Copy the newest checkpoint out, then register it; the job's exit code after that."""
    checkpoint = newest_checkpoint(output_dir(args))
    if checkpoint is None:
        if code == 0 and not terminated:
            log("lerobot-train finished but wrote no checkpoint")
            return 1
        return code
    copy_to_output(checkpoint)
    name = os.environ.get("REGISTER_CHECKPOINT", "")
    if not name or (code != 0 and not terminated):
        return code
    if mlflow is None:
        log(f"no MLflow run: {name} is not registered; the checkpoint stays in the output folder")
        return code
    try:
        register(mlflow, checkpoint, name)
    except Exception as error:
        log(f"registering {name} failed: {error}; the checkpoint is kept in the output folder")
        return code or 1
    return code


def start_run(node: Node) -> Any:
    import mlflow

    if not os.environ.get("MLFLOW_RUN_ID"):  # Azure ML starts the job's run itself and names it here
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "lerobot-training"))
    mlflow.start_run()
    if node.processes > 1:
        mlflow.log_param("num_processes", node.processes)
    return mlflow


def start_tracking(node: Node) -> Any:
    """The MLflow module with the job's run started, on the main node when the job tracks to MLflow."""
    if not uses_mlflow() or not node.main:
        return None
    if not tracking_uri():
        log("MLFLOW_TRACKING_URI is not set: no MLflow run, nothing is registered")
        return None
    return start_run(node)


def main(argv: Sequence[str]) -> int:
    job = JobPython()
    try:
        job.prepare(
            os.environ.get("LEROBOT_INSTALL", "").split(), os.environ.get("LEROBOT_CONSTRAINTS", "").split()
        )
        node = this_node(job)
        args = [*argv, *dataset_args(job)]
        args += video_args(job, args)
        if not node.main:
            log(f"node {node.rank} only trains: node 0, where LeRobot's main process logs and saves "
                f"checkpoints, tracks to MLflow and keeps the checkpoint")  # fmt: skip
        mlflow = start_tracking(node)
    except JobError as error:
        print(f"robotrain-lerobot: {error}", file=sys.stderr, flush=True)
        return 1
    training = Training([*node.launcher, job.executable("lerobot-train"), *args])
    signal.signal(signal.SIGTERM, training.on_terminate)
    trained = code = 1
    try:
        if mlflow is not None:
            mlflow.log_params({"lerobot_version": os.environ.get("LEROBOT_VERSION", ""),
                               "command": " ".join(args)[:6000]})  # fmt: skip
        trained = train(training, mlflow, log_freq(args))
        code = keep_checkpoint(args, mlflow, trained, training.terminated) if node.main else trained
    except (OSError, JobError) as error:
        print(f"robotrain-lerobot: {error}", file=sys.stderr, flush=True)
    finally:
        if mlflow is not None:
            status = "KILLED" if training.terminated else "FINISHED" if trained == 0 else "FAILED"
            mlflow.end_run(status=status)
    if training.terminated:
        return 128 + signal.SIGTERM
    return code


def fetch_blob_main(root: str) -> int:
    """``lerobot_job.py --fetch-blob-dataset ROOT``: run by the job's Python, which has the Azure packages."""
    try:
        fetch_blob_dataset(Path(root))
    except JobError as error:
        print(f"robotrain-lerobot: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fetch-blob-dataset"]:
        sys.exit(fetch_blob_main(sys.argv[2]))
    sys.exit(main(sys.argv[1:]))

"""The shipped entry point, run for real with a stand-in `lerobot-train` executable on PATH.

The stand-in prints LeRobot's own log lines (``MetricsTracker.__str__``: ``step:5 ... loss:0.512
grdn:8.100 lr:1.0e-05``; 0.6's ``step 10: eval_loss=0.4000``) and writes checkpoints where
LeRobot does. MLflow is real (SQLite).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from robotrain_lerobot.job import ENTRY_FOLDER

LEROBOT_TRAIN = """#!/usr/bin/env bash
# Stand-in for LeRobot's lerobot-train: record the arguments, log and checkpoint like LeRobot does.
printf '%s\\n' "$@" > "$RECORD"
for arg in "$@"; do case "$arg" in --output_dir=*) out="${arg#--output_dir=}";; esac; done
checkpoint() {
  mkdir -p "$out/checkpoints/$1/pretrained_model"
  echo "{\\"type\\": \\"act\\", \\"step\\": \\"$1\\"}" > "$out/checkpoints/$1/pretrained_model/config.json"
  ln -sfn "$1" "$out/checkpoints/last"
}
echo "INFO 2026-01-01 00:00:01 ot_train.py:232 step:5 smpl:40 ep:1 epch:0.50" \\
  "loss:0.512 grdn:8.100 lr:1.0e-05 updt_s:0.100 data_s:0.010" >&2
checkpoint 000005
echo "INFO 2026-01-01 00:00:02 ot_train.py:673 step 10: eval_loss=0.4000"
if [ -n "${WAIT_FOR_SIGTERM:-}" ]; then
  sleep 300 >/dev/null 2>&1 &
  trap 'kill $!; echo "stand-in: terminated"; exit 143' TERM
  echo "stand-in: waiting"
  wait $!
fi
[ -n "${FAIL:-}" ] && { echo "Traceback: boom" >&2; exit 3; }
echo "INFO step:10 smpl:80 ep:2 epch:1.00 loss:0.250 grdn:4.000 lr:1.0e-05 updt_s:0.100 data_s:0.010"
checkpoint 000010
"""


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its tables created once (creating them takes seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def job_env(tmp_path: Path, empty_store: Path) -> dict[str, str]:
    """A job's environment: the stand-in on PATH and LeRobot 'installed' at the pinned version."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lerobot-train").write_text(LEROBOT_TRAIN)
    (bin_dir / "lerobot-train").chmod(0o755)
    site = tmp_path / "site"
    (site / "lerobot-9.9.9.dist-info").mkdir(parents=True)
    (site / "lerobot-9.9.9.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: lerobot\nVersion: 9.9.9\n"
    )
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEROBOT_", "ROBOTRAIN_"))}
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return keep | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(site),
        "PYTHON": sys.executable,
        "RECORD": str(tmp_path / "args.txt"),
        "LEROBOT_VERSION": "9.9.9",
        "LEROBOT_INSTALL": "lerobot[pi0]==9.9.9",
        "LEROBOT_DATASET_SOURCE": "hub",
        "LEROBOT_TRACKING": "mlflow",
        "REGISTER_CHECKPOINT": "act-pusht",
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": "lerobot-test",
        "TRAINING_CHECKPOINT_OUTPUT": str(tmp_path / "outputs"),
    }


def run_job(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(ENTRY_FOLDER / "train_lerobot.sh"), *args],
        cwd=workspace(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir(exist_ok=True)
    return folder


def mlflow_client(env: dict[str, str]) -> object:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_REGISTRY_URI"])


def only_run(env: dict[str, str]) -> object:
    client = mlflow_client(env)
    experiment = client.get_experiment_by_name("lerobot-test")  # type: ignore[attr-defined]
    [run] = client.search_runs([experiment.experiment_id])  # type: ignore[attr-defined]
    return run


ARGS = ("--dataset.repo_id=lerobot/pusht", "--policy.type=act", "--output_dir=outputs/train", "--log_freq=5")


def test_trains_logs_metrics_and_registers_the_newest_checkpoint(
    tmp_path: Path, job_env: dict[str, str]
) -> None:
    result = run_job(tmp_path, job_env, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installing" not in result.stdout, "the pinned LeRobot is there: nothing is installed"
    assert (tmp_path / "args.txt").read_text().split()[: len(ARGS)] == list(ARGS)
    client = mlflow_client(job_env)
    [version] = client.search_model_versions("name='act-pusht'")  # type: ignore[attr-defined]
    files = client.list_artifacts(version.run_id, "checkpoint")  # type: ignore[attr-defined]
    assert [Path(f.path).name for f in files] == ["config.json"]
    copied = tmp_path / "outputs" / "pretrained_model" / "config.json"
    assert '"step": "000010"' in copied.read_text()
    run = only_run(job_env)
    assert run.info.status == "FINISHED"  # type: ignore[attr-defined]
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}  # type: ignore[attr-defined]
    assert history == {5: pytest.approx(0.512), 10: pytest.approx(0.25)}
    assert run.data.metrics["grad_norm"] == pytest.approx(4.0)  # type: ignore[attr-defined]
    assert run.data.metrics["learning_rate"] == pytest.approx(1e-5)  # type: ignore[attr-defined]
    assert run.data.metrics["val_loss"] == pytest.approx(0.4)  # type: ignore[attr-defined]


def test_failed_training_ends_the_run_failed_and_registers_nothing(
    tmp_path: Path, job_env: dict[str, str]
) -> None:
    result = run_job(tmp_path, job_env | {"FAIL": "1"}, *ARGS)
    assert result.returncode == 3
    assert mlflow_client(job_env).search_model_versions("name='act-pusht'") == []  # type: ignore[attr-defined]
    assert only_run(job_env).info.status == "FAILED"  # type: ignore[attr-defined]
    kept = tmp_path / "outputs" / "pretrained_model" / "config.json"
    assert '"step": "000005"' in kept.read_text(), "the newest checkpoint is kept even after a failure"


def test_a_registration_error_still_copies_the_checkpoint(tmp_path: Path, job_env: dict[str, str]) -> None:
    """The experiment's artifact store cannot be written (its folder's parent is a file)."""
    import mlflow

    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    mlflow.set_tracking_uri(job_env["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment("lerobot-test", artifact_location=str(blocker / "artifacts"))
    result = run_job(tmp_path, job_env, *ARGS)
    assert result.returncode == 1
    assert "registering act-pusht failed" in result.stdout
    assert '"step": "000010"' in (tmp_path / "outputs" / "pretrained_model" / "config.json").read_text()
    assert only_run(job_env).info.status == "FINISHED", "training itself succeeded"


def test_sigterm_keeps_and_registers_the_newest_checkpoint(tmp_path: Path, job_env: dict[str, str]) -> None:
    process = subprocess.Popen(
        ["bash", str(ENTRY_FOLDER / "train_lerobot.sh"), *ARGS], cwd=workspace(tmp_path),
        env=job_env | {"WAIT_FOR_SIGTERM": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        output.append(line)
        if "stand-in: waiting" in line:
            process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM, "".join(output)
    assert "stand-in: terminated" in "".join(output)
    assert '"step": "000005"' in (tmp_path / "outputs" / "pretrained_model" / "config.json").read_text()
    [version] = mlflow_client(job_env).search_model_versions("name='act-pusht'")  # type: ignore[attr-defined]
    assert version.run_id == only_run(job_env).info.run_id  # type: ignore[attr-defined]
    assert only_run(job_env).info.status == "KILLED"  # type: ignore[attr-defined]


def test_staged_dataset_from_the_platform_variable(tmp_path: Path, job_env: dict[str, str]) -> None:
    env = job_env | {
        "LEROBOT_TRACKING": "none",
        "LEROBOT_DATASET_SOURCE": "staged",
        "LEROBOT_DATASET_VARIABLE": "ROBOTRAIN_INPUT_DATASET",
        "ROBOTRAIN_INPUT_DATASET": "/mnt/inputs/dataset",
    }
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--dataset.root=/mnt/inputs/dataset" in (tmp_path / "args.txt").read_text().split()
    assert "no MLflow run: act-pusht is not registered" in result.stdout


def test_staged_dataset_without_a_mount(tmp_path: Path, job_env: dict[str, str]) -> None:
    env = job_env | {
        "LEROBOT_DATASET_SOURCE": "staged",
        "LEROBOT_DATASET_VARIABLE": "ROBOTRAIN_INPUT_DATASET",
    }
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "robotrain-lerobot: the platform did not set ROBOTRAIN_INPUT_DATASET "
        "(the folder of the staged dataset)"
    ]
    assert not (tmp_path / "args.txt").exists()


def _image_package(site: Path, name: str, code: str) -> None:
    (site / name).mkdir(parents=True, exist_ok=True)
    (site / name / "__init__.py").write_text(code)


def test_video_falls_back_to_pyav_when_torchcodec_cannot_load(
    tmp_path: Path, job_env: dict[str, str]
) -> None:
    """As in the default image: torchcodec is there, FFmpeg's libraries are not; PyAV bundles its own."""
    site = tmp_path / "site"
    _image_package(site, "torchcodec", "")
    (site / "torchcodec" / "decoders.py").write_text(
        "raise RuntimeError('Could not load libtorchcodec. "
        "libavutil.so.58: cannot open shared object file')\n"
    )
    _image_package(site, "av", "")
    result = run_job(tmp_path, job_env | {"LEROBOT_TRACKING": "none"}, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--dataset.video_backend=pyav" in (tmp_path / "args.txt").read_text().split()
    [line] = [line for line in result.stdout.splitlines() if "video decoding" in line]
    assert "libavutil.so.58" in line and "PyAV" in line


def test_video_keeps_torchcodec_when_it_loads(tmp_path: Path, job_env: dict[str, str]) -> None:
    site = tmp_path / "site"
    _image_package(site, "torchcodec", "")
    (site / "torchcodec" / "decoders.py").write_text("")
    result = run_job(tmp_path, job_env | {"LEROBOT_TRACKING": "none"}, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any("video_backend" in a for a in (tmp_path / "args.txt").read_text().split())
    assert "video decoding: torchcodec (FFmpeg found)" in result.stdout


def test_video_without_any_decoder_says_so_in_one_line(tmp_path: Path, job_env: dict[str, str]) -> None:
    result = run_job(tmp_path, job_env | {"LEROBOT_TRACKING": "none"}, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "video decoding" in line]
    assert "video decoding unavailable" in line and "install FFmpeg" in line


def _local_venv(tmp_path: Path, install: str) -> Path:
    """LeRobot's environment as an earlier local job left it: a venv, the stand-in, the install marker."""
    venv = tmp_path / "state" / "lerobot-envs" / "9.9.9-py3.11"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "lerobot-train").write_text(LEROBOT_TRAIN)
    (venv / "bin" / "lerobot-train").chmod(0o755)
    (venv / "robotrain-installed.txt").write_text(f"{install}\n--\n")
    return venv


def test_local_runs_lerobot_from_its_own_environment(tmp_path: Path, job_env: dict[str, str]) -> None:
    venv = _local_venv(tmp_path, "lerobot==9.9.9")
    env = job_env | {"LEROBOT_VENV": str(venv), "LEROBOT_VENV_PYTHON": sys.executable,
                     "LEROBOT_INSTALL": "lerobot==9.9.9", "PATH": os.environ["PATH"]}  # fmt: skip
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"using LeRobot's environment {venv}" in result.stdout
    assert f"robotrain-lerobot: {venv}/bin/lerobot-train --dataset.repo_id=lerobot/pusht" in result.stdout
    assert mlflow_client(job_env).search_model_versions("name='act-pusht'")  # type: ignore[attr-defined]


def test_local_installs_a_changed_set_into_its_environment_only(
    tmp_path: Path, job_env: dict[str, str]
) -> None:
    """A new set goes to LeRobot's environment with uv (offline here, so it fails: one line, nothing ran)."""
    venv = _local_venv(tmp_path, "lerobot==9.9.8")
    env = job_env | {"LEROBOT_VENV": str(venv), "LEROBOT_VENV_PYTHON": sys.executable, "UV_OFFLINE": "1",
                     "LEROBOT_INSTALL": "lerobot==9.9.9", "PATH": os.environ["PATH"]}  # fmt: skip
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 1
    assert f"installing lerobot==9.9.9 into {venv}" in result.stdout
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("robotrain-lerobot: uv failed: pip install --python")
    )
    assert not (tmp_path / "args.txt").exists()
    assert (venv / "robotrain-installed.txt").read_text().startswith("lerobot==9.9.8")

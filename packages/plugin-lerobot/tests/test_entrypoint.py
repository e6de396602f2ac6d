"""The shipped entry point, run for real with stand-in `lerobot-train` and `accelerate` executables on PATH.

The `lerobot-train` stand-in prints LeRobot's own log lines (``MetricsTracker.__str__``: ``step:5 ...
loss:0.512 grdn:8.100 lr:1.0e-05``; 0.6's ``step 10: eval_loss=0.4000``) and writes checkpoints where
LeRobot does, from the main process only as LeRobot 0.6 does under accelerate. MLflow is real (SQLite).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robotrain_lerobot.job import ENTRY_FOLDER

LEROBOT_TRAIN = """#!/usr/bin/env bash
# Stand-in for LeRobot's lerobot-train: record the arguments, log and checkpoint like LeRobot does.
# Under accelerate only the main process logs and saves checkpoints (LeRobot 0.6.1 lerobot_train.py,
# is_main_process; docs/source/multi_gpu_training.mdx): another rank records its arguments, trains silently.
if [ "${RANK:-0}" != 0 ]; then printf '%s\\n' "$@" > "$RECORD.rank$RANK"; exit 0; fi
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

ACCELERATE = textwrap.dedent(f"""\
    #!{sys.executable}
    \"\"\"Stand-in for `accelerate launch` (accelerate 1.15, accelerate/commands/launch.py): the flags of its
    parser used here, its checks, then this machine's processes as torch.distributed.run starts them.\"\"\"
    import argparse, json, os, subprocess, sys

    with open(os.environ["ACCELERATE_RECORD"], "w") as record:
        json.dump(sys.argv[1:], record)
    if sys.argv[1:2] != ["launch"]:
        sys.exit(f"accelerate stand-in: only `launch` is known, not {{sys.argv[1:2]}}")
    # launch_command_parser: add_help=False, allow_abbrev=False; the script and its arguments (REMAINDER) last
    parser = argparse.ArgumentParser("accelerate launch", allow_abbrev=False)
    parser.add_argument("--cpu", action="store_true")
    parser.add_argument("--multi_gpu", action="store_true")
    parser.add_argument("--mixed_precision", choices=["no", "fp16", "bf16", "fp8"])
    parser.add_argument("--dynamo_backend")
    parser.add_argument("--num_processes", type=int)
    parser.add_argument("--num_machines", type=int)
    parser.add_argument("--machine_rank", type=int)
    parser.add_argument("--main_process_ip")
    parser.add_argument("--main_process_port", type=int)
    parser.add_argument("training_script")
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(sys.argv[2:])
    # _validate_launch_command
    if args.cpu and args.multi_gpu:
        sys.exit("You can only use one of `--cpu`, `--multi_gpu`, ... at a time.")
    if args.multi_gpu and args.num_processes is not None and args.num_processes < 2:
        sys.exit("You need to use at least 2 processes to use `--multi_gpu`.")
    # prepare_multi_gpu_env: several machines need this one's rank and the main machine's address;
    # each runs num_processes // num_machines processes; ranks are numbered machine by machine (static
    # rendezvous of torch.distributed.run)
    machines = args.num_machines or 1
    if machines > 1 and (args.machine_rank is None or args.main_process_ip is None):
        sys.exit("accelerate stand-in: several machines need --machine_rank and --main_process_ip")
    if not 0 <= (args.machine_rank or 0) < machines:
        sys.exit(f"accelerate stand-in: --machine_rank {{args.machine_rank}} outside 0..{{machines - 1}}")
    if not os.path.isfile(args.training_script):
        sys.exit(f"accelerate stand-in: no training script {{args.training_script}}")
    per_machine = args.num_processes // machines
    # The real launcher runs the script with Python (lerobot-train is a Python console script); the
    # lerobot-train stand-in is a bash script, so it runs as its own executable.
    processes = [
        subprocess.Popen([args.training_script, *args.training_script_args], env=os.environ | {{
            "RANK": str((args.machine_rank or 0) * per_machine + local), "LOCAL_RANK": str(local),
            "WORLD_SIZE": str(args.num_processes), "LOCAL_WORLD_SIZE": str(per_machine),
            "MASTER_ADDR": args.main_process_ip or "127.0.0.1", "MASTER_PORT": str(args.main_process_port),
        }})
        for local in range(per_machine)
    ]
    sys.exit(max(process.wait() for process in processes))
""")


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
    (bin_dir / "accelerate").write_text(ACCELERATE)
    (bin_dir / "accelerate").chmod(0o755)
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
        "ACCELERATE_RECORD": str(tmp_path / "accelerate.json"),
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


def node_env(job_env: dict[str, str], rank: int) -> dict[str, str]:
    """What a platform gives node ``rank`` of a 2-node x 4-GPU job that starts its processes itself."""
    return job_env | {"LEROBOT_LAUNCHER": "accelerate", "NNODES": "2", "NODE_RANK": str(rank),
                      "NPROC_PER_NODE": "4", "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": "29500"}  # fmt: skip


def accelerate_call(tmp_path: Path) -> list[str]:
    recorded: list[str] = json.loads((tmp_path / "accelerate.json").read_text())
    return recorded


def launcher_args(rank: int) -> list[str]:
    return ["launch", "--multi_gpu", "--num_machines=2", f"--machine_rank={rank}", "--num_processes=8",
            "--main_process_ip=10.0.0.4", "--main_process_port=29500", "--mixed_precision=no",
            "--dynamo_backend=no"]  # fmt: skip


def test_the_main_node_launches_its_processes_tracks_and_keeps_the_checkpoint(
    tmp_path: Path, job_env: dict[str, str]
) -> None:
    result = run_job(tmp_path, node_env(job_env, 0), *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    lerobot_train = str(tmp_path / "bin" / "lerobot-train")
    assert accelerate_call(tmp_path) == [*launcher_args(0), lerobot_train, *ARGS]
    for rank in (1, 2, 3):
        assert (tmp_path / f"args.txt.rank{rank}").read_text().split() == list(ARGS)
    run = only_run(job_env)
    assert run.info.status == "FINISHED"  # type: ignore[attr-defined]
    assert run.data.params["num_processes"] == "8"  # type: ignore[attr-defined]
    assert run.data.metrics["loss"] == pytest.approx(0.25)  # type: ignore[attr-defined]
    [version] = mlflow_client(job_env).search_model_versions("name='act-pusht'")  # type: ignore[attr-defined]
    assert version.run_id == run.info.run_id  # type: ignore[attr-defined]
    assert '"step": "000010"' in (tmp_path / "outputs" / "pretrained_model" / "config.json").read_text()


def test_another_node_only_trains(tmp_path: Path, job_env: dict[str, str]) -> None:
    """Node 1 holds ranks 4-7: no run, no copy, no registration (LeRobot saved nothing there)."""
    result = run_job(tmp_path, node_env(job_env, 1), *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert accelerate_call(tmp_path) == [*launcher_args(1), str(tmp_path / "bin" / "lerobot-train"), *ARGS]
    assert sorted(p.name for p in tmp_path.glob("args.txt*")) == [f"args.txt.rank{r}" for r in (4, 5, 6, 7)]
    assert "node 1 only trains" in result.stdout
    client = mlflow_client(job_env)
    assert client.search_experiments(filter_string="name = 'lerobot-test'") == []  # type: ignore[attr-defined]
    assert client.search_model_versions("name='act-pusht'") == []  # type: ignore[attr-defined]
    assert not (tmp_path / "outputs").exists()


def test_a_failed_launch_on_another_node_is_its_exit_code(tmp_path: Path, job_env: dict[str, str]) -> None:
    result = run_job(tmp_path, node_env(job_env, 1) | {"NPROC_PER_NODE": "0"}, *ARGS)
    assert result.returncode == 1, "accelerate's own exit code"
    assert "You need to use at least 2 processes to use `--multi_gpu`." in result.stdout
    assert "wrote no checkpoint" not in result.stdout, "another node looks for no checkpoint"
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("missing", ["NNODES", "MASTER_ADDR"])
def test_node_variables_missing_is_one_line(tmp_path: Path, job_env: dict[str, str], missing: str) -> None:
    env = node_env(job_env, 0)
    del env[missing]
    result = run_job(tmp_path, env, *ARGS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"robotrain-lerobot: the platform did not set {missing}, which a job of several processes needs "
        f"to start accelerate launch on each node"
    ]
    assert not (tmp_path / "accelerate.json").exists()
    assert mlflow_client(job_env).search_experiments(filter_string="name = 'lerobot-test'") == []  # type: ignore[attr-defined]


def test_one_process_runs_lerobot_train_itself(tmp_path: Path, job_env: dict[str, str]) -> None:
    """Node variables a platform sets anyway do not start accelerate unless the job launches its processes."""
    env = {k: v for k, v in node_env(job_env, 0).items() if k != "LEROBOT_LAUNCHER"}
    result = run_job(tmp_path, env | {"LEROBOT_TRACKING": "none"}, *ARGS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "accelerate.json").exists()
    assert (tmp_path / "args.txt").read_text().split()[: len(ARGS)] == list(ARGS)


def test_node_variables_that_are_no_numbers_are_one_line(tmp_path: Path, job_env: dict[str, str]) -> None:
    result = run_job(tmp_path, node_env(job_env, 0) | {"MASTER_PORT": "{{port}}"}, *ARGS)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "robotrain-lerobot: the platform's node variables are not whole numbers: "
        "NNODES=2, NODE_RANK=0, NPROC_PER_NODE=4, MASTER_PORT={{port}}"
    ]
    assert not (tmp_path / "accelerate.json").exists()

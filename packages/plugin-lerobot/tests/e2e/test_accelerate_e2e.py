"""Two nodes' entry points on this machine, each starting real ``accelerate launch`` with the node variables.

Opt-in with the other end-to-end tests (ROBOTRAIN_LEROBOT_E2E=1, ``nox -s lerobot-e2e``): it installs
torch 2.7.1 and accelerate 1.15.0 (LeRobot 0.6.1's range) into an environment as the local platform's
LeRobot environment. ``lerobot-train`` there is a small program that builds the ``Accelerator`` exactly
as LeRobot 0.6.1's ``lerobot_train.py`` does on a CPU device, trains a linear layer for two steps, logs
like LeRobot's main process and saves a checkpoint from rank 0 only. Everything else is real: the entry
point, accelerate's launcher, torch.distributed's rendezvous between the two nodes over loopback, gloo.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robotrain_lerobot.job import ENTRY_FOLDER

pytestmark = pytest.mark.skipif(
    os.environ.get("ROBOTRAIN_LEROBOT_E2E") != "1", reason="opt-in: nox -s lerobot-e2e"
)
INSTALL = ("torch==2.7.1", "accelerate==1.15.0")
LEROBOT_TRAIN = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    import torch
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    # lerobot_train.py (0.6.1): the Accelerator it builds; cpu=True as when the policy's device is the CPU
    accelerator = Accelerator(step_scheduler_with_optimizer=False, mixed_precision=None, cpu=True,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    output = Path(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--output_dir=")))
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    for step in (1, 2):
        loss = model(torch.full((2, 4), float(accelerator.process_index + step))).pow(2).mean()
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        mean = accelerator.reduce(loss.detach(), reduction="mean").item()
        if accelerator.is_main_process:
            print(f"INFO step:{step} smpl:{8 * step} ep:0 epch:0.10 loss:{mean:.3f} grdn:1.000 lr:1.0e-01",
                  flush=True)
    weights = accelerator.gather(accelerator.unwrap_model(model).weight.detach().flatten()[None])
    report = {"world": accelerator.num_processes, "type": str(accelerator.distributed_type),
              "main": accelerator.is_main_process, "same": bool(torch.allclose(weights, weights[0]))}
    Path(os.environ["REPORT_DIR"], f"rank{accelerator.process_index}.json").write_text(json.dumps(report))
    if accelerator.is_main_process:
        checkpoint = output / "checkpoints" / "000002" / "pretrained_model"
        checkpoint.mkdir(parents=True)
        (checkpoint / "config.json").write_text('{"type": "act"}')
        (output / "checkpoints" / "last").symlink_to("000002")
    accelerator.wait_for_everyone()
    """
)


@pytest.fixture(scope="module")
def lerobot_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeRobot's environment as the local platform keeps it: a uv venv, its install marker, lerobot-train."""
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed (as on the local platform)"
    venv = tmp_path_factory.mktemp("env") / "0.6.1"
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *INSTALL],
                   check=True)  # fmt: skip
    (venv / "bin" / "lerobot-train").write_text(f"#!{venv / 'bin' / 'python'}\n{LEROBOT_TRAIN}")
    (venv / "bin" / "lerobot-train").chmod(0o755)
    (venv / "robotrain-installed.txt").write_text("\n".join([*INSTALL, "--"]) + "\n")
    return venv


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_two_nodes_train_together_and_only_node_0_keeps(tmp_path: Path, lerobot_env: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    reports = tmp_path / "reports"
    reports.mkdir()
    port = str(free_port())
    nodes = []
    for rank in (0, 1):
        machine = tmp_path / f"node{rank}"
        (machine / "workspace").mkdir(parents=True)
        environment = {
            "PATH": os.environ["PATH"], "HOME": str(machine), "OMP_NUM_THREADS": "1",
            "PYTHON": sys.executable, "LEROBOT_VENV": str(lerobot_env), "LEROBOT_VENV_PYTHON": sys.executable,
            "LEROBOT_INSTALL": " ".join(INSTALL), "LEROBOT_CONSTRAINTS": "", "LEROBOT_VERSION": "0.6.1",
            "LEROBOT_DATASET_SOURCE": "hub", "LEROBOT_TRACKING": "mlflow", "REGISTER_CHECKPOINT": "act-e2e",
            "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "lerobot-e2e", "REPORT_DIR": str(reports),
            "TRAINING_CHECKPOINT_OUTPUT": str(machine / "outputs"), "LEROBOT_LAUNCHER": "accelerate",
            "NNODES": "2", "NODE_RANK": str(rank), "NPROC_PER_NODE": "2", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }  # fmt: skip
        command = ["bash", str(ENTRY_FOLDER / "train_lerobot.sh"), "--dataset.repo_id=local/e2e",
                   "--policy.type=act", "--output_dir=outputs/train", "--log_freq=1"]  # fmt: skip
        nodes.append(subprocess.Popen(command, cwd=machine / "workspace", env=environment, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    logs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(logs)

    found = {int(p.stem[4:]): json.loads(p.read_text()) for p in reports.glob("rank*.json")}
    assert sorted(found) == [0, 1, 2, 3], logs
    assert {r["world"] for r in found.values()} == {4}
    assert {r["type"] for r in found.values()} == {"DistributedType.MULTI_CPU"}
    assert [rank for rank, r in found.items() if r["main"]] == [0]
    assert all(r["same"] for r in found.values()), "the processes trained one model together"

    assert "node 1 only trains" in logs[1]
    assert not (tmp_path / "node1" / "outputs").exists(), "node 1 saved and copied nothing"
    kept = tmp_path / "node0" / "outputs" / "pretrained_model" / "config.json"
    assert json.loads(kept.read_text()) == {"type": "act"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("lerobot-e2e")
    assert experiment is not None
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["num_processes"] == "4"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    [version] = client.search_model_versions("name='act-e2e'")
    assert version.run_id == run.info.run_id

"""A real tiny LeRobot training on CPU on the local platform, checked from MLflow (``nox -s lerobot-e2e``).

Opt-in (it downloads LeRobot, torch and their CUDA wheels once, ~3 GB): it runs only with
ROBOTRAIN_LEROBOT_E2E=1. A two-episode dataset with one video camera and one image camera is
written with LeRobot's own writer, staged with ``invoke stage-dataset``, and trained with
``invoke train --platform local --workload lerobot --dataset-input ...`` for a few steps.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from robotrain.testing import run_cli

pytestmark = pytest.mark.skipif(
    os.environ.get("ROBOTRAIN_LEROBOT_E2E") != "1", reason="opt-in: nox -s lerobot-e2e"
)
VERSION = "0.3.3"
WRITE_DATASET = textwrap.dedent(
    """
    import sys
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    camera = {"shape": (96, 96, 3), "names": ["height", "width", "channels"]}
    features = {
        "observation.images.front": dict(camera, dtype="video"),
        "observation.images.wrist": dict(camera, dtype="image"),
        "observation.state": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["x", "y"]},
    }
    dataset = LeRobotDataset.create("local/e2e", fps=10, features=features, root=sys.argv[1], use_videos=True)
    rng = np.random.default_rng(0)
    for episode in range(2):
        for frame in range(30):
            dataset.add_frame({
                "observation.images.front": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
                "observation.images.wrist": rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
                "observation.state": rng.random(2, dtype=np.float32),
                "action": rng.random(2, dtype=np.float32),
            }, task="reach")
        dataset.save_episode()
    print("episodes", dataset.meta.total_episodes)
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the dataset staged as ``e2e`` on the local platform."""
    folder = tmp_path_factory.mktemp("project")
    writer = folder / "writer-env"
    subprocess.run(["uv", "venv", "--quiet", "--python", "3.11", str(writer)], check=True)
    subprocess.run(["uv", "pip", "install", "--quiet", "--python", str(writer / "bin" / "python"),
                    f"lerobot=={VERSION}", "-c", str(constraints(folder))], check=True)  # fmt: skip
    dataset = folder / "dataset"
    written = subprocess.run([str(writer / "bin" / "python"), "-c", WRITE_DATASET, str(dataset)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert written.returncode == 0, written.stderr[-3000:]
    info = json.loads((dataset / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_videos"] == 2
    staged = run_cli(["stage-dataset", str(dataset), "--name", "e2e"], cwd=folder)
    assert staged.returncode == 0, staged.stderr
    return folder


def constraints(folder: Path) -> Path:
    from robotrain_lerobot.versions import SUPPORTED

    path = folder / "constraints.txt"
    path.write_text("\n".join(SUPPORTED[VERSION].image_torch) + "\n")
    return path


def train(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["train", "--platform", "local", "--workload", "lerobot", "--lerobot-version", VERSION,
         "--dataset-repo-id", "local/e2e", "--dataset-input", "e2e", "--policy-type", "diffusion",
         "--training-steps", "4", "--batch-size", "2", "--save-freq", "2", "--log-freq", "1",
         "--num-workers", "0", "--register-checkpoint", "e2e-diffusion", *extra],
        cwd=project, env={"HF_HUB_OFFLINE": "1"}, timeout=3600,
    )  # fmt: skip


def runs(project: Path) -> list[Any]:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("lerobot-training")
    return list(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]))


def test_tiny_training_is_tracked_and_registered(project: Path) -> None:
    result = train(project, "--output-dir", "outputs/ok")
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "--dataset.video_backend=pyav" in result.stdout or "torchcodec (FFmpeg found)" in result.stdout
    run = runs(project)[-1]
    assert run.info.status == "FINISHED"
    assert "loss" in run.data.metrics
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    [version] = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions("name='e2e-diffusion'")
    assert version.run_id == run.info.run_id


def test_forced_failure_ends_the_run_failed(project: Path) -> None:
    result = train(project, "--output-dir", "outputs/fail", "--policy-repo-id", "nobody/missing-policy")
    assert result.returncode != 0
    assert runs(project)[-1].info.status == "FAILED"

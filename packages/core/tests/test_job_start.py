"""An Isaac Lab job starts: its own command reaches the training entry point with the right arguments.

On the Isaac Lab image (simulated by ``robotrain.container.ContainerRoot``: no ``python`` on PATH, a
recording ``isaaclab.sh``) through the workload's ``PYTHON``, and on this machine through the local
platform's interpreter.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain import container
from robotrain.container import ContainerRoot
from robotrain.testing import make_isaaclab_project, run_cli

needs_container = pytest.mark.skipif(
    not container.available(), reason="a simulated container root needs Linux, root, unshare and chroot"
)
LAUNCH_PY = '''"""Stand-in training entry point: records how it was started, then ends."""
import json
import os
import sys

with open(os.environ["LAUNCH_RECORD"], "w", encoding="utf-8") as record:
    json.dump({"argv": sys.argv[1:], "executable": sys.executable, "cwd": os.getcwd()}, record)
'''
ARGS = ["--task", "Isaac-Cartpole-v0", "--num-envs", "4", "--max-iterations", "2"]
ENTRY_ARGS = [
    "--mode", "train", "--task", "Isaac-Cartpole-v0", "--num_envs", "4", "--max_iterations", "2",
    "--checkpoint-uri", "", "--checkpoint-mode", "from-scratch",
    "--register-checkpoint", "isaac-cartpole-v0", "--headless",
]  # fmt: skip
"""What train.sh passes on to ``training.scripts.launch`` for ``ARGS`` (empty values stay empty)."""


@pytest.fixture
def isaaclab_project(tmp_path: Path) -> Path:
    project = make_isaaclab_project(tmp_path / "project")
    (project / "src" / "training" / "scripts" / "launch.py").write_text(LAUNCH_PY)
    return project


def dry_run_job(project: Path, *args: str) -> dict[str, Any]:
    result = run_cli(["train", "--dry-run", "-o", "json", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    job: dict[str, Any] = json.loads(result.stdout)["job"]
    return job


@needs_container
def test_the_image_has_no_python_on_path(tmp_path: Path) -> None:
    root = ContainerRoot(tmp_path / "root")
    result = root.run(["bash", "-c", "command -v python || command -v python3 || echo none"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"


@needs_container
def test_the_launcher_stand_in_records_each_call(tmp_path: Path) -> None:
    root = ContainerRoot(tmp_path / "root")
    script = (
        "/workspace/isaaclab/isaaclab.sh -p -m a.b --x 'two words' '' && /workspace/isaaclab/isaaclab.sh -s"
    )
    result = root.run(["bash", "-c", script], cwd="/workspace")
    assert result.returncode == 0, result.stderr
    assert root.isaaclab_calls() == [["-p", "-m", "a.b", "--x", "two words", ""], ["-s"]]


@needs_container
def test_commands_run_with_exactly_the_given_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOST_ONLY_MARKER", "1")
    root = ContainerRoot(tmp_path / "root")
    result = root.run(["env"], env={"GIVEN": "yes"})
    variables = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert variables["GIVEN"] == "yes"
    assert variables["PATH"] == container.IMAGE_PATH
    assert "HOST_ONLY_MARKER" not in variables


def run_job_in_image(root: ContainerRoot, project: Path, job: dict[str, Any]) -> Any:
    """Unpack the job's payload in the image and run its command there with its environment."""
    archive = project / ".robotrain" / "payloads" / f"{job['payload']['sha256']}.tar.gz"
    root.write("/tmp/payload.tar.gz", archive.read_bytes())
    unpack_and_run = (
        'mkdir -p /workspace/payload && tar -xzf /tmp/payload.tar.gz -C "$0" && cd "$0" && exec "$@"'
    )
    return root.run(
        ["bash", "-c", unpack_and_run, "/workspace/payload", *job["command"]], env=job["environment"]
    )


@needs_container
def test_the_isaaclab_job_reaches_the_entry_point_on_the_image(
    tmp_path: Path, isaaclab_project: Path
) -> None:
    job = dry_run_job(isaaclab_project, *ARGS)
    root = ContainerRoot(tmp_path / "root")
    result = run_job_in_image(root, isaaclab_project, job)
    assert result.returncode == 0, result.stderr
    assert root.isaaclab_calls() == [["-p", "-m", "training.scripts.launch", *ENTRY_ARGS]]


@needs_container
def test_without_the_workloads_python_the_job_would_not_start(tmp_path: Path, isaaclab_project: Path) -> None:
    job = dry_run_job(isaaclab_project, *ARGS)
    job["environment"] = {k: v for k, v in job["environment"].items() if k != "PYTHON"}
    root = ContainerRoot(tmp_path / "root")
    result = run_job_in_image(root, isaaclab_project, job)
    assert result.returncode == 127
    assert "python: not found" in result.stderr
    assert root.isaaclab_calls() == []


@needs_container
def test_python_option_is_what_the_image_runs(tmp_path: Path, isaaclab_project: Path) -> None:
    job = dry_run_job(isaaclab_project, *ARGS, "--python", "/workspace/isaaclab/isaaclab.sh --python")
    root = ContainerRoot(tmp_path / "root")
    result = run_job_in_image(root, isaaclab_project, job)
    assert result.returncode == 0, result.stderr
    assert root.isaaclab_calls() == [["--python", "-m", "training.scripts.launch", *ENTRY_ARGS]]


def test_the_local_job_reaches_the_entry_point_under_the_jobs_interpreter(
    tmp_path: Path, isaaclab_project: Path, seed_store: Callable[[Path], Path]
) -> None:
    record = tmp_path / "launch.json"
    args = ["train", "--platform", "local", *ARGS, "--env", f"LAUNCH_RECORD={record}"]
    result = run_cli(args, cwd=seed_store(isaaclab_project), timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    started = json.loads(record.read_text())
    assert started["argv"] == ENTRY_ARGS
    assert os.path.realpath(started["executable"]) == os.path.realpath(sys.executable)
    (workspace,) = (isaaclab_project / ".robotrain" / "jobs").glob("*/workspace")
    assert Path(started["cwd"]).resolve() == workspace.resolve()

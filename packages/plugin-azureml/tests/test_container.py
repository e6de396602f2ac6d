"""The rendered command job starts on the image: run as Azure ML would run it, in a simulated container root.

Azure ML runs the job's command with ``bash`` in the code snapshot's folder, after replacing each
``${{inputs.x}}`` with the input's value (literal) or mount path (uri_folder) and each
``${{outputs.x}}`` with the output's path; ``environment_variables`` are set as given.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_azure import Cli

from conftest import settings_for, substitute
from robotrain.container import ContainerRoot, available
from robotrain.errors import UserError
from robotrain.job import SecretRef, input_variable
from robotrain.plugins import load_plugins
from robotrain.testing import assert_one_line_error, make_isaaclab_project, run_cli
from robotrain_azureml import service

pytestmark = pytest.mark.skipif(not available(), reason="needs Linux, root, unshare and chroot")
WORKDIR = "/mnt/azureml/cr/j/exe/wd"
CHECKPOINTS = "/mnt/azureml/cr/j/outputs/checkpoints"


def run_in_image(root: ContainerRoot, document: dict[str, Any], paths: dict[str, str]) -> Any:
    """Unpack the code snapshot into the root and run the command as Azure ML would."""
    shutil.copytree(document["code"], root.path(WORKDIR))
    values = {f"inputs.{k}": str(v) for k, v in document["inputs"].items() if not isinstance(v, dict)}
    values |= {"outputs.checkpoints": CHECKPOINTS, **paths}
    root.path(CHECKPOINTS).mkdir(parents=True)
    command = substitute(document["command"], values)
    return root.run(["bash", "-c", command], env=document["environment_variables"], cwd=WORKDIR)


def test_isaaclab_job_reaches_the_entry_point_with_its_arguments(cli: Cli, tmp_path: Path) -> None:
    project = make_isaaclab_project(tmp_path / "project")
    args = ("train", "--platform", "azureml", "--compute", "c1", "--max-iterations", "5", "--dry-run")
    result = run_cli(args, cwd=project, env=cli.env())
    assert result.returncode == 0, result.stderr
    root = ContainerRoot(tmp_path / "root")
    ran = run_in_image(root, yaml.safe_load(result.stdout), {})
    assert ran.returncode == 0, ran.stderr
    assert root.isaaclab_calls() == [[
        "-p", "-m", "training.scripts.launch", "--mode", "train",
        "--task", "Isaac-Velocity-Rough-Anymal-C-v0", "--num_envs", "2048", "--max_iterations", "5",
        "--checkpoint-uri", "", "--checkpoint-mode", "from-scratch",
        "--register-checkpoint", "isaac-velocity-rough-anymal-c-v0", "--headless",
    ]]  # fmt: skip


RECORDING_TRAIN_SH = """#!/usr/bin/env bash
set -euo pipefail
printf '%s\\n' "$ROBOTRAIN_INPUT_DATASET" > "$TRAINING_CHECKPOINT_OUTPUT/input_path"
cp "$ROBOTRAIN_INPUT_DATASET/episode_0.parquet" "$TRAINING_CHECKPOINT_OUTPUT/"
"""


def test_data_input_and_checkpoint_output_reach_the_job(in_process: Cli, tmp_path: Path) -> None:
    project = make_isaaclab_project(in_process.project)
    (project / "src" / "training" / "scripts" / "train.sh").write_text(RECORDING_TRAIN_SH)
    settings = settings_for(project, compute="c1")
    job = load_plugins().hook.robotrain_build_job(workload="isaaclab", settings=settings)
    document = yaml.safe_load(service.render(job.evolve(inputs={"dataset": "demos:2"}), settings))
    expected = {"type": "uri_folder", "path": "azureml:demos:2", "mode": "ro_mount"}
    assert document["inputs"]["dataset"] == expected
    assert input_variable("dataset") not in document["environment_variables"]  # never substituted there
    mount = "/mnt/azureml/cr/j/inputs/dataset"
    root = ContainerRoot(tmp_path / "root")
    root.write(f"{mount}/episode_0.parquet", b"frames")
    ran = run_in_image(root, document, {"inputs.dataset": mount})
    assert ran.returncode == 0, ran.stderr
    assert root.path(f"{CHECKPOINTS}/input_path").read_text() == mount + "\n"
    assert root.path(f"{CHECKPOINTS}/episode_0.parquet").read_bytes() == b"frames"


def test_staged_dataset_becomes_a_read_only_job_input(in_process: Cli) -> None:
    data = in_process.project / "demos"
    data.mkdir()
    (data / "episode_0.parquet").write_bytes(b"frames")
    staged = in_process.run("stage-dataset", "demos", "--platform", "azureml", "--name", "demos")
    assert staged.returncode == 0, staged.stderr
    settings = settings_for(in_process.project, compute="c1")
    job = load_plugins().hook.robotrain_build_job(workload="isaaclab", settings=settings)
    assert service.submit(job.evolve(inputs={"dataset": "demos"}), settings) is not None
    (put,) = in_process.fake.find("PUT", r"/jobs/[^/]+$")
    dataset = put.body["properties"]["inputs"]["dataset"]
    assert dataset["mode"] == "ReadOnlyMount" and dataset["jobInputType"] == "uri_folder"
    assert dataset["uri"].endswith("/data/demos/versions/1")
    assert "ROBOTRAIN_INPUT_DATASET=${{inputs.dataset}}" in put.body["properties"]["command"]


def test_timeout_and_env_reach_the_job_and_passthrough_arguments_are_refused(cli: Cli) -> None:
    dry_run = ("train", "--platform", "azureml", "--compute", "c1", "--dry-run")
    result = cli.run(*dry_run, "--timeout", "1h30m", "--env", "OMP_NUM_THREADS=4")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["limits"] == {"timeout": 5400}
    assert document["environment_variables"]["OMP_NUM_THREADS"] == "4"
    refused = cli.run(*dry_run, "--", "--priority", "HIGH")
    assert_one_line_error(refused, "--priority HIGH", "'azureml' has none")
    assert cli.fake.requests == []


def test_a_job_without_timeout_has_no_limit(in_process: Cli) -> None:
    settings = settings_for(in_process.project, compute="c1")
    job = load_plugins().hook.robotrain_build_job(workload="isaaclab", settings=settings)
    document = yaml.safe_load(service.render(job.evolve(timeout_seconds=None), settings))
    assert "limits" not in document


def test_an_input_naming_an_unstaged_dataset_is_refused_before_the_job(in_process: Cli) -> None:
    settings = settings_for(in_process.project, compute="c1")
    job = load_plugins().hook.robotrain_build_job(workload="isaaclab", settings=settings)
    with pytest.raises(UserError, match="dataset nope is not in the workspace; stage it with"):
        service.submit(job.evolve(inputs={"dataset": "nope"}), settings)
    assert in_process.fake.jobs() == {}


def test_secrets_wrapper_starts_through_the_images_interpreter(in_process: Cli, tmp_path: Path) -> None:
    project = make_isaaclab_project(in_process.project)
    settings = settings_for(project, compute="c1", key_vault="kv-robotics-dev")
    job = load_plugins().hook.robotrain_build_job(workload="isaaclab", settings=settings)
    job = job.evolve(secrets=(SecretRef("WANDB_API_KEY", "wandb", "api_key"),))
    root = ContainerRoot(tmp_path / "root")
    ran = run_in_image(root, yaml.safe_load(service.render(job, settings)), {})
    assert ran.returncode == 0, ran.stderr  # python3 is not on the image's PATH: PYTHON runs the wrapper
    ((interpreter, wrapper, *command),) = root.isaaclab_calls()
    assert (interpreter, wrapper) == ("-p", "robotrain_keyvault.py")
    assert command[:2] == ["bash", "training/scripts/train.sh"]

"""The built-in isaaclab workload keeps the scripts' contract (reference/scripts.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.testing import assert_one_line_error, run_cli
from robotrain.workloads import model_name


def dry_run_job(project: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_cli(["train", "--dry-run", "-o", "json", *args], cwd=project, env=env)
    assert result.returncode == 0, result.stderr
    job: dict[str, Any] = json.loads(result.stdout)["job"]
    return job


def flag(job: dict[str, Any], name: str) -> str:
    command: list[str] = job["command"]
    return command[command.index(name) + 1]


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ("Isaac-Velocity-Rough-Anymal-C-v0", "isaac-velocity-rough-anymal-c-v0"),
        ("My_Task  v2!!", "my-task-v2"),
        ("--Weird__--Name--", "weird-name"),
    ],
)
def test_model_name_derivation(task: str, expected: str) -> None:
    assert model_name(task) == expected


def test_defaults_follow_the_scripts(project: Path) -> None:
    job = dry_run_job(project)
    assert job["command"][:2] == ["bash", "training/scripts/train.sh"]
    assert flag(job, "--mode") == "train"
    assert flag(job, "--task") == "Isaac-Velocity-Rough-Anymal-C-v0"
    assert flag(job, "--num_envs") == "2048"
    assert flag(job, "--max_iterations") == ""
    assert flag(job, "--checkpoint-uri") == ""
    assert flag(job, "--checkpoint-mode") == "from-scratch"
    assert flag(job, "--register-checkpoint") == "isaac-velocity-rough-anymal-c-v0"
    assert job["command"][-1] == "--headless"
    assert job["image"] == {
        "uri": "nvcr.io/nvidia/isaac-lab:2.3.2",
        "name": "isaaclab-training-env",
        "version": "2.3.2",
    }
    assert job["environment"]["TRAINING_BACKEND"] == "skrl"
    assert job["environment"]["ACCEPT_EULA"] == "Y"
    assert job["timeout_seconds"] == 23 * 3600
    assert job["resources"] == {"gpu": 1, "cpu": 30, "memory": "400Gi", "storage": "200Gi"}


@pytest.mark.parametrize("mode", ["warm-start", "resume", "fresh"])
def test_each_loading_mode_is_passed_as_is(project: Path, mode: str) -> None:
    job = dry_run_job(project, "--checkpoint-mode", mode, "--checkpoint-uri", "models:/m/1")
    assert flag(job, "--checkpoint-mode") == mode
    assert flag(job, "--checkpoint-uri") == "models:/m/1"


def test_environment_variables_of_the_scripts(project: Path) -> None:
    env = {"TASK": "Isaac-Cartpole-v0", "NUM_ENVS": "64", "MAX_ITERATIONS": "10",
           "CHECKPOINT_URI": "runs:/abc/ckpt", "CHECKPOINT_MODE": "resume",
           "TRAINING_BACKEND": "rsl_rl", "RUN_AZURE_SMOKE_TEST": "true"}  # fmt: skip
    job = dry_run_job(project, env=env)
    assert flag(job, "--task") == "Isaac-Cartpole-v0"
    assert flag(job, "--num_envs") == "64"
    assert flag(job, "--max_iterations") == "10"
    assert flag(job, "--checkpoint-mode") == "resume"
    assert flag(job, "--mode") == "smoke-test"
    assert job["environment"]["TRAINING_BACKEND"] == "rsl_rl"


def test_command_line_beats_environment(project: Path) -> None:
    job = dry_run_job(project, "--num-envs", "16", env={"NUM_ENVS": "64"})
    assert flag(job, "--num_envs") == "16"


def test_register_name_given_or_skipped(project: Path) -> None:
    assert flag(dry_run_job(project, "--register-checkpoint", "mine"), "--register-checkpoint") == "mine"
    skipped = dry_run_job(project, "--skip-register-checkpoint")
    assert flag(skipped, "--register-checkpoint") == ""
    assert skipped["checkpoint"]["register_as"] is None


def test_gui_turns_headless_off(project: Path) -> None:
    assert "--headless" not in dry_run_job(project, "--gui")["command"]


def test_azure_context_travels_to_the_job(project: Path) -> None:
    env = {"AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-1", "AZUREML_WORKSPACE_NAME": "ws"}
    environment = dry_run_job(project, env=env)["environment"]
    assert environment["AZURE_SUBSCRIPTION_ID"] == "sub-1"
    assert environment["AZURE_RESOURCE_GROUP"] == "rg-1"
    assert environment["AZUREML_WORKSPACE_NAME"] == "ws"
    assert environment["AZURE_AUTHORITY_HOST"] == "https://login.microsoftonline.com"


def test_uri_with_from_scratch_is_refused(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--checkpoint-uri", "models:/m/1"], cwd=project)
    assert result.returncode == 2
    assert "from-scratch" in result.stderr


def test_container_interpreter_is_the_images_launcher(project: Path) -> None:
    assert dry_run_job(project)["environment"]["PYTHON"] == "/workspace/isaaclab/isaaclab.sh -p"


def test_python_option_overrides_the_container_interpreter(project: Path) -> None:
    job = dry_run_job(project, "--python", "/opt/conda/bin/python -u")
    assert job["environment"]["PYTHON"] == "/opt/conda/bin/python -u"


def test_local_platform_runs_under_its_own_interpreter(project: Path) -> None:
    result = run_cli(
        ["train", "--platform", "local", "--dry-run", "-o", "json", "--python", "x"], cwd=project
    )
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(json.loads(result.stdout)["spec"])
    assert spec["environment"]["PYTHON"] == sys.executable


SHORT_FLAGS = ["-t", "Isaac-Cartpole-v0", "-n", "64", "-m", "10", "-i", "example/isaac-lab:9", "-b", "rsl-rl",
               "-c", "models:/m/1", "-M", "Resume", "-r", "mine", "-s"]  # fmt: skip
LONG_FLAGS = ["--task", "Isaac-Cartpole-v0", "--num-envs", "64", "--max-iterations", "10", "--image",
              "example/isaac-lab:9", "--backend", "rsl_rl", "--checkpoint-uri", "models:/m/1",
              "--checkpoint-mode", "resume", "--register-checkpoint", "mine", "--run-smoke-test"]  # fmt: skip


def test_the_scripts_short_flags(project: Path) -> None:
    short, long = dry_run_job(project, *SHORT_FLAGS), dry_run_job(project, *LONG_FLAGS)
    assert short == long
    assert flag(short, "--mode") == "smoke-test"
    assert flag(short, "--checkpoint-mode") == "resume"
    assert short["environment"]["TRAINING_BACKEND"] == "rsl_rl"
    assert short["image"]["uri"] == "example/isaac-lab:9"


@pytest.mark.parametrize("spelling", ["rsl_rl", "rsl-rl", "rslrl", "RSL_RL", "Rsl-Rl"])
def test_backend_spellings(project: Path, spelling: str) -> None:
    job = dry_run_job(project, "--backend", spelling)
    assert job["environment"]["TRAINING_BACKEND"] == "rsl_rl"
    assert job["tags"]["framework"] == "rsl_rl"


def test_unknown_backend_is_one_line(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--backend", "sb3"], cwd=project)
    assert_one_line_error(result, "--backend", "'sb3'", "skrl, rsl_rl")


@pytest.mark.parametrize("mode", ["WARM-START", "Warm-Start", "warm-start"])
def test_checkpoint_modes_are_case_insensitive(project: Path, mode: str) -> None:
    job = dry_run_job(project, "--checkpoint-mode", mode, "--checkpoint-uri", "models:/m/1")
    assert flag(job, "--checkpoint-mode") == "warm-start"
    assert job["checkpoint"]["mode"] == "warm-start"


def test_mlflow_settings_travel_with_the_azure_context(project: Path) -> None:
    env = {"AZURE_SUBSCRIPTION_ID": "sub-1", "AZURE_RESOURCE_GROUP": "rg-1", "AZUREML_WORKSPACE_NAME": "ws"}
    environment = dry_run_job(project, env=env)["environment"]
    assert environment["MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES"] == "3"
    assert environment["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "60"
    given = dry_run_job(project, "--mlflow-token-retries", "7", "--mlflow-http-timeout", "300", env=env)
    assert given["environment"]["MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES"] == "7"
    assert given["environment"]["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
    from_env = dry_run_job(project, env=env | {"MLFLOW_HTTP_REQUEST_TIMEOUT": "90"})
    assert from_env["environment"]["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "90"


def test_bad_mlflow_timeout_is_one_line(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--mlflow-http-timeout", "0"], cwd=project)
    assert_one_line_error(result, "--mlflow-http-timeout", "minimum of 1")

"""Options every job takes (--timeout, --env, arguments after --), parsed and applied by core."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from robotrain.common_options import looks_like_secret, parse_duration, parse_env
from robotrain.errors import UserError
from robotrain.job import Image, JobSpec, SecretRef
from robotrain.testing import assert_one_line_error, run_cli

JOB = JobSpec(
    workload="isaaclab",
    name="job",
    image=Image("example/image:1", "image", "1"),
    command=("bash", "train.sh"),
    experiment="experiment",
    environment={"TRAINING_BACKEND": "skrl"},
    secrets=(SecretRef("WANDB_API_KEY", "wandb", "api_key"),),
)
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
HF_TOKEN = "hf_" + "abcdefghijklmnopqrstuvwxyzABCD12"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("1", 1),
        ("23h", 23 * 3600),
        ("90m", 5400),
        ("1h30m", 5400),
        ("1d2h3m4s", 86400 + 7200 + 180 + 4),
        ("30m1h", 5400),
        (" 45s ", 45),
        ("60d", 60 * 86400),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "0", "0h", "61d", "5184001", "1.5h", "h", "-5", "1H", "1h 30m", "1w", "23 h", "1e3"]
)
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(UserError, match="--timeout"):
        parse_duration(text)


def test_env_items_are_parsed() -> None:
    assert parse_env(["A=1", "B=x=y", "EMPTY=", "_lower_ok=v"], JOB) == {
        "A": "1",
        "B": "x=y",
        "EMPTY": "",
        "_lower_ok": "v",
    }


@pytest.mark.parametrize("item", ["1A=x", "A-B=x", "=x", "A B=x"])
def test_env_names_must_be_variable_names(item: str) -> None:
    with pytest.raises(UserError, match="is not KEY=VALUE"):
        parse_env([item], JOB)


def test_env_item_without_equals_is_not_echoed() -> None:
    with pytest.raises(UserError) as caught:
        parse_env([GITHUB_TOKEN], JOB)
    assert GITHUB_TOKEN not in str(caught.value)
    assert "without =" in str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["PYTHON", "PATH", "HOME", "TRAINING_CHECKPOINT_OUTPUT", "TRAINING_BACKEND", "WANDB_API_KEY",
     "ROBOTRAIN_JOB_ID", "MLFLOW_TRACKING_URI", "AZUREML_RUN_ID", "OSMO_POOL"],
)  # fmt: skip
def test_names_robotrain_sets_are_refused(name: str) -> None:
    with pytest.raises(UserError, match=f"--env: {name} is set by robotrain"):
        parse_env([f"{name}=plain"], JOB)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HF_TOKEN", "anything"),
        ("GITHUB_TOKEN", "x"),
        ("DB_PASSWORD", "hunter2"),
        ("AWS_SECRET_ACCESS_KEY", "abc"),
        ("MY_API_KEY", "abc"),
        ("SERVICE_APIKEY", "abc"),
        ("AZURE_CLIENT_KEY", "abc"),
        ("GCP_CREDENTIALS", "{}"),
        ("SOME_VALUE", GITHUB_TOKEN),
        ("SOME_VALUE", HF_TOKEN),
        ("SOME_VALUE", "AKIAIOSFODNN7EXAMPLE"),
        ("SOME_VALUE", "https://user:p4ssw0rd@example.com/data"),
        ("SOME_VALUE", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"),
        ("SOME_VALUE", "-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("SOME_VALUE", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
        ("SOME_VALUE", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"),
        ("STORAGE", "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=YWJjZA==;EndpointSuffix=x"),
        ("DATA_URL", "https://a.blob.core.windows.net/c?sv=2022-11-02&sig=abcdefghijklmnopqrstuvwxyz12"),
    ],
)
def test_secrets_are_refused_without_showing_the_value(name: str, value: str) -> None:
    assert looks_like_secret(name, value)
    with pytest.raises(UserError, match=f"--env: {name} looks like a secret") as caught:
        parse_env([f"{name}={value}"], JOB)
    assert value not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TOKENIZERS_PARALLELISM", "false"),
        ("MAX_TOKENS", "512"),
        ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1"),
        ("KEY_FRAMES", "10"),
        ("PRIMARY_KEY_COLUMN", "id"),
        ("GIT_SHA", "6f1ed002ab5595859014ebf0951522d96f1ed002"),
        ("DATA_DIR", "/workspace/data/aloha_sim_insertion_human"),
        ("TASK_ALIAS", "Isaac-Velocity-Rough-Anymal-C-v0"),
        ("SERVER", "52.1.2.3"),
        ("CHECKPOINT", "runs:/abc123/checkpoint"),
        ("HTTPS_PROXY", "http://proxy.example.com:3128"),
    ],
)
def test_ordinary_settings_are_not_secrets(name: str, value: str) -> None:
    assert not looks_like_secret(name, value)
    assert parse_env([f"{name}={value}"], JOB) == {name: value}


def dry_run(project: Path, *args: str) -> dict[str, Any]:
    result = run_cli(["train", "--platform", "local", "--dry-run", "-o", "json", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_timeout_on_local_dry_run(project: Path) -> None:
    assert dry_run(project)["job"]["timeout_seconds"] == 23 * 3600
    assert dry_run(project, "--timeout", "1h30m")["job"]["timeout_seconds"] == 5400
    assert dry_run(project, "--timeout", "600")["job"]["timeout_seconds"] == 600


def test_timeout_from_environment(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "-o", "json"], cwd=project, env={"ROBOTRAIN_TIMEOUT": "2h"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["job"]["timeout_seconds"] == 7200


def test_bad_timeout_is_one_line(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--timeout", "soon"], cwd=project)
    assert_one_line_error(result, "--timeout", "'soon'", "23h")


def test_env_on_local_dry_run(project: Path) -> None:
    document = dry_run(project, "--env", "EXTRA=1", "--env", "OTHER=a=b")
    assert document["job"]["environment"]["EXTRA"] == "1"
    assert document["job"]["environment"]["OTHER"] == "a=b"
    spec = yaml.safe_load(document["spec"])
    assert spec["environment"]["EXTRA"] == "1"
    assert spec["environment"]["OTHER"] == "a=b"


def test_secret_env_is_one_line_and_never_printed(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--env", f"SOME_VALUE={GITHUB_TOKEN}"], cwd=project)
    line = assert_one_line_error(result, "--env: SOME_VALUE looks like a secret", "secret store")
    assert GITHUB_TOKEN not in result.stdout + line


def test_owned_env_name_is_one_line(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--env", "PYTHON=python3"], cwd=project)
    assert_one_line_error(result, "--env: PYTHON is set by robotrain")


def test_arguments_after_double_dash_are_refused_on_local(project: Path) -> None:
    result = run_cli(["train", "--platform", "local", "--dry-run", "--", "--priority", "HIGH"], cwd=project)
    line = assert_one_line_error(result, "--priority HIGH", "'local'")
    assert "remove them" in line
    assert result.stdout == ""


PROBE = """
import sys
from robotrain.common_options import parse_env
from robotrain.job import Image, JobSpec

job = JobSpec("w", "n", Image("i", "n", "1"), ("true",), "e")
parse_env(sys.argv[1:], job)
print("DETECTOR LOADED:", "detect_secrets" in sys.modules)
"""


def detector_loaded(*items: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *items], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return "DETECTOR LOADED: True" in result.stdout


def test_the_secret_detector_is_imported_only_for_env_items() -> None:
    assert not detector_loaded()
    assert detector_loaded("A=1")

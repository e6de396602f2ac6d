"""Secret references on Azure ML: read at job start from Key Vault, never sent as values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fake_azure import MSI_SECRET, Cli

from conftest import settings_for
from robotrain import Image, JobSpec, SecretRef, UserError
from robotrain.payload import pack
from robotrain_azureml import service, spec

PLANTED = {"HF_TOKEN": "hf_planted_secret_value_123", "WANDB_API_KEY": "wandb_planted_secret_456"}
WRAPPER = Path(spec.__file__).parent / "job_start" / spec.KEY_VAULT_SCRIPT


def lerobot_job(project: Path, **changes: object) -> JobSpec:
    """A LeRobot-shaped job with W&B tracking and a Hub token, built through core's public API."""
    entry = project / "lerobot-entry"
    entry.mkdir(exist_ok=True)
    (entry / "train_lerobot.sh").write_text('#!/usr/bin/env bash\nexec lerobot-train "$@"\n')
    job = JobSpec(
        workload="lerobot",
        name="lerobot-act-training",
        image=Image("pytorch/pytorch:2.4.1-cuda12.4-cudnn9-runtime", "lerobot-training-env", "1.0.0"),
        command=("bash", "training/train_lerobot.sh", "--policy.type=act", "--wandb.enable=true"),
        experiment="lerobot-training",
        environment={"LEROBOT_TRACKING": "wandb"},
        secrets=(SecretRef("HF_TOKEN", "hf_token", "token"), SecretRef("WANDB_API_KEY", "wandb", "api_key")),
        payload=pack({"training": entry}, project / ".robotrain" / "payloads"),
        timeout_seconds=12 * 3600,
        tags={"framework": "lerobot", "policy": "act"},
    )
    return job.evolve(**changes) if changes else job


def test_dry_run_shows_the_key_vault_secrets_the_job_reads(
    in_process: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    text = service.render(lerobot_job(in_process.project), settings_for(in_process.project, compute="gpu"))
    assert text.splitlines()[0] == (
        "# secrets read at job start from Key Vault (the workspace's Key Vault, looked up at submit): "
        "HF_TOKEN <- hf-token, WANDB_API_KEY <- wandb-api-key"
    )
    document = yaml.safe_load(text)
    variables = document["environment_variables"]
    assert variables["ROBOTRAIN_KEY_VAULT_SECRETS"] == "HF_TOKEN=hf-token,WANDB_API_KEY=wandb-api-key"
    assert "HF_TOKEN" not in variables and "WANDB_API_KEY" not in variables
    assert "${PYTHON:-python3} robotrain_keyvault.py bash training/train_lerobot.sh" in document["command"]
    assert not any(value in text for value in PLANTED.values())


def test_key_vault_and_secret_names_are_configurable(in_process: Cli) -> None:
    settings = settings_for(
        in_process.project, compute="gpu", key_vault="kv-team", key_vault_secret=["WANDB_API_KEY=team-wandb"]
    )
    document = yaml.safe_load(service.render(lerobot_job(in_process.project), settings))
    variables = document["environment_variables"]
    assert variables["ROBOTRAIN_KEY_VAULT_URL"] == "https://kv-team.vault.azure.net"
    assert variables["ROBOTRAIN_KEY_VAULT_SECRETS"] == "HF_TOKEN=hf-token,WANDB_API_KEY=team-wandb"
    wrong = settings_for(in_process.project, compute="gpu", key_vault_secret=["GITHUB_TOKEN=gh"])
    with pytest.raises(UserError, match="no secret GITHUB_TOKEN"):
        service.render(lerobot_job(in_process.project), wrong)


def test_submitted_job_reads_the_workspace_key_vault_and_no_request_carries_a_secret(
    in_process: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    settings = settings_for(in_process.project, compute="gpu")
    submission = service.submit(lerobot_job(in_process.project), settings)
    assert submission is not None
    (put,) = in_process.fake.find("PUT", r"/jobs/[^/]+$")
    variables = put.body["properties"]["environmentVariables"]
    assert variables["ROBOTRAIN_KEY_VAULT_URL"] == "https://kv-robotics-dev.vault.azure.net"
    assert variables["ROBOTRAIN_KEY_VAULT_SECRETS"] == "HF_TOKEN=hf-token,WANDB_API_KEY=wandb-api-key"
    sent = json.dumps([r.body for r in in_process.fake.requests]) + repr(in_process.fake.blobs)
    assert not any(value in sent for value in PLANTED.values())
    assert not any(value in capsys.readouterr().out for value in PLANTED.values())


def run_wrapper(cli: Cli, secrets: str, marker: Path) -> subprocess.CompletedProcess[str]:
    """The job-start wrapper as the job runs it, with Azure ML's identity endpoint played by the fake."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SSL_CERT_FILE": str(cli.ca),
        "MSI_ENDPOINT": f"{cli.fake.url}/msi/token",
        "MSI_SECRET": MSI_SECRET,
        "ROBOTRAIN_KEY_VAULT_URL": f"{cli.fake.url}/keyvault",
        "ROBOTRAIN_KEY_VAULT_SECRETS": secrets,
    }
    script = f'printf "%s" "$HF_TOKEN" > {marker}'
    return subprocess.run(
        [sys.executable, str(WRAPPER), "sh", "-c", script],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_wrapper_sets_the_secrets_and_starts_the_job(cli: Cli, tmp_path: Path) -> None:
    cli.fake.vault_secrets["hf-token"] = PLANTED["HF_TOKEN"]
    marker = tmp_path / "seen"
    result = run_wrapper(cli, "HF_TOKEN=hf-token", marker)
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == PLANTED["HF_TOKEN"]
    assert PLANTED["HF_TOKEN"] not in result.stdout + result.stderr
    assert "set HF_TOKEN from" in result.stderr


def test_a_missing_secret_fails_the_job_in_one_line_before_training(cli: Cli, tmp_path: Path) -> None:
    cli.fake.vault_secrets["hf-token"] = PLANTED["HF_TOKEN"]
    marker = tmp_path / "seen"
    result = run_wrapper(cli, "HF_TOKEN=hf-token,WANDB_API_KEY=wandb-api-key", marker)
    assert result.returncode != 0 and not marker.exists()
    (line,) = result.stderr.splitlines()
    assert "'wandb-api-key' for WANDB_API_KEY" in line and "404 SecretNotFound" in line
    assert PLANTED["HF_TOKEN"] not in result.stderr

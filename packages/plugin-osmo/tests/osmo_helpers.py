"""Shared test helpers: the stand-in's records, incompressible files, spec inspection."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from osmo_spec_rules import Version, kubernetes_problems, spec_problems

from robotrain import Image, JobSpec, Resources, SecretRef
from robotrain.payload import pack
from robotrain.testing import run_cli

ENV_LIMIT = 128 * 1024


def add_random_file(project: Path, size: int, name: str = "weights.bin") -> Path:
    """An incompressible file in the training folder, so the archive is about ``size`` bytes."""
    path = project / "src" / "training" / name
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def task_of(spec: dict[str, Any]) -> dict[str, Any]:
    tasks = spec["workflow"]["tasks"]
    assert len(tasks) == 1
    return tasks[0]  # type: ignore[no-any-return]


def all_tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks of ``tasks:`` or of every group."""
    workflow = spec["workflow"]
    return list(workflow.get("tasks") or []) + [
        task for group in workflow.get("groups") or [] for task in group["tasks"]
    ]


def assert_obeys_osmo_rules(spec: dict[str, Any], version: Version = (6, 3)) -> None:
    """Every rule the stand-in enforces for ``version``, plus the pod's: Kubernetes quantities, no
    environment string over 128 KiB, no template syntax left (OSMO's own tokens aside)."""
    assert spec_problems(spec, version) == []
    assert kubernetes_problems(spec) == []
    for task in all_tasks(spec):
        for entry in task.get("files", []):
            assert "{{" not in entry["contents"]
            assert "{%" not in entry["contents"] and "{#" not in entry["contents"]
        for name, value in task.get("environment", {}).items():
            assert len(f"{name}={value}".encode()) < ENV_LIMIT


def lerobot_job(state_dir: Path, with_input: bool) -> JobSpec:
    """A job as the lerobot plugin builds it: its entry script, HF/W&B credentials, a staged dataset input."""
    code = state_dir.parent / "lerobot-entry"
    code.mkdir(parents=True, exist_ok=True)
    (code / "train_lerobot.sh").write_text(
        'exec "${PYTHON:-python3}" "$(dirname "$0")/lerobot_job.py" "$@"\n'
    )
    (code / "lerobot_job.py").write_text("print('lerobot')\n")
    return JobSpec(
        workload="lerobot",
        name="lerobot-act-training",
        image=Image("pytorch/pytorch:2.4.1-cuda12.4-cudnn9-runtime", "lerobot-training-env", "1.0.0"),
        command=(
            "bash",
            "training/train_lerobot.sh",
            "--dataset.repo_id=lerobot/aloha_sim_insertion_human",
            "--policy.type=act",
            "--steps=100",
        ),
        experiment="lerobot-training",
        environment={"HF_HUB_DISABLE_TELEMETRY": "1"},
        secrets=(SecretRef("HF_TOKEN", "hf_token", "token"), SecretRef("WANDB_API_KEY", "wandb", "api_key")),
        resources=Resources(gpu=1, cpu=8, memory="48Gi", storage="80Gi"),
        payload=pack({"training": code}, state_dir / "payloads"),
        inputs={"dataset": "episodes"} if with_input else {},
        timeout_seconds=12 * 3600,
    )


@dataclass
class FakeOsmo:
    """The stand-in CLI: its environment, and what it recorded."""

    state: Path
    env: dict[str, str] = field(default_factory=dict)

    def calls(self) -> list[dict[str, Any]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def argvs(self) -> list[list[str]]:
        return [call["argv"] for call in self.calls()]

    def submits(self) -> list[dict[str, Any]]:
        return [c for c in self.calls() if c["argv"][:2] == ["workflow", "submit"] and c["exit"] == 0]

    def submitted_spec(self) -> dict[str, Any]:
        """The spec file of the last accepted submission, as the stand-in read it."""
        submits = self.submits()
        assert submits, f"nothing was submitted; calls: {self.argvs()}"
        return yaml.safe_load(submits[-1]["spec_text"])  # type: ignore[no-any-return]

    def osmo_calls(self) -> list[list[str]]:
        """The calls that reached OSMO's service (``osmo version`` is a local query)."""
        return [argv for argv in self.argvs() if argv[:1] != ["version"]]

    def osmo_calls_records(self) -> list[dict[str, Any]]:
        return [call for call in self.calls() if call["argv"][:1] != ["version"]]

    def run(self, args: Sequence[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """``robotrain ARGS`` with the stand-in first on PATH."""
        return run_cli(args, cwd=cwd, env=self.env | env)


FAKE_DIR = Path(__file__).parent / "fakeosmo"
LAUNCHER = """#!{python}
import runpy, sys
sys.path.insert(0, {folder!r})
sys.argv[0] = "osmo"
runpy.run_path({script!r}, run_name="__main__")
"""


def install_fake_osmo(tmp_path: Path) -> FakeOsmo:
    """The stand-in ``osmo`` in ``tmp_path/bin``, logged in, keeping its state under ``tmp_path``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "osmo"
    launcher.write_text(
        LAUNCHER.format(python=sys.executable, folder=str(FAKE_DIR), script=str(FAKE_DIR / "fake_osmo.py"))
    )
    launcher.chmod(0o755)
    config = tmp_path / "osmo-config"
    config.mkdir()
    (config / "login.yaml").write_text("url: https://osmo.example.com\ntoken: stored-by-osmo-login\n")
    state = tmp_path / "fake-osmo-state"
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "OSMO_CONFIG_FILE_DIR": str(config),
        "FAKE_OSMO_DIR": str(state),
        "ROBOTRAIN_OSMO_RETRY_BASE_SECONDS": "0",
        "ROBOTRAIN_OSMO_POLL_SECONDS": "0",
    }
    return FakeOsmo(state, env)

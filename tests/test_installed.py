"""With every package installed: discovery of the distributions and what they contribute."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from robotrain.testing import make_project, run_cli

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {
    "robotrain": "core",
    "azureml": "plugin-azureml",
    "osmo": "plugin-osmo",
    "lerobot": "plugin-lerobot",
}


def declared_version(folder: str) -> str:
    with (REPO / "packages" / folder / "pyproject.toml").open("rb") as handle:
        version: str = tomllib.load(handle)["project"]["version"]
    return version


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def test_plugins_lists_core_and_the_three_plugin_packages(project: Path) -> None:
    result = run_cli(["plugins", "-o", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    plugins = {entry["name"]: entry for entry in json.loads(result.stdout)}
    for name, folder in PACKAGES.items():
        assert plugins[name]["distribution"] == f"robotrain-{folder.removeprefix('plugin-')}"
        assert plugins[name]["version"] == declared_version(folder)
    assert plugins["osmo"]["platforms"] == ["osmo"]
    assert plugins["azureml"]["platforms"] == ["azureml"]
    assert plugins["lerobot"]["workloads"] == ["lerobot"]
    assert plugins["local"]["platforms"] == ["local"]
    assert plugins["isaaclab"]["workloads"] == ["isaaclab"]


def test_invoke_list_shows_every_task() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(REPO), "--list"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    listed = {
        line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line[2] != " "
    }
    assert listed == {
        "train",
        "stage-dataset",
        "register-model",
        "status",
        "logs",
        "cancel",
        "jobs",
        "rerun",
        "download",
        "plugins",
        "config",
    }


def test_train_help_shows_every_plugins_options(project: Path) -> None:
    result = run_cli(["train", "--help"], cwd=project)
    assert result.returncode == 0, result.stderr
    for flag in ("--pool", "--payload", "--compute", "--instance-type", "--dataset-repo-id", "--policy-type"):
        assert flag in result.stdout, flag

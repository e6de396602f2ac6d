"""Every user mistake ends with one line on stderr, a non-zero exit and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from robotrain.testing import assert_one_line_error, run_cli


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--bogus"], ["--bogus"]),
        (["--checkpoint-mode", "bogus"], ["--checkpoint-mode", "bogus", "from-scratch"]),
        (["--checkpoint-mode", "resume"], ["--checkpoint-uri"]),
        (["--checkpoint-mode", "warm-start"], ["--checkpoint-uri"]),
        (["--checkpoint-mode", "fresh"], ["--checkpoint-uri"]),
        (["--num-envs", "abc"], ["--num-envs", "'abc'", "whole number"]),
        (["--num-envs", "-5"], ["--num-envs", "'-5'", "minimum"]),
        (["--max-iterations", "0"], ["--max-iterations"]),
        (["--platform", "nope"], ["platform 'nope'", "local"]),
        (["--workload", "nope"], ["workload 'nope'", "isaaclab"]),
        (["--output", "xml"], ["--output"]),
        (["--training-dir", "missing"], ["training folder", "missing", "--training-dir"]),
        (["--profile", "nope"], ["profile 'nope'"]),
    ],
)
def test_bad_train_input_is_one_line(project: Path, args: list[str], fragments: list[str]) -> None:
    result = run_cli(["train", "--dry-run", *args], cwd=project)
    assert_one_line_error(result, *fragments)
    assert result.stdout == ""


def test_bad_environment_value_names_its_source(project: Path) -> None:
    result = run_cli(["train", "--dry-run"], cwd=project, env={"NUM_ENVS": "many"})
    assert_one_line_error(result, "--num-envs", "env NUM_ENVS", "'many'")


def test_bad_config_value_names_the_file(project: Path) -> None:
    (project / "robotrain.toml").write_text('num-envs = "lots"\n')
    result = run_cli(["train", "--dry-run"], cwd=project)
    assert_one_line_error(result, "--num-envs", "robotrain.toml")


def test_malformed_tfvars_names_file_and_line(project: Path) -> None:
    infra = project / "infra"
    infra.mkdir()
    (infra / "terraform.tfvars").write_text('resource_prefix = "rob"\nenvironment = = "dev"\n')
    result = run_cli(["train", "--dry-run", "--terraform-dir", "infra"], cwd=project)
    line = assert_one_line_error(result, "terraform.tfvars:2:")
    assert "Unexpected token" not in line


def test_unreadable_tfstate_is_one_line(project: Path) -> None:
    infra = project / "infra"
    infra.mkdir()
    (infra / "terraform.tfstate").write_text('{"version": 4, "outputs": ')
    result = run_cli(["config", "--terraform-dir", "infra"], cwd=project)
    assert_one_line_error(result, "terraform.tfstate", "not valid JSON")


def test_tfstate_that_is_a_folder_is_one_line(project: Path) -> None:
    (project / "infra" / "terraform.tfstate").mkdir(parents=True)
    result = run_cli(["train", "--dry-run", "--terraform-dir", "infra"], cwd=project)
    assert_one_line_error(result, "cannot read Terraform state")


def test_invalid_config_toml_is_one_line(project: Path) -> None:
    (project / "robotrain.toml").write_text("task = \n")
    result = run_cli(["config"], cwd=project)
    assert_one_line_error(result, "robotrain.toml", "invalid TOML")


def test_status_of_unknown_platform_is_one_line(project: Path) -> None:
    result = run_cli(["status", "some-job", "--platform", "nope"], cwd=project)
    assert_one_line_error(result, "platform 'nope'")


def test_good_dry_run_succeeds_with_json(project: Path) -> None:
    result = run_cli(["train", "--dry-run", "--output", "json", "--num-envs", "8"], cwd=project)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)["job"]
    assert job["command"][job["command"].index("--num_envs") + 1] == "8"


def run_into_closed_pipe(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``robotrain ARGS | head`` where the reader is gone before the first write: EPIPE on every write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "MLFLOW_"))}
    try:
        return subprocess.run(
            [sys.executable, "-m", "robotrain", *args], cwd=cwd, env=environment, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["config"], ["--help"], ["train", "--dry-run"], ["plugins"]])
def test_output_into_a_closed_pipe_ends_quietly(project: Path, args: list[str]) -> None:
    result = run_into_closed_pipe(args, project)
    assert result.stderr == ""
    assert result.returncode == 141  # as a shell reports a command stopped by SIGPIPE


def test_unknown_config_keys_warn_on_every_command(project: Path) -> None:
    (project / "robotrain.toml").write_text("num-envs = 8\nnum-env = 4\n")
    for args in (["train", "--dry-run"], ["status", "local-nope"], ["logs", "local-nope"], ["cancel", "x"]):
        stderr = run_cli(args, cwd=project).stderr
        assert "warning:" in stderr and "unknown key 'num-env'" in stderr, (args, stderr)
    config = run_cli(["config"], cwd=project)
    assert "num-env: in the config file but no installed plugin defines it" in config.stdout
    assert "warning" not in config.stderr


def test_a_dry_run_writes_nothing_but_the_payload_cache(project: Path) -> None:
    """The dry run packs (a real run would write the same archive) but never stages, uploads or records."""
    result = run_cli(["train", "--dry-run", "--timeout", "2h"], cwd=project)
    assert result.returncode == 0, result.stderr
    written = {p.relative_to(project).parts[:2] for p in (project / ".robotrain").rglob("*")}
    assert {top for _, top in written} <= {"payloads", "cache"}, written
    for args in (["config"], ["status", "local-nope"], ["plugins"]):
        run_cli(args, cwd=project)
    assert {p.relative_to(project).parts[:2] for p in (project / ".robotrain").rglob("*")} == written

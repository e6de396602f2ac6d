"""status, logs, cancel, stage-dataset and register-model on osmo, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from osmo_helpers import FakeOsmo

from robotrain.testing import assert_one_line_error

OSMO = ["--platform", "osmo"]


@pytest.mark.parametrize(
    ("raw", "state"),
    [("PENDING", "pending"), ("RUNNING", "running"), ("WAITING", "running"), ("COMPLETED", "completed"),
     ("FAILED_EXEC_TIMEOUT", "failed"), ("FAILED_IMAGE_PULL", "failed"), ("FAILED_CANCELED", "canceled")],
)  # fmt: skip
def test_status_maps_osmo_states(osmo: FakeOsmo, project: Path, raw: str, state: str) -> None:
    result = osmo.run(["status", "wf-3", *OSMO, "--output", "json"], cwd=project, FAKE_OSMO_STATUSES=raw)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["state"], status["details"]["status"]) == (state, raw)
    assert status["details"]["tasks"][0]["name"] == "train"
    assert osmo.argvs() == [["workflow", "query", "wf-3", "-t", "json"]]


def test_status_finds_the_platform_of_a_submitted_job(osmo: FakeOsmo, project: Path) -> None:
    assert osmo.run(["train", *OSMO], cwd=project).returncode == 0
    result = osmo.run(["status", "isaaclab-training-1"], cwd=project, FAKE_OSMO_STATUSES="COMPLETED")
    assert result.stdout.strip() == "osmo job isaaclab-training-1: completed"


def test_logs_once(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["logs", "wf-3", *OSMO], cwd=project)
    assert result.stdout == "Workflow wf-3 has logs:\n[train] step 1\n"
    assert osmo.argvs() == [["workflow", "logs", "wf-3"]]


def test_logs_follow_until_the_workflow_ends_printing_each_line_once(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["logs", "wf-3", *OSMO, "--follow"], cwd=project,
                      FAKE_OSMO_STATUSES="RUNNING,RUNNING,COMPLETED")  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["Workflow wf-3 has logs:", *(f"[train] step {n}" for n in range(1, 5))]
    assert [a[1] for a in osmo.argvs()].count("query") == 3


def test_cancel_reports_the_state(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["cancel", "wf-3", *OSMO], cwd=project, FAKE_OSMO_STATUSES="FAILED_CANCELED")
    assert result.stdout.strip() == "osmo job wf-3: canceled"
    assert osmo.argvs()[0] == ["workflow", "cancel", "wf-3", "-t", "json"]
    result = osmo.run(["cancel", "wf-3", *OSMO], cwd=project, FAKE_OSMO_STATUSES="RUNNING")
    assert result.stdout.strip() == "osmo job wf-3: canceling"


def test_cancel_failure_is_read_from_the_output(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["cancel", "wf-3", *OSMO], cwd=project, FAKE_OSMO_CANCEL_FAIL="1")
    assert_one_line_error(result, "could not cancel wf-3", "is finished")


def test_bad_job_id_is_refused_before_calling_osmo(osmo: FakeOsmo, project: Path) -> None:
    assert_one_line_error(osmo.run(["status", "a b", *OSMO], cwd=project), "not an OSMO workflow id")
    assert osmo.calls() == []


def test_server_error_on_status_is_one_line(osmo: FakeOsmo, project: Path) -> None:
    assert_one_line_error(osmo.run(["status", "wf-3", *OSMO], cwd=project, FAKE_OSMO_EXIT="10"), "server")


def make_data(project: Path) -> Path:
    data = project / "data"
    (data / "episodes").mkdir(parents=True)
    (data / "episodes" / "0.json").write_text("[1, 2, 3]\n")
    (data / "README.md").write_text("demo\n")
    (data / ".env").write_text("WANDB_API_KEY=never-uploaded\n")
    return data


def test_stage_dataset_uploads_once_per_content(osmo: FakeOsmo, project: Path) -> None:
    make_data(project)
    first = osmo.run(
        ["stage-dataset", "data", "--name", "demo", *OSMO, "--dataset-bucket", "lab"], cwd=project
    )
    assert first.stdout.strip() == "dataset lab/demo:1 (uploaded)  lab/demo:1"
    upload = next(c for c in osmo.calls() if c["argv"][:2] == ["dataset", "upload"])
    assert upload["argv"][2] == "lab/demo"
    assert sorted(upload["uploaded_files"]) == ["README.md", "episodes/0.json"]
    again = osmo.run(
        ["stage-dataset", "data", "--name", "demo", *OSMO, "--dataset-bucket", "lab"], cwd=project
    )
    assert again.stdout.strip() == "dataset lab/demo:1 (unchanged, not uploaded again)  lab/demo:1"
    assert [a[:2] for a in osmo.argvs()].count(["dataset", "upload"]) == 1
    (project / "data" / "README.md").write_text("changed\n")
    third = osmo.run(
        ["stage-dataset", "data", "--name", "demo", *OSMO, "--dataset-bucket", "lab"], cwd=project
    )
    assert third.stdout.startswith("dataset lab/demo:2 (uploaded)")


def test_stage_dataset_with_osmo_6_4_uses_data_upload(osmo: FakeOsmo, project: Path) -> None:
    make_data(project)
    args = [
        "stage-dataset",
        "data",
        "--name",
        "demo",
        *OSMO,
        "--dataset-url",
        "gs://bkt/sets",
        "--output",
        "json",
    ]
    result = osmo.run(args, cwd=project, FAKE_OSMO_VERSION="6.4.0")
    assert result.returncode == 0, result.stderr
    dataset = json.loads(result.stdout)
    assert dataset["uri"] == f"gs://bkt/sets/demo/{dataset['version']}" and dataset["uploaded"] is True
    assert [a[:3] for a in osmo.argvs()] == [["version", "-t", "json"], ["data", "upload", dataset["uri"]]]
    missing = osmo.run(["stage-dataset", "data", *OSMO], cwd=project, FAKE_OSMO_VERSION="6.4.0")
    assert_one_line_error(missing, "--dataset-url")


def test_register_model_names_the_platform_to_use(osmo: FakeOsmo, project: Path) -> None:
    (project / "ckpt").mkdir()
    result = osmo.run(["register-model", "ckpt", "--name", "anymal", *OSMO], cwd=project)
    assert_one_line_error(result, "no model registry", "--platform azureml")
    assert osmo.calls() == []


def test_plugin_imports_no_heavy_sdk() -> None:
    code = (
        "import sys, robotrain_osmo.plugin, robotrain_osmo.submit, robotrain_osmo.follow; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('mlflow', 'azure')]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

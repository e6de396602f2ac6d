"""status, logs, cancel, stage-dataset and register-model on osmo, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from osmo_helpers import FakeOsmo

from robotrain.testing import assert_one_line_error
from robotrain_osmo import follow, runner

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


def test_logs_without_follow_return_promptly_with_what_is_there(osmo: FakeOsmo, project: Path) -> None:
    timeline = {"FAKE_OSMO_LOG_BACKLOG": "2", "FAKE_OSMO_LOG_LINES": "6", "FAKE_OSMO_LOG_INTERVAL": "3"}
    result = osmo.run(
        ["logs", "wf-3", *OSMO], cwd=project, ROBOTRAIN_OSMO_LOGS_QUIET_SECONDS="0.5", **timeline
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[train] step 1\n[train] step 2\n"
    status = osmo.run(["status", "wf-3", *OSMO], cwd=project, **timeline)
    assert status.stdout.strip() == "osmo job wf-3: running", "logs returned before the workflow ended"


def test_logs_follow_print_each_line_as_it_arrives(
    osmo: FakeOsmo, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stand-in writes a line per second; the first reaches us while the workflow still runs."""
    for key, value in {**osmo.env, "FAKE_OSMO_LOG_LINES": "5"}.items():
        monkeypatch.setenv(key, value)
    events: list[tuple[str, str]] = []

    def workflow_status() -> str:
        answer = subprocess.run(["osmo", "workflow", "query", "wf-3", "-t", "json"], capture_output=True,
                                text=True, check=True)  # fmt: skip
        return str(json.loads(answer.stdout)["status"])

    def write(text: str) -> None:
        events.append((text, workflow_status() if not events else ""))

    assert follow.logs("wf-3", True, write) is True
    assert [text for text, _ in events] == [f"[train] step {n}\n" for n in range(1, 6)]
    assert events[0][1] == "RUNNING", "the first line arrived before the workflow ended"
    assert workflow_status() == "COMPLETED"


def test_ctrl_c_stops_following_cleanly(osmo: FakeOsmo, project: Path) -> None:
    environment = {**os.environ, **osmo.env, "FAKE_OSMO_LOG_LINES": "30"}
    process = subprocess.Popen(
        [sys.executable, "-m", "robotrain", "logs", "wf-3", *OSMO, "--follow"], cwd=project, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline() == "[train] step 1\n"
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C: the whole foreground group
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "stopped following wf-3" in stderr and "Traceback" not in stderr
    assert "[train] step 30" not in stdout


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        ("Error message: Workflow wf-3 not found\nError code: 404\n", "Workflow wf-3 not found"),
        (
            "Error message: Workflow submit failed:\nname\n  ^\nError code: 2\n",
            "Workflow submit failed: name ^",
        ),
        ('{"message": "Invalid request", "code": 2}', "Invalid request"),
    ],
)
def test_osmo_error_text_is_read_from_stdout(stdout: str, message: str) -> None:
    """src/cli/cli.py prints errors on stdout: the user sees the message, not its last line."""
    failed = subprocess.CompletedProcess(["osmo"], 2, stdout, "")
    assert runner._message(failed) == message


def test_stand_in_errors_reach_the_user_in_one_line(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["logs", "wf-3", *OSMO], cwd=project, FAKE_OSMO_EXIT="2")
    assert_one_line_error(result, "OSMO refused `osmo workflow logs`: Invalid request")


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
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('mlflow', 'azure', 'jinja2')]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr

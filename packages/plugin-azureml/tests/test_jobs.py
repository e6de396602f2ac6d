"""Job names, computes, retries, states, logs and streaming against the stricter fake."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
from fake_azure import WORKSPACE, Cli

from conftest import settings_for
from robotrain.errors import UserError
from robotrain.testing import assert_one_line_error
from robotrain_azureml import service, spec

WS = (
    f"/subscriptions/{WORKSPACE['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{WORKSPACE['AZURE_RESOURCE_GROUP']}"
    f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE['AZUREML_WORKSPACE_NAME']}"
)
TRAIN = ("train", "--platform", "azureml", "--max-iterations", "5")


def job_name(stdout: str) -> str:
    found = re.search(r"job name: (\S+)", stdout)
    assert found, stdout
    return found.group(1)


def test_same_job_name_twice_creates_two_jobs(cli: Cli) -> None:
    first = cli.run(*TRAIN, "--compute", "c1", "--job-name", "isaac-run")
    second = cli.run(*TRAIN, "--compute", "c1", "--job-name", "isaac-run")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    names = [job_name(first.stdout), job_name(second.stdout)]
    assert names[0] != names[1] and all(n.startswith("isaac-run-") for n in names)
    assert sorted(cli.fake.jobs()) == sorted(names)
    assert {job["properties"]["displayName"] for job in cli.fake.jobs().values()} == {"isaac-run"}


def test_compute_prefixed_with_azureml_reaches_the_put_as_a_compute_id(cli: Cli) -> None:
    result = cli.run(*TRAIN, "--compute", "azureml:gpu")
    assert result.returncode == 0, result.stderr
    (put,) = cli.fake.find("PUT", r"/jobs/[^/]+$")
    assert put.body["properties"]["computeId"] == f"{WS}/computes/gpu"


@pytest.mark.parametrize("given", ["gpu", "azureml:gpu", f"{WS}/computes/gpu", f"{WS.upper()}/computes/gpu"])
def test_every_compute_form_gives_the_name(given: str, in_process: Cli) -> None:
    settings = settings_for(in_process.project, compute=given)
    assert spec.compute_from(settings, spec.workspace_from(settings)) == "gpu"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("azureml:", "give a compute name"),
        ("gpu cluster", "give a compute name"),
        (WS.replace("mlw-robotics-dev-001", "mlw-other") + "/computes/gpu", "belongs to workspace mlw-other"),
    ],
)
def test_a_bad_compute_is_refused_with_what_to_give(given: str, message: str, in_process: Cli) -> None:
    settings = settings_for(in_process.project, compute=given)
    with pytest.raises(UserError, match=message):
        spec.compute_from(settings, spec.workspace_from(settings))


def test_unknown_compute_is_refused_by_the_service_in_one_line(cli: Cli) -> None:
    result = cli.run(*TRAIN, "--compute", "no-such-compute")
    assert_one_line_error(result, "Azure ML answered 400", "Compute", "no-such-compute")
    assert cli.fake.jobs() == {}


def test_throttled_job_put_is_retried_after_retry_after_and_creates_one_job(cli: Cli) -> None:
    cli.fake.fail("PUT", r"/jobs/[^/]+$", 429, "TooManyRequests", retry_after=1)
    result = cli.run(*TRAIN, "--compute", "c1")
    assert result.returncode == 0, result.stderr
    puts = cli.fake.find("PUT", r"/jobs/[^/]+$")
    assert len(puts) == 2 and puts[0].path == puts[1].path
    assert puts[1].at - puts[0].at >= 1.0  # Retry-After honoured
    assert list(cli.fake.jobs()) == [job_name(result.stdout)]


def test_a_put_whose_answer_was_lost_is_found_not_duplicated(cli: Cli) -> None:
    cli.fake.fail("PUT", r"/jobs/[^/]+$", 500, "InternalServerError", after=True)
    result = cli.run(*TRAIN, "--compute", "c1")
    assert result.returncode == 0, result.stderr
    assert list(cli.fake.jobs()) == [job_name(result.stdout)]


def test_interrupted_submit_is_retried_under_the_same_name_until_the_job_changes(cli: Cli) -> None:
    cli.fake.fail("PUT", r"/jobs/[^/]+$", 500, "InternalServerError", after=True, times=9)
    failed = cli.run(*TRAIN, "--compute", "c1")
    assert_one_line_error(failed, "Azure ML answered 500")
    (created,) = cli.fake.jobs()
    cli.fake.failures.clear()
    retried = cli.run(*TRAIN, "--compute", "c1")
    assert retried.returncode == 0, retried.stderr
    assert job_name(retried.stdout) == created and list(cli.fake.jobs()) == [created]
    changed = cli.run(*TRAIN, "--compute", "c1", "--instance-type", "gpu-large")
    assert changed.returncode == 0, changed.stderr
    assert job_name(changed.stdout) != created and len(cli.fake.jobs()) == 2


def test_stream_of_a_failing_job_is_one_line_and_the_job_is_in_history(cli: Cli) -> None:
    cli.fake.job_states = ("Queued", "Running", "Failed")
    result = cli.run(*TRAIN, "--compute", "c1", "--stream")
    line = assert_one_line_error(result, "failed", "training script exited with code 1")
    (name,) = cli.fake.jobs()
    assert name in line and "step 1 loss 0.90" in result.stdout
    history = (cli.project / ".robotrain" / "submissions.jsonl").read_text().splitlines()
    assert [json.loads(entry)["job_id"] for entry in history] == [name]
    assert "\x1b[" not in result.stderr + result.stdout


def test_stream_of_a_completed_job_records_it_once(cli: Cli) -> None:
    cli.fake.job_states = ("Queued", "Running", "Completed")
    result = cli.run(*TRAIN, "--compute", "c1", "--stream")
    assert result.returncode == 0, result.stderr
    (name,) = cli.fake.jobs()
    history = (cli.project / ".robotrain" / "submissions.jsonl").read_text().splitlines()
    assert [json.loads(entry)["job_id"] for entry in history] == [name]


def test_ctrl_c_while_streaming_leaves_the_job_running_and_in_history(cli: Cli) -> None:
    cli.fake.job_states = ("Queued",) + ("Running",) * 100_000
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "AZURE", "TASK"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "robotrain", *TRAIN, "--compute", "c1", "--stream"],
        cwd=cli.project, env=inherited | cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    for line in process.stdout:  # the SDK flushes "RunId: <name>" when it starts following
        if line.startswith("RunId:"):
            break
    (name,) = cli.fake.jobs()
    asked = len(cli.fake.find("GET", rf"/jobs/{name}$"))
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert len(cli.fake.find("GET", rf"/jobs/{name}$")) <= asked + 1, "only a request under way completes"
    assert_one_line_error(result, f"stopped following job {name} (Ctrl-C); it keeps running")
    history = (cli.project / ".robotrain" / "submissions.jsonl").read_text()
    assert json.loads(history.splitlines()[-1])["job_id"] == name
    assert cli.fake.job_state(name) in ("Queued", "Running") and not cli.fake.find("POST", r"/cancel$")


def test_logs_of_a_completed_job_print_its_log_lines(cli: Cli) -> None:
    submitted = cli.run(*TRAIN, "--compute", "c1")
    name = job_name(submitted.stdout)
    cli.fake.set_job_state(name, "Completed")
    result = cli.run("logs", name)
    assert result.returncode == 0, result.stderr
    assert "step 1 loss 0.90\nstep 2 loss 0.45\ntraining done\n" in result.stdout


def test_logs_of_a_running_job_print_what_is_there_and_return(cli: Cli) -> None:
    submitted = cli.run(*TRAIN, "--compute", "c1")
    name = job_name(submitted.stdout)
    cli.fake.set_job_state(name, "Running", then=("Running",) * 50)
    result = cli.run("logs", name)
    assert result.returncode == 0, result.stderr
    assert "step 1 loss 0.90" in result.stdout and "training done" not in result.stdout
    assert f"invoke logs {name} --follow" in result.stdout


def test_logs_follow_streams_a_running_job_until_it_completes(cli: Cli) -> None:
    submitted = cli.run(*TRAIN, "--compute", "c1")
    name = job_name(submitted.stdout)
    cli.fake.set_job_state(name, "Running", then=("Running", "Finalizing", "Completed"))
    result = cli.run("logs", name, "--follow")
    assert result.returncode == 0, result.stderr
    assert "training done" in result.stdout and cli.fake.job_state(name) == "Completed"


def test_cancel_reports_canceling_until_the_service_says_canceled(cli: Cli) -> None:
    submitted = cli.run(*TRAIN, "--compute", "c1", "--job-name", "isaac-run-7")
    name = job_name(submitted.stdout)
    assert cli.run("status", name).stdout.strip() == f"azureml job {name}: queued"
    cancelled = cli.run("cancel", name)
    assert cancelled.stdout.strip() == f"azureml job {name}: canceling", cancelled.stderr
    assert cli.fake.find("POST", rf"/jobs/{name}/cancel$")
    assert cli.run("status", name).stdout.strip() == f"azureml job {name}: canceled"


def test_a_malformed_service_answer_is_one_line(cli: Cli) -> None:
    submitted = cli.run(*TRAIN, "--compute", "c1")
    name = job_name(submitted.stdout)
    cli.fake.fail("GET", rf"/jobs/{name}$", 200, body=b"{'not': json", times=9)
    result = cli.run("status", name)
    assert_one_line_error(result, f"job {name}")


SERVICE_STATES = {
    "NotStarted": "queued", "Queued": "queued", "Scheduled": "queued", "Preparing": "starting",
    "Provisioning": "starting", "Starting": "starting", "Running": "running", "Finalizing": "running",
    "NotResponding": "running", "CancelRequested": "canceling", "Paused": "paused", "Unknown": "unknown",
    "Completed": "completed", "Failed": "failed", "Canceled": "canceled",
}  # fmt: skip


def test_every_service_state_maps_to_a_robotrain_state() -> None:
    from azure.ai.ml._restclient.arm_ml_service.models._enums import JobStatus as RestJobStatus

    assert {state.value for state in RestJobStatus} <= set(SERVICE_STATES)
    for state, expected in SERVICE_STATES.items():
        assert service.job_status("j", state).state == expected
    finished = {s for s, mapped in SERVICE_STATES.items() if service.job_status("j", s).finished}
    assert finished == {"Completed", "Failed", "Canceled"}


def test_sdk_messages_lose_colour_codes_and_line_breaks() -> None:
    error = RuntimeError("\x1b[31mUnknown cloud\x1b[0m\n  To mitigate: read the docs\nsecond line")
    assert service._first_line(error) == "Unknown cloud second line"


def test_train_output_json_is_only_the_json(cli: Cli) -> None:
    """What the plugin says while submitting goes to stderr when train's output is JSON."""
    result = cli.run(*TRAIN, "--compute", "c1", "--output", "json")
    assert result.returncode == 0, result.stderr
    submitted = json.loads(result.stdout)
    assert submitted["platform"] == "azureml" and f"job name: {submitted['job_id']}" in result.stderr

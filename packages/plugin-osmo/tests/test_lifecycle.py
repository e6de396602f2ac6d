"""After submit: jobs, rerun, download and recovery of OSMO workflows, through the CLI and the stand-in."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from osmo_helpers import FakeOsmo, task_of

from robotrain.testing import assert_one_line_error, heavy_imports_of
from robotrain_osmo import follow

OSMO = ["--platform", "osmo"]
URL = "s3://bucket/robotrain"
V64 = {"FAKE_OSMO_VERSION": "6.4.0"}
ENDS_NOW = {"FAKE_OSMO_LOG_LINES": "1", "FAKE_OSMO_LOG_INTERVAL": "0"}
"""A workflow whose one log line is written at once: it has ended by the next call."""
RUNS_ON = {"FAKE_OSMO_LOG_LINES": "1", "FAKE_OSMO_LOG_INTERVAL": "3600"}


def checkpoint_files(tmp_path: Path) -> Path:
    """What the training writes to its checkpoint folder, as the stand-in's task writes it."""
    folder = tmp_path / "written-by-the-task"
    for name, size in {"iteration-000010/model.pt": 300_000, "iteration-000020/model.pt": 300_000,
                       "iteration-000020/optimizer.pt": 120_000}.items():  # fmt: skip
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(hashlib.sha256(name.encode()).digest() * (size // 32))
    return folder


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def train(osmo: FakeOsmo, project: Path, *args: str, **env: str) -> None:
    result = osmo.run(["train", *OSMO, *args], cwd=project, **env)
    assert result.returncode == 0, result.stderr


def jobs(osmo: FakeOsmo, project: Path, **env: str) -> dict[str, dict[str, Any]]:
    result = osmo.run(["jobs", "--output", "json"], cwd=project, **env)
    assert result.returncode == 0, result.stderr
    return {row["job_id"]: row for row in json.loads(result.stdout)}


# --- status: preemption and running out of memory --------------------------------------------------


@pytest.mark.parametrize(
    ("end", "state", "out_of_memory"),
    [("FAILED_PREEMPTED", "preempted", False), ("FAILED_BACKEND_ERROR", "preempted", False),
     ("FAILED_EVICTED", "failed", True), ("FAILED", "failed", False), ("COMPLETED", "completed", False)],
)  # fmt: skip
def test_status_tells_preemption_and_out_of_memory(
    osmo: FakeOsmo, project: Path, end: str, state: str, out_of_memory: bool
) -> None:
    train(osmo, project, FAKE_OSMO_END_STATUSES=end, **ENDS_NOW)
    result = osmo.run(["status", "isaaclab-training-1", "--output", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert (status["state"], status["details"]["status"]) == (state, end)
    assert status["details"].get("out_of_memory", False) is out_of_memory


def test_an_eviction_for_another_resource_is_not_out_of_memory() -> None:
    """backend_listener.py: a pod the kubelet evicted carries its pod message; an OOM kill only exit codes."""
    evicted = "Pod train-0f0e error message: Pod ephemeral local storage usage exceeds the total limit\n"
    oom_killed = "Failure reason:\n- Exit code 137 due to Task train failure. "
    memory = "Pod train-0f0e error message: The node was low on resource: memory. Threshold quantity: 100Mi"
    task = {"status": "FAILED_EVICTED"}
    assert not follow.out_of_memory("FAILED_EVICTED", [task | {"failure_message": evicted}])
    assert follow.out_of_memory("FAILED_EVICTED", [task | {"failure_message": oom_killed}])
    assert follow.out_of_memory("FAILED_EVICTED", [task | {"failure_message": memory}])
    assert not follow.out_of_memory("FAILED", [{"status": "FAILED", "failure_message": oom_killed}])


# --- jobs -----------------------------------------------------------------------------------------


def test_jobs_lists_osmo_workflows_with_their_states_from_one_listing(osmo: FakeOsmo, project: Path) -> None:
    ends = {"FAKE_OSMO_END_STATUSES": "COMPLETED,FAILED_PREEMPTED,COMPLETED"}
    train(osmo, project, **ends, **ENDS_NOW)
    train(osmo, project, **ends, **ENDS_NOW)
    train(osmo, project, **ends, **RUNS_ON)
    before = len(osmo.calls())
    rows = jobs(osmo, project)
    states = {job_id.rsplit("-", 1)[1]: row["state"] for job_id, row in rows.items()}
    assert states == {"1": "completed", "2": "preempted", "3": "running"}
    assert not any(row["stale"] for row in rows.values())
    asked = [call["argv"] for call in osmo.calls()[before:]]
    assert asked == [["workflow", "list", "-t", "json", "--count", "1000", "--order", "desc"]]
    text = osmo.run(["jobs"], cwd=project).stdout.splitlines()
    assert text[0].split() == ["JOB", "PLATFORM", "WORKLOAD", "NAME", "ATTEMPT", "STATE", "SUBMITTED", "URL"]
    assert text[1].split()[:6] == [
        "isaaclab-training-3",
        "osmo",
        "isaaclab",
        "isaaclab-training",
        "1",
        "running",
    ]
    # finished jobs are not asked again
    before = len(osmo.calls())
    assert jobs(osmo, project)["isaaclab-training-2"]["state"] == "preempted"
    assert [call["argv"][:2] for call in osmo.calls()[before:]] == [["workflow", "list"]]


def test_jobs_and_download_of_osmo_workflows_stay_light(
    osmo: FakeOsmo, project: Path, tmp_path: Path
) -> None:
    train(osmo, project, "--dataset-url", URL, FAKE_OSMO_CHECKPOINT_FILES=str(checkpoint_files(tmp_path)),
          **ENDS_NOW)  # fmt: skip
    for args in (["jobs"], ["download", "isaaclab-training-1"]):
        result, heavy = heavy_imports_of(args, project, env=osmo.env)
        assert result.returncode == 0, result.stderr
        assert heavy == [], f"{args[0]} imported {heavy}"


def test_jobs_queries_a_workflow_the_listing_does_not_hold(osmo: FakeOsmo, project: Path) -> None:
    """The listing has the user's newest workflows only: another user's (or an older) one is queried."""
    train(osmo, project, **RUNS_ON)
    (osmo.state / "workflows.json").write_text("{}")  # the service lists nothing of this user's
    rows = jobs(osmo, project, FAKE_OSMO_STATUSES="FAILED_PREEMPTED")
    assert rows["isaaclab-training-1"]["state"] == "preempted"
    assert osmo.argvs()[-1] == ["workflow", "query", "isaaclab-training-1", "-t", "json"]


def test_jobs_marks_osmo_workflows_stale_when_osmo_cannot_be_reached(osmo: FakeOsmo, project: Path) -> None:
    train(osmo, project, **RUNS_ON)
    rows = jobs(osmo, project, FAKE_OSMO_EXIT="10")
    row = rows["isaaclab-training-1"]
    assert row["stale"] is True and row["state"] is None
    assert "OSMO server or connection error" in row["stale_reason"]
    result = osmo.run(["jobs"], cwd=project, FAKE_OSMO_EXIT="10")
    assert result.returncode == 0, result.stderr
    assert "(stale)" in result.stdout.splitlines()[1]
    assert "stale = last known state (osmo: OSMO server or connection error" in result.stdout


def test_jobs_does_not_wait_for_an_osmo_that_hangs(osmo: FakeOsmo, project: Path) -> None:
    """The one slow test: core waits 10 s for the platforms, then shows last known states."""
    train(osmo, project, **RUNS_ON)
    result = osmo.run(["jobs", "--output", "json"], cwd=project, FAKE_OSMO_HANG_SECONDS="15")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["stale"] is True and row["stale_reason"] == "no answer within 10 s"


# --- rerun ----------------------------------------------------------------------------------------


def spec_of(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)  # type: ignore[no-any-return]


ARCHIVE_SHOWN = re.compile(r"<inline archive not shown: (\d+) bytes, sha256 ([0-9a-f]{64})>")


def without_archive(spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The spec with its inline archive's contents taken out, and the archive's sha256."""
    digest = None
    for entry in task_of(spec).get("files", []):
        if entry.get("base64"):
            shown = ARCHIVE_SHOWN.fullmatch(entry["contents"])
            raw = None if shown else base64.b64decode(entry["contents"])
            digest = shown.group(2) if shown else hashlib.sha256(raw or b"").hexdigest()
            entry["contents"] = "<archive>"
    return spec, digest


@pytest.mark.parametrize(
    ("args", "env"),
    [([], {}), (["--payload", "dataset", "--dataset-url", URL, "--num-envs", "64"], V64)],
    ids=["inline-6.3", "dataset-6.4"],
)
def test_rerun_renders_the_spec_that_was_submitted(
    osmo: FakeOsmo, project: Path, args: list[str], env: dict[str, str]
) -> None:
    train(osmo, project, *args, **env)
    submitted_spec = osmo.submitted_spec()
    result = osmo.run(["rerun", "isaaclab-training-1", "--dry-run", "--output", "json"], cwd=project, **env)
    assert result.returncode == 0, result.stderr
    rerun = json.loads(result.stdout)
    assert rerun["changes"] == {}
    dry_run = osmo.run(["train", *OSMO, *args, "--dry-run", "--output", "json"], cwd=project, **env)
    assert json.loads(dry_run.stdout)["spec"] == rerun["spec"]
    # The submitted file holds the archive itself where the dry run shows its size and hash.
    assert without_archive(spec_of(rerun["spec"])) == without_archive(submitted_spec)
    assert rerun["job"]["command"] == json.loads(dry_run.stdout)["job"]["command"]


def test_rerun_submits_the_same_workflow_again(osmo: FakeOsmo, project: Path) -> None:
    train(osmo, project, "--num-envs", "64", "--pool", "gpu")
    result = osmo.run(["rerun", "isaaclab-training-1"], cwd=project)
    assert result.returncode == 0, result.stderr
    first, second = osmo.submits()
    assert first["spec_text"] == second["spec_text"]
    assert first["argv"][3:] == second["argv"][3:] == ["-t", "json", "-p", "gpu"]
    assert jobs(osmo, project)["isaaclab-training-2"]["rerun_of"] == "isaaclab-training-1"


# --- download -------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{}, V64], ids=["6.3-dataset", "6.4-url"])
def test_download_brings_back_the_checkpoints_and_the_log(
    osmo: FakeOsmo, project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    written = checkpoint_files(tmp_path)
    train(osmo, project, "--dataset-url", URL, FAKE_OSMO_CHECKPOINT_FILES=str(written), **ENDS_NOW, **env)
    result = osmo.run(["download", "isaaclab-training-1"], cwd=project, **env)
    assert result.returncode == 0, result.stderr
    target = project / "downloads" / "isaaclab-training-1"
    assert files_of(target / "checkpoints") == files_of(written)
    assert (target / "logs" / "isaaclab-training-1.log").read_text() == "[train] step 1\n"
    assert f"outputs in {target}" in result.stdout
    command = next(argv for argv in osmo.argvs() if "download" in argv[:2])
    if env:
        kept = f"{URL}/checkpoints/isaaclab-training/isaaclab-training-1/checkpoints"
        assert command == ["data", "download", kept, str(target / ".osmo-download/checkpoints"), "--resume"]
    else:
        name = "training/isaaclab-training-checkpoints:isaaclab-training-1"
        assert command == ["dataset", "download", name, str(target / ".osmo-download"), "--resume"]


@pytest.mark.parametrize("env", [{}, V64], ids=["6.3-dataset", "6.4-url"])
def test_a_stopped_download_continues_without_fetching_complete_files(
    osmo: FakeOsmo, project: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    written = checkpoint_files(tmp_path)
    train(osmo, project, "--dataset-url", URL, FAKE_OSMO_CHECKPOINT_FILES=str(written), **ENDS_NOW, **env)
    target = tmp_path / "fetched"
    stopped = osmo.run(["download", "isaaclab-training-1", "--to", str(target)], cwd=project,
                       FAKE_OSMO_DOWNLOAD_FAIL_AFTER="1", **env)  # fmt: skip
    assert_one_line_error(stopped, "OSMO server or connection error")
    assert "run `invoke download isaaclab-training-1` again to continue" in stopped.stderr
    assert files_of(target / "checkpoints") == {}, "no half-written file where the checkpoints go"
    result = osmo.run(["download", "isaaclab-training-1", "--to", str(target)], cwd=project, **env)
    assert result.returncode == 0, result.stderr
    assert files_of(target / "checkpoints") == files_of(written)
    first, second = (call for call in osmo.calls() if "download" in call["argv"][:2])
    below = "" if env else "checkpoints/"  # 6.3: the dataset holds the output folder, checkpoints/ and all
    names = sorted(below + name for name in files_of(written))
    assert first["transferred"] == names[:1], "the first file was complete, the second half-written"
    assert second["transferred"] == names[1:], "the complete file was not fetched again"


def test_download_of_a_job_not_submitted_here_says_so(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["download", "someone-elses-3", *OSMO], cwd=project)
    assert_one_line_error(result, "OSMO workflow someone-elses-3 was not submitted from this project")
    assert osmo.osmo_calls() == []


# --- recovery -------------------------------------------------------------------------------------


def resumed_from(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The folder the job's command resumes from, and the task input it names."""
    task = task_of(spec)
    args = task["args"]
    assert args[args.index("--checkpoint-mode") + 1] == "resume"
    folder = args[args.index("--checkpoint-uri") + 1]
    index = int(re.match(r"\{\{input:(\d+)\}\}", folder).group(1))  # type: ignore[union-attr]
    return folder, task["inputs"][index]


def test_a_preempted_attempt_is_resumed_from_its_checkpoint(
    osmo: FakeOsmo, project: Path, tmp_path: Path
) -> None:
    """6.4: OSMO's checkpointing uploaded the folder while attempt 1 ran; attempt 2 mounts it."""
    written = checkpoint_files(tmp_path)
    env = {**V64, "FAKE_OSMO_END_STATUSES": "FAILED_PREEMPTED,COMPLETED",
           "FAKE_OSMO_CHECKPOINT_FILES": str(written), "FAKE_OSMO_LOG_LINES": "1",
           "FAKE_OSMO_LOG_INTERVAL": "0.2"}  # fmt: skip
    result = osmo.run(["train", *OSMO, "--dataset-url", URL, "--retries", "1", "--poll-interval", "0.1"],
                      cwd=project, **env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = f"{URL}/checkpoints/isaaclab-training/isaaclab-training-1/checkpoints"
    assert f"resuming from {kept}" in result.stderr
    first, second = osmo.submits()
    args = task_of(first["rendered"])["args"]
    assert args[args.index("--checkpoint-mode") + 1] == "from-scratch"
    folder, mounted = resumed_from(second["rendered"])
    assert mounted == {"url": kept}
    index = folder.removeprefix("{{input:").removesuffix("}}")
    (started,) = second["started_tasks"]
    assert started["args"][started["args"].index("--checkpoint-uri") + 1] == f"/osmo/data/input/{index}"
    rows = jobs(osmo, project)
    assert rows["isaaclab-training-1"]["state"] == "preempted"
    assert rows["isaaclab-training-2"]["state"] == "completed"
    assert (rows["isaaclab-training-2"]["attempt"], rows["isaaclab-training-2"]["first_attempt"]) == (
        2, "isaaclab-training-1",
    )  # fmt: skip


def test_an_attempt_preempted_before_its_first_upload_passes_on_the_checkpoint_it_resumed_from(
    osmo: FakeOsmo, project: Path, tmp_path: Path
) -> None:
    written = checkpoint_files(tmp_path)
    env = {**V64, "FAKE_OSMO_END_STATUSES": "FAILED_PREEMPTED,FAILED_PREEMPTED,COMPLETED",
           "FAKE_OSMO_CHECKPOINT_FILES": f"{written},", "FAKE_OSMO_LOG_LINES": "1",
           "FAKE_OSMO_LOG_INTERVAL": "0.2"}  # fmt: skip
    result = osmo.run(["train", *OSMO, "--dataset-url", URL, "--retries", "2", "--poll-interval", "0.1"],
                      cwd=project, **env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    kept = f"{URL}/checkpoints/isaaclab-training/isaaclab-training-1/checkpoints"
    _, second, third = osmo.submits()
    assert resumed_from(second["rendered"])[1] == resumed_from(third["rendered"])[1] == {"url": kept}
    assert result.stderr.count(f"resuming from {kept}") == 2


def test_a_preempted_63_attempt_kept_no_checkpoint_and_starts_over(
    osmo: FakeOsmo, project: Path, tmp_path: Path
) -> None:
    """6.3: the checkpoint output is a dataset, uploaded only when the command ends; a preempted pod
    uploads nothing (ctrl.go), and OSMO's checkpointing takes URLs only."""
    env = {"FAKE_OSMO_END_STATUSES": "FAILED_PREEMPTED,COMPLETED",
           "FAKE_OSMO_CHECKPOINT_FILES": str(checkpoint_files(tmp_path)), "FAKE_OSMO_LOG_LINES": "1",
           "FAKE_OSMO_LOG_INTERVAL": "0.2"}  # fmt: skip
    result = osmo.run(["train", *OSMO, "--retries", "1", "--poll-interval", "0.1"], cwd=project, **env)
    assert result.returncode == 0, result.stderr
    assert "starting again" in result.stderr and "no checkpoint" in result.stderr
    first, second = osmo.submits()
    assert first["spec_text"] == second["spec_text"]


def test_an_attempt_that_ran_out_of_memory_is_retried_with_half_the_environments(
    osmo: FakeOsmo, project: Path
) -> None:
    env = {"FAKE_OSMO_END_STATUSES": "FAILED_EVICTED,COMPLETED", "FAKE_OSMO_LOG_LINES": "1",
           "FAKE_OSMO_LOG_INTERVAL": "0.2"}  # fmt: skip
    result = osmo.run(["train", *OSMO, "--num-envs", "512", "--retries", "1", "--on-oom", "halve-envs",
                       "--poll-interval", "0.1"], cwd=project, **env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = (task_of(call["rendered"])["args"] for call in osmo.submits())
    assert first[first.index("--num_envs") + 1] == "512"
    assert second[second.index("--num_envs") + 1] == "256"


def test_a_63_checkpoint_dataset_is_mounted_for_the_job_that_resumes_from_it(
    osmo: FakeOsmo, project: Path, tmp_path: Path
) -> None:
    """The URI train printed for a 6.3 job, given to --checkpoint-uri: the tagged version is an input."""
    written = checkpoint_files(tmp_path)
    train(osmo, project, FAKE_OSMO_CHECKPOINT_FILES=str(written), FAKE_OSMO_END_STATUSES="FAILED", **ENDS_NOW)
    kept = "dataset://training/isaaclab-training-checkpoints:isaaclab-training-1/checkpoints"
    train(osmo, project, "--checkpoint-uri", kept, "--checkpoint-mode", "resume")
    folder, mounted = resumed_from(osmo.submits()[-1]["rendered"])
    assert mounted == {"dataset": {"name": "training/isaaclab-training-checkpoints:isaaclab-training-1"}}
    assert folder == "{{input:0}}/isaaclab-training-checkpoints/checkpoints"
    absent = "dataset://training/isaaclab-training-checkpoints:isaaclab-training-7/checkpoints"
    result = osmo.run(
        ["train", *OSMO, "--checkpoint-uri", absent, "--checkpoint-mode", "resume"], cwd=project
    )
    assert_one_line_error(
        result, "Dataset training/isaaclab-training-checkpoints:isaaclab-training-7 does not exist"
    )

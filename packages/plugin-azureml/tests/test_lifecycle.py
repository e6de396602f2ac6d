"""jobs, rerun, download and recovery of Azure ML jobs, through the CLI against the fake service."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from fake_azure import (
    OUT_OF_MEMORY_ERROR,
    PREEMPTION_ERROR,
    PREEMPTION_WARNING,
    REQUEUED,
    Cli,
    JobScript,
)

from conftest import settings_for, substitute
from robotrain.container import ContainerRoot, available
from robotrain.testing import make_isaaclab_project, run_cli
from robotrain_azureml import service

TRAIN = ("train", "--platform", "azureml", "--compute", "c1", "--max-iterations", "5")
ENDED_PREEMPTED = ("Queued", "Running", "Failed")
WEIGHTS = bytes(range(256)) * 4096  # 1 MiB, so a ranged read can start part-way
CHECKPOINTS = {"iteration-000010/weights.npz": WEIGHTS, "iteration-000010/state.json": b'{"iteration": 10}'}


def job_name(stdout: str) -> str:
    found = re.search(r"job name: (\S+)", stdout)
    assert found, stdout
    return found.group(1)


def submit(cli: Cli, *args: str) -> str:
    result = cli.run(*TRAIN, *args)
    assert result.returncode == 0, result.stderr
    return job_name(result.stdout)


def status(cli: Cli, name: str) -> dict[str, Any]:
    result = cli.run("status", name, "--output", "json")
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def run_to_end(cli: Cli, name: str) -> dict[str, Any]:
    """Read the job's state until the fake has taken it to its end."""
    for _ in range(20):
        answer = status(cli, name)
        if answer["state"] in ("completed", "failed", "canceled", "preempted"):
            return answer
    raise AssertionError(f"job {name} did not end: {answer}")


def jobs(cli: Cli, **env: str) -> list[dict[str, Any]]:
    result = cli.run("jobs", "--output", "json", **env)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


# ---- states: preemption and out of memory --------------------------------------------------------


def test_failed_runs_are_preempted_out_of_memory_or_failed_as_the_run_error_says(in_process: Cli) -> None:
    cli = in_process
    errors = {"preempted": PREEMPTION_ERROR, "oom": OUT_OF_MEMORY_ERROR, "failed": None}
    cli.fake.scripts += [JobScript(("Failed",), error=error) for error in errors.values()]
    names = dict(zip(errors, [submit(cli, "--job-name", kind) for kind in errors], strict=True))
    settings = settings_for(cli.project)
    ended = {kind: [service.status(name, settings) for _ in range(2)][-1] for kind, name in names.items()}

    assert ended["preempted"].state == "preempted" and not ended["preempted"].out_of_memory
    assert ended["preempted"].details["azureml_status"] == "Failed"
    assert "PreemptionError" in ended["preempted"].details["error"]
    assert ended["oom"].state == "failed" and ended["oom"].out_of_memory
    assert "OOMKilled" in ended["oom"].details["error"]
    assert ended["failed"].state == "failed" and not ended["failed"].out_of_memory
    assert ended["failed"].details["error"] == "UserError: training script exited with code 1"
    shown = cli.run("status", names["preempted"])
    assert shown.stdout.strip() == f"azureml job {names['preempted']}: preempted", shown.stderr


def test_a_job_the_service_restarts_after_preemption_is_watched_to_its_end_not_resubmitted(cli: Cli) -> None:
    cli.fake.scripts.append(JobScript(REQUEUED, warnings=(PREEMPTION_WARNING,)))
    result = cli.run(*TRAIN, "--retries", "1", "--poll-interval", "0.1")
    assert result.returncode == 0, result.stderr
    (name,) = cli.fake.jobs()
    said = [line.rsplit(": ", 1)[-1] for line in result.stderr.splitlines() if f"job {name}: " in line]
    assert said == ["queued", "running", "queued", "starting", "running", "completed"]
    assert len(cli.fake.find("PUT", r"/jobs/[^/]+$")) == 1


# ---- jobs ------------------------------------------------------------------------------------------


def test_jobs_lists_azureml_submissions_with_their_states(cli: Cli) -> None:
    endings = [("Completed",), ("Failed",), ("Running",) * 50]
    cli.fake.scripts += [JobScript(states, error=PREEMPTION_ERROR) for states in endings]
    names = [submit(cli, "--job-name", f"run-{n}") for n in range(3)]
    assert [row["state"] for row in jobs(cli)] == ["queued"] * 3  # NotStarted when first read
    rows = jobs(cli)
    states = {row["job_id"]: row["state"] for row in rows}
    assert states == {names[0]: "completed", names[1]: "preempted", names[2]: "running"}
    assert [row["job_id"] for row in rows] == names[::-1]  # newest first
    assert all(row["platform"] == "azureml" and not row["stale"] for row in rows)
    assert [row["name"] for row in rows] == ["run-2", "run-1", "run-0"]
    assert all(row["url"].startswith("https://ml.azure.com/runs/") for row in rows)
    reads = len(cli.fake.find("GET", r"/jobs/[^/]+$"))
    assert [row["state"] for row in jobs(cli)] == ["running", "preempted", "completed"]
    assert len(cli.fake.find("GET", r"/jobs/[^/]+$")) == reads + 1  # finished jobs are not asked again


def refused_url() -> str:
    """An https URL on loopback where nothing listens: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"https://127.0.0.1:{port}"


def test_jobs_marks_azureml_jobs_stale_at_once_when_the_service_is_unreachable(cli: Cli) -> None:
    cli.fake.scripts.append(JobScript(("Queued", "Running") + ("Running",) * 50))
    name = submit(cli)
    assert [row["state"] for row in jobs(cli)] == ["queued"]
    unreachable = {key: value.replace(cli.fake.url, refused_url()) for key, value in cli.env().items()}
    rows = jobs(cli, **unreachable)
    assert [(row["job_id"], row["state"], row["stale"]) for row in rows] == [(name, "queued", True)]
    # The refusal itself, within the 10 s jobs waits (sign-in retries back off by 0.2 s, not 0.8 s):
    assert "Connection refused" in rows[0]["stale_reason"], rows[0]["stale_reason"]
    table = cli.run("jobs", **unreachable)
    assert "queued (stale)" in table.stdout and "stale = last known state (azureml: " in table.stdout


# ---- rerun -------------------------------------------------------------------------------------------


def without_job_name(spec: str, name: str) -> str:
    """The rendered spec with the one thing unique to a submission, its job name, taken out."""
    prefix, spec_hash, suffix = name.rsplit("-", 2)
    assert len(suffix) == 6 and spec.count(name) == 1, spec
    return spec.replace(name, f"{prefix}-{spec_hash}-<unique>")


def test_rerun_renders_the_same_spec_and_submits_the_same_job(cli: Cli) -> None:
    args = ("--job-name", "isaac-run", "--num-envs", "64", "--instance-type", "gpu-large")
    rendered = cli.run(*TRAIN, *args, "--dry-run")
    assert rendered.returncode == 0, rendered.stderr
    original = submit(cli, *args)

    dry = cli.run("rerun", original, "--dry-run", "--output", "json")
    assert dry.returncode == 0, dry.stderr
    answer = json.loads(dry.stdout)
    assert answer["changes"] == {}
    rendered_name = yaml.safe_load(rendered.stdout)["name"]
    rerun_name = yaml.safe_load(answer["spec"])["name"]
    # Job names are unique in a workspace for good, so each submission draws a new one; the part
    # before the random suffix is the job name given and the fingerprint of everything else.
    assert rerun_name != rendered_name and rerun_name.rsplit("-", 1)[0] == rendered_name.rsplit("-", 1)[0]
    assert without_job_name(answer["spec"], rerun_name) == without_job_name(rendered.stdout, rendered_name)

    again = cli.run("rerun", original)
    assert again.returncode == 0, again.stderr
    first, second = cli.fake.find("PUT", r"/jobs/[^/]+$")
    rerun = second.path.rsplit("/", 1)[-1]
    assert rerun != original
    assert json.dumps(second.body).replace(rerun, original) == json.dumps(first.body)
    record = next(row for row in jobs(cli) if row["job_id"] == rerun)
    assert record["rerun_of"] == original


# ---- download and the latest checkpoint ------------------------------------------------------------


def completed_job_with_checkpoints(cli: Cli) -> str:
    cli.fake.scripts.append(JobScript(("Queued", "Running", "Completed"), checkpoints=dict(CHECKPOINTS)))
    name = submit(cli)
    assert run_to_end(cli, name)["state"] == "completed"
    return name


def test_download_brings_back_the_checkpoints_and_the_log(cli: Cli) -> None:
    name = completed_job_with_checkpoints(cli)
    result = cli.run("download", name)
    assert result.returncode == 0, result.stderr
    folder = cli.project / "downloads" / name
    assert f"outputs in {folder}" in result.stdout
    for relative, data in CHECKPOINTS.items():
        assert (folder / "checkpoints" / relative).read_bytes() == data
        assert cli.fake.blobs[cli.fake.output_key(name) + relative] == data
    log = (folder / "logs" / "user_logs" / "std_log.txt").read_text()
    assert log == "step 1 loss 0.90\nstep 2 loss 0.45\ntraining done\n"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoints", "logs"]
    assert not list(folder.rglob("*.part"))


def test_download_resumes_a_partial_file_and_skips_complete_ones(cli: Cli) -> None:
    name = completed_job_with_checkpoints(cli)
    folder = cli.project / "downloads" / name / "checkpoints" / "iteration-000010"
    folder.mkdir(parents=True)
    (folder / "weights.npz.part").write_bytes(WEIGHTS[:300_000])  # a download stopped part-way
    (folder / "state.json").write_bytes(CHECKPOINTS["iteration-000010/state.json"])
    result = cli.run("download", name)
    assert result.returncode == 0, result.stderr
    assert (folder / "weights.npz").read_bytes() == WEIGHTS and not (folder / "weights.npz.part").exists()
    weights = cli.fake.blob_gets(r"/weights\.npz$")
    assert weights and weights[0].headers["x-ms-range"].startswith("bytes=300000-")
    assert cli.fake.blob_gets(r"/state\.json$") == []  # complete: not fetched again

    before = len(cli.fake.blob_gets(r"/iteration-000010/"))
    repeated = cli.run("download", name)
    assert repeated.returncode == 0, repeated.stderr
    assert len(cli.fake.blob_gets(r"/iteration-000010/")) == before


def test_download_of_an_unknown_job_is_one_line(cli: Cli) -> None:
    result = cli.run("download", "no-such-job", "--platform", "azureml")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no-such-job" in lines[0] and "not found" in lines[0], result.stderr


# ---- recovery ----------------------------------------------------------------------------------------


def test_a_preempted_job_is_resubmitted_resuming_from_its_checkpoints(cli: Cli) -> None:
    cli.fake.scripts += [
        JobScript(ENDED_PREEMPTED, error=PREEMPTION_ERROR, checkpoints=dict(CHECKPOINTS)),
        JobScript(("Queued", "Running", "Completed")),
    ]
    result = cli.run(*TRAIN, "--retries", "1", "--poll-interval", "0.1")
    assert result.returncode == 0, result.stderr
    first_put, second_put = cli.fake.find("PUT", r"/jobs/[^/]+$")
    first, second = (put.path.rsplit("/", 1)[-1] for put in (first_put, second_put))
    checkpoint = f"azureml://jobs/{first}/outputs/checkpoints/paths/"
    assert f"{first} preempted; attempt 2 of 2, resuming from {checkpoint}" in result.stderr

    resumed = second_put.body["properties"]
    assert resumed["inputs"]["checkpoint_uri"] == {
        "jobInputType": "uri_folder", "uri": checkpoint, "mode": "ReadOnlyMount",
    }  # fmt: skip
    assert resumed["inputs"]["checkpoint_mode"]["value"] == "resume"
    assert "--checkpoint-uri ${{inputs.checkpoint_uri}}" in resumed["command"]
    assert first_put.body["properties"]["inputs"]["checkpoint_mode"]["value"] == "from-scratch"
    assert "checkpoint_uri" not in first_put.body["properties"]["inputs"]

    rows = {row["job_id"]: row for row in jobs(cli)}
    assert (rows[first]["state"], rows[first]["attempt"]) == ("preempted", 1)
    assert (rows[second]["state"], rows[second]["attempt"], rows[second]["first_attempt"]) == (
        "completed", 2, first,
    )  # fmt: skip


def test_a_preempted_job_that_wrote_no_checkpoint_starts_again(cli: Cli) -> None:
    cli.fake.scripts += [
        JobScript(ENDED_PREEMPTED, error=PREEMPTION_ERROR),
        JobScript(("Running", "Completed")),
    ]
    result = cli.run(*TRAIN, "--retries", "1", "--poll-interval", "0.1")
    assert result.returncode == 0, result.stderr
    assert "preempted; attempt 2 of 2, starting again" in result.stderr
    _, second = cli.fake.find("PUT", r"/jobs/[^/]+$")
    assert second.body["properties"]["inputs"]["checkpoint_mode"]["value"] == "from-scratch"
    assert "checkpoint_uri" not in second.body["properties"]["inputs"]


def test_an_out_of_memory_job_is_retried_with_half_the_environments(cli: Cli) -> None:
    cli.fake.scripts += [
        JobScript(ENDED_PREEMPTED, error=OUT_OF_MEMORY_ERROR),
        JobScript(("Running", "Completed")),
    ]
    result = cli.run(*TRAIN, "--num-envs", "512", "--retries", "1", "--on-oom", "halve-envs",
                     "--poll-interval", "0.1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = cli.fake.find("PUT", r"/jobs/[^/]+$")
    assert first.body["properties"]["inputs"]["num_envs"]["value"] == "512"
    assert second.body["properties"]["inputs"]["num_envs"]["value"] == "256"


def test_on_spot_without_retries_train_says_what_to_pass(cli: Cli) -> None:
    spot = cli.run(*TRAIN)
    assert "--retries 3 resubmits a preempted job" in spot.stdout
    dedicated = cli.run(*TRAIN, "--instance-type", "gpu-large")
    assert dedicated.returncode == 0 and "--retries" not in dedicated.stdout
    help_text = cli.run("train", "--help").stdout
    assert "--retries 3" in " ".join(help_text.split())


@pytest.mark.skipif(not available(), reason="needs Linux, root, unshare and chroot")
def test_the_resumed_attempt_passes_the_mounted_checkpoint_folder_to_the_entry_point(
    cli: Cli, tmp_path: Path
) -> None:
    project = make_isaaclab_project(tmp_path / "project")
    checkpoint = "azureml://jobs/isaaclab-training-1234abcd-5e6f70/outputs/checkpoints/paths/"
    args = ("train", "--platform", "azureml", "--compute", "c1", "--checkpoint-uri", checkpoint,
            "--checkpoint-mode", "resume", "--dry-run")  # fmt: skip
    result = run_cli(args, cwd=project, env=cli.env())
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert document["inputs"]["checkpoint_uri"] == {
        "type": "uri_folder",
        "path": checkpoint,
        "mode": "ro_mount",
    }
    root = ContainerRoot(tmp_path / "root")
    workdir, mounted = "/mnt/azureml/cr/j/exe/wd", "/mnt/azureml/cr/j/inputs/checkpoint_uri"
    shutil.copytree(document["code"], root.path(workdir))
    values = {f"inputs.{k}": str(v) for k, v in document["inputs"].items() if not isinstance(v, dict)}
    values |= {
        "inputs.checkpoint_uri": mounted,
        "outputs.checkpoints": "/mnt/azureml/cr/j/outputs/checkpoints",
    }
    ran = root.run(["bash", "-c", substitute(document["command"], values)],
                   env=document["environment_variables"], cwd=workdir)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (call,) = root.isaaclab_calls()
    assert call[call.index("--checkpoint-uri") + 1] == mounted
    assert call[call.index("--checkpoint-mode") + 1] == "resume"

"""stage-dataset, register-model, status and cancel on azureml, against the local fake."""

from __future__ import annotations

from fake_azure import Cli


def test_stage_dataset_uploads_once_for_unchanged_content(cli: Cli) -> None:
    data = cli.project / "demos"
    data.mkdir()
    (data / "episode_0.parquet").write_bytes(b"frames")
    first = cli.run("stage-dataset", "demos", "--platform", "azureml", "--name", "demos")
    second = cli.run("stage-dataset", "demos", "--platform", "azureml", "--name", "demos")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "dataset demos:1 (uploaded)" in first.stdout
    assert "dataset demos:1 (unchanged, not uploaded again)" in second.stdout
    (put,) = cli.fake.find("PUT", r"/data/demos/versions/1$")
    assert put.body["properties"]["dataType"] == "uri_folder"
    assert put.body["properties"]["tags"]["content_sha256"]
    assert len([r for r in cli.fake.blob_puts() if r.path.endswith("episode_0.parquet")]) == 1


def test_register_same_model_content_twice_makes_one_version(cli: Cli) -> None:
    checkpoint = cli.project / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.pt").write_bytes(b"weights")
    args = ("register-model", "ckpt", "--platform", "azureml", "--name", "anymal")
    first = cli.run(*args, TASK="Isaac-Velocity-Rough-Anymal-C-v0")
    second = cli.run(*args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "model anymal version 1 (registered)" in first.stdout
    assert "model anymal version 1 (already registered, no new version)" in second.stdout
    (put,) = cli.fake.find("PUT", r"/models/anymal/versions/")
    tags = put.body["properties"]["tags"]
    assert tags["framework"] == "skrl" and tags["task"] == "Isaac-Velocity-Rough-Anymal-C-v0"


def test_register_job_output_tags_source_job(cli: Cli) -> None:
    source = "azureml://jobs/isaac-run-1/outputs/checkpoints"
    result = cli.run("register-model", source, "--platform", "azureml", "--name", "anymal")
    assert result.returncode == 0, result.stderr
    (put,) = cli.fake.find("PUT", r"/models/anymal/versions/1$")
    assert put.body["properties"]["tags"]["source_job"] == "isaac-run-1"
    assert put.body["properties"]["modelUri"].startswith("azureml://jobs/isaac-run-1/outputs/checkpoints")
    assert cli.fake.blob_puts() == []


def test_status_and_cancel_by_job_name(cli: Cli) -> None:
    submitted = cli.run("train", "--platform", "azureml", "--compute", "c1", "--job-name", "isaac-run-7")
    assert submitted.returncode == 0, submitted.stderr
    status = cli.run("status", "isaac-run-7", "--platform", "azureml")
    assert status.stdout.strip() == "azureml job isaac-run-7: starting", status.stderr
    cancelled = cli.run("cancel", "isaac-run-7")
    assert cancelled.stdout.strip() == "azureml job isaac-run-7: canceled", cancelled.stderr
    assert cli.fake.find("POST", r"/jobs/isaac-run-7/cancel$")

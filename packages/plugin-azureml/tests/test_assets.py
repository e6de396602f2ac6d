"""stage-dataset and register-model on azureml: immutable versions, ignore rules, the right tags."""

from __future__ import annotations

from fake_azure import Cli

from robotrain.testing import assert_one_line_error

STAGE = ("stage-dataset", "demos", "--platform", "azureml", "--name", "demos")


def dataset(cli: Cli, files: dict[str, bytes]) -> None:
    folder = cli.project / "demos"
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def test_stage_dataset_uploads_once_for_unchanged_content(cli: Cli) -> None:
    dataset(cli, {"episode_0.parquet": b"frames"})
    first = cli.run(*STAGE)
    second = cli.run(*STAGE)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "dataset demos:1 (uploaded)" in first.stdout
    assert "dataset demos:1 (unchanged, not uploaded again)" in second.stdout
    (put,) = cli.fake.find("PUT", r"/data/demos/versions/1$")
    assert put.body["properties"]["dataType"] == "uri_folder"
    assert put.body["properties"]["tags"]["content_sha256"]
    assert len([r for r in cli.fake.blob_puts() if r.path.endswith("episode_0.parquet")]) == 1


def test_files_the_upload_ignores_do_not_change_the_dataset(cli: Cli) -> None:
    dataset(cli, {"episode_0.parquet": b"frames", ".amlignore": b"*.tmp\n"})
    first = cli.run(*STAGE)
    dataset(cli, {"scratch.tmp": b"not part of the dataset"})
    second = cli.run(*STAGE)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "dataset demos:1 (unchanged, not uploaded again)" in second.stdout
    assert not [r for r in cli.fake.blob_puts() if r.path.endswith("scratch.tmp")]


def test_version_numbers_count_archived_versions(cli: Cli) -> None:
    dataset(cli, {"episode_0.parquet": b"frames"})
    assert cli.run(*STAGE).returncode == 0
    cli.fake.archive("/data/demos/versions/1")
    dataset(cli, {"episode_0.parquet": b"other frames"})
    second = cli.run(*STAGE)
    assert second.returncode == 0, second.stderr
    assert "dataset demos:2 (uploaded)" in second.stdout


def test_the_service_refuses_other_content_under_an_existing_version(cli: Cli) -> None:
    created = cli.run("train", "--platform", "azureml", "--assets-only")
    assert created.returncode == 0, created.stderr
    version = "/environments/isaaclab-training-env/versions/2.3.2"
    path = next(p for p in cli.fake.resources if p.endswith(version))
    cli.fake.resources[path]["properties"]["image"] = "example.azurecr.io/other:1"  # another client's version
    clash = cli.run("train", "--platform", "azureml", "--assets-only")
    assert_one_line_error(clash, "exists with image example.azurecr.io/other:1", "--environment-version")
    assert len(cli.fake.find("PUT", r"/environments/")) == 1


def test_local_model_gets_no_tags_of_a_workload_it_did_not_come_from(cli: Cli) -> None:
    checkpoint = cli.project / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.pt").write_bytes(b"weights")
    args = ("register-model", "ckpt", "--platform", "azureml", "--name", "policy")
    first = cli.run(*args)
    second = cli.run(*args)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "model policy version 1 (registered)" in first.stdout
    assert "model policy version 1 (already registered, no new version)" in second.stdout
    (put,) = cli.fake.find("PUT", r"/models/policy/versions/")
    assert set(put.body["properties"]["tags"]) == {"content_sha256"}


def test_job_output_model_takes_the_tags_of_the_job_that_made_it(cli: Cli) -> None:
    submitted = cli.run("train", "--platform", "azureml", "--compute", "c1", "--job-name", "act")
    assert submitted.returncode == 0, submitted.stderr
    (name,) = cli.fake.jobs()
    cli.fake.jobs()[name]["properties"]["tags"] = {"framework": "lerobot", "policy": "act"}
    source = f"azureml://jobs/{name}/outputs/checkpoints"
    result = cli.run("register-model", source, "--platform", "azureml", "--name", "act-aloha")
    assert result.returncode == 0, result.stderr
    (put,) = cli.fake.find("PUT", r"/models/act-aloha/versions/1$")
    properties = put.body["properties"]
    assert properties["tags"]["framework"] == "lerobot" and "task" not in properties["tags"]
    assert properties["tags"]["source_job"] == name
    assert properties["modelUri"].startswith(f"azureml://jobs/{name}/outputs/checkpoints/paths/")
    assert cli.fake.blob_puts() == [] or all("checkpoints" not in r.path for r in cli.fake.blob_puts())


def test_mlflow_run_registers_as_an_mlflow_model(cli: Cli) -> None:
    result = cli.run("register-model", "runs:/0a1b2c/model", "--platform", "azureml", "--name", "anymal")
    assert result.returncode == 0, result.stderr
    (put,) = cli.fake.find("PUT", r"/models/anymal/versions/1$")
    assert put.body["properties"]["modelType"] == "mlflow_model"


def test_secrets_are_refused_and_env_files_never_uploaded(cli: Cli) -> None:
    key = "AKIAIOSFODNN7EXAMPLE"  # pragma: allowlist secret
    dataset(cli, {"episode_0.parquet": b"frames", "notes.py": f'AWS_ACCESS_KEY_ID = "{key}"\n'.encode()})
    refused = cli.run(*STAGE)
    assert key not in assert_one_line_error(refused, "notes.py:1")
    assert not cli.fake.blob_puts() and not cli.fake.find("PUT", r"/data/")
    (cli.project / "demos" / "notes.py").unlink()
    dataset(cli, {".env": b"WANDB_API_KEY=not-for-the-cloud\n"})
    staged = cli.run(*STAGE)
    assert staged.returncode == 0, staged.stderr
    uploaded = [r.path for r in cli.fake.blob_puts()]
    assert any(p.endswith("episode_0.parquet") for p in uploaded)
    assert not any(p.endswith(".env") for p in uploaded)

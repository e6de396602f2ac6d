"""train on azureml through the CLI, against a local fake of Azure's REST API."""

from __future__ import annotations

import json
import re

from fake_azure import WORKSPACE, Cli

from robotrain.testing import assert_one_line_error

WS = (
    f"/subscriptions/{WORKSPACE['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{WORKSPACE['AZURE_RESOURCE_GROUP']}"
    f"/providers/Microsoft.MachineLearningServices/workspaces/{WORKSPACE['AZUREML_WORKSPACE_NAME']}"
)


def test_train_puts_environment_code_and_job(cli: Cli) -> None:
    result = cli.run(
        "train", "--platform", "azureml", "--compute", "k8s-robotics-dev", "--max-iterations", "5"
    )
    assert result.returncode == 0, result.stderr
    job_name = re.search(r"job name: (\S+)", result.stdout).group(1)  # type: ignore[union-attr]
    assert f"https://ml.azure.com/runs/{job_name}?wsid={WS}" in result.stdout

    environment = cli.fake.find("PUT", r"/environments/isaaclab-training-env/versions/2\.3\.2$")
    assert environment[0].body["properties"]["image"] == "nvcr.io/nvidia/isaac-lab:2.3.2"
    assert cli.fake.find("POST", r"/codes/[^/]+/versions/1/startPendingUpload$")
    uploaded = [r.path for r in cli.fake.blob_puts()]
    assert any(path.endswith("/training/scripts/train.sh") for path in uploaded)

    (put,) = cli.fake.find("PUT", rf"/jobs/{job_name}$")
    job = put.body["properties"]
    assert job["computeId"] == f"{WS}/computes/k8s-robotics-dev"
    assert job["identity"] == {"identityType": "Managed"}
    assert job["resources"]["instanceType"] == "gpuspot"
    assert job["experimentName"] == "isaaclab-training"
    assert job["displayName"] == "isaaclab-training"
    assert job["environmentId"] == f"{WS}/environments/isaaclab-training-env/versions/2.3.2"
    assert job["inputs"]["task"] == {"value": "Isaac-Velocity-Rough-Anymal-C-v0", "jobInputType": "literal"}
    assert job["inputs"]["max_iterations"]["value"] == "5"
    assert "--task ${{inputs.task}}" in job["command"]
    entry = "TRAINING_CHECKPOINT_OUTPUT=${{outputs.checkpoints}} bash training/scripts/train.sh"
    assert job["command"].startswith(entry)
    assert job["outputs"]["checkpoints"] == {"mode": "Upload", "jobOutputType": "uri_folder"}
    assert job["environmentVariables"]["ACCEPT_EULA"] == "Y"
    assert job["environmentVariables"]["AZUREML_WORKSPACE_NAME"] == WORKSPACE["AZUREML_WORKSPACE_NAME"]
    # the sign-in host of the selected cloud (here the fake's, from ARM metadata), not the public one
    assert job["environmentVariables"]["AZURE_AUTHORITY_HOST"] == cli.fake.url
    checkpoints = f"checkpoints are kept in azureml://jobs/{job_name}/outputs/checkpoints/paths/"
    assert result.stdout.count(checkpoints) == 1  # printed by core, from the submission's details
    assert job["codeId"].startswith(f"{WS}/codes/")


def test_same_code_twice_is_uploaded_once_and_environment_reused(cli: Cli) -> None:
    first = cli.run("train", "--platform", "azureml", "--compute", "c1")
    second = cli.run("train", "--platform", "azureml", "--compute", "c1")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert len(cli.fake.find("POST", r"/startPendingUpload$")) == 1
    assert len([r for r in cli.fake.blob_puts() if r.path.endswith("train.sh")]) == 1
    assert len(cli.fake.find("PUT", r"/environments/")) <= 1
    jobs = cli.fake.find("PUT", r"/jobs/[^/]+$")
    assert len(jobs) == 2 and jobs[0].path != jobs[1].path
    assert jobs[0].body["properties"]["codeId"] == jobs[1].body["properties"]["codeId"]


def test_dry_run_yaml_loads_with_load_job_and_contacts_nothing(cli: Cli) -> None:
    from azure.ai.ml import load_job

    result = cli.run(
        "train",
        "--platform",
        "azureml",
        "--compute",
        "k8s-robotics-dev",
        "--dry-run",
        "--job-name",
        "isaac-run-1",
        "--display-name",
        "first run",
    )
    assert result.returncode == 0, result.stderr
    assert cli.fake.requests == []
    spec_file = cli.project / "job.yaml"
    spec_file.write_text(result.stdout)
    job = load_job(spec_file)
    assert job.name.startswith("isaac-run-1-") and job.tags["robotrain_fingerprint"] in job.name
    assert job.display_name == "first run"
    assert job.compute == "k8s-robotics-dev"
    assert job.environment == "isaaclab-training-env:2.3.2"
    assert job.identity.type == "managed_identity"
    assert job.resources.instance_type == "gpuspot"
    assert job.outputs["checkpoints"].mode == "upload"
    assert set(job.inputs) >= {"task", "num_envs", "checkpoint_mode", "register_checkpoint"}


def test_reference_to_a_missing_input_is_refused_before_any_request(cli: Cli) -> None:
    result = cli.run("train", "--platform", "azureml", "--compute", "c1", "--task", "${{inputs.nope}}")
    assert_one_line_error(result, "${{inputs.nope}}", "no input 'nope'")
    assert cli.fake.requests == []


def test_missing_workspace_says_where_it_can_come_from(cli: Cli) -> None:
    result = cli.run("train", "--platform", "azureml", "--compute", "c1", AZUREML_WORKSPACE_NAME="")
    assert_one_line_error(result, "no Azure ML workspace", "--workspace-name", "AZUREML_WORKSPACE_NAME")
    assert cli.fake.requests == []


def test_missing_compute_is_refused_before_any_request(cli: Cli) -> None:
    result = cli.run("train", "--platform", "azureml")
    assert_one_line_error(result, "no Azure ML compute", "--compute", "AZUREML_COMPUTE")
    assert cli.fake.requests == []


def test_compute_derived_from_terraform_aks_cluster(cli: Cli) -> None:
    state = cli.project / "infra" / "terraform.tfstate"
    state.parent.mkdir()
    cluster = {"aks_cluster": {"value": {"name": "aks-robotics-dev-001"}}}
    state.write_text(json.dumps({"version": 4, "outputs": cluster}))
    result = cli.run("train", "--platform", "azureml", "--dry-run", "--terraform-dir", "infra")
    assert result.returncode == 0, result.stderr
    assert "compute: azureml:k8s-robotics-dev" in result.stdout


def test_transient_failure_is_retried_and_server_errors_are_one_line(cli: Cli) -> None:
    cli.fake.fail("GET", r"/environments/", 503, "ServiceUnavailable")
    cli.fake.fail("PUT", r"/jobs/", 400, "UserError", times=5)
    result = cli.run("train", "--platform", "azureml", "--compute", "c1")
    assert_one_line_error(result, "Azure ML answered 400", "injected 400 UserError")
    assert len(cli.fake.find("GET", r"/environments/")) == 2
    assert 1 <= len(cli.fake.find("PUT", r"/jobs/")) <= 4


def test_credential_failure_is_one_line(cli: Cli) -> None:
    cli.fake.fail("POST", r"/oauth2/token$", 401, "invalid_client", times=4)
    result = cli.run("train", "--platform", "azureml", "--compute", "c1")
    assert_one_line_error(result, "Azure sign-in failed", "az login")
    assert cli.fake.find("PUT", r"/jobs/") == []


def test_environment_with_another_image_is_an_error_and_assets_only_stops(cli: Cli) -> None:
    created = cli.run("train", "--platform", "azureml", "--assets-only")
    assert created.returncode == 0, created.stderr
    assert "isaaclab-training-env:2.3.2 (created)" in created.stdout
    assert cli.fake.find("PUT", r"/jobs/") == [] and cli.fake.find("POST", r"/startPendingUpload") == []
    clash = cli.run(
        "train",
        "--platform",
        "azureml",
        "--assets-only",
        "--image",
        "nvcr.io/nvidia/isaac-lab:9.9",
        "--environment-version",
        "2.3.2",
    )
    assert_one_line_error(clash, "exists with image nvcr.io/nvidia/isaac-lab:2.3.2", "--environment-version")
    assert len(cli.fake.find("PUT", r"/environments/")) == 1

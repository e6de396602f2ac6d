"""The dry-run YAML is what the SDK would dump, and rendering it imports no heavy SDK."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
import yaml
from fake_azure import Cli

from robotrain.testing import heavy_imports_of
from robotrain_azureml import service, spec
from robotrain_azureml.spec import AzureJob

ISAACLAB = AzureJob(
    name="isaaclab-training-70a98407-2fd57a",
    spec_hash="70a98407",
    display_name="isaaclab-training",
    experiment="isaaclab-training",
    command=(
        "TRAINING_CHECKPOINT_OUTPUT=${{outputs.checkpoints}} bash training/scripts/train.sh "
        "--mode ${{inputs.mode}} --task ${{inputs.task}} --num_envs ${{inputs.num_envs}} --max_iterations ''"
    ),
    code=Path("training-code"),
    environment_name="isaaclab-training-env",
    environment_version="2.3.2",
    image="nvcr.io/nvidia/isaac-lab:2.3.2",
    compute="k8s-robotics-dev",
    instance_type="gpuspot",
    inputs={"mode": "train", "task": "Isaac-Velocity-Rough-Anymal-C-v0", "num_envs": 2048},
    environment_variables={"ACCEPT_EULA": "Y", "AZURE_SUBSCRIPTION_ID": "0", "TRAINING_BACKEND": "skrl"},
    tags={"framework": "skrl", "task": "Isaac-Velocity-Rough-Anymal-C-v0"},
    timeout_seconds=82800,
)
WITH_DATA = AzureJob(
    name="lerobot-act-1",
    spec_hash="edb7c4a7",
    display_name="lerobot act",
    experiment="lerobot-training",
    command="bash train.sh --dataset.root=${{inputs.demos}} --out ${{outputs.policy}} --lr ${{inputs.lr}}",
    code=None,
    environment_name="lerobot-training-env",
    environment_version="1.0.0",
    image="example.azurecr.io/lerobot:1.0.0",
    compute="gpu-cluster",
    instance_type="defaultinstancetype",
    inputs={"lr": "1.5", "seed": 0},
    data_inputs={"demos": "azureml:demos:3", "latest": "azureml:episodes@latest"},
    data_outputs={"policy": "azureml://datastores/blobs/paths/policy/"},
    environment_variables={"MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING": "true", "EMPTY": "", "ANSWER": "yes"},
    secrets={"HF_TOKEN": "hf-token"},
)


ISAACLAB_2_NODES_X_4 = dataclasses.replace(ISAACLAB, instance_count=2, processes_per_node=4)
STARTS_ITS_PROCESSES = dataclasses.replace(ISAACLAB_2_NODES_X_4, launches_processes=True)


@pytest.mark.parametrize(
    "azure_job",
    [ISAACLAB, WITH_DATA, ISAACLAB_2_NODES_X_4, STARTS_ITS_PROCESSES],
    ids=["isaaclab", "data-inputs", "distributed", "starts-its-processes"],
)
def test_job_yaml_is_what_the_sdk_dumps(
    azure_job: AzureJob, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")  # no cloud metadata fetch on SDK import
    if azure_job.code is not None:  # the SDK takes only an existing folder as local code
        code = tmp_path / azure_job.code
        code.mkdir()
        azure_job = dataclasses.replace(azure_job, code=code)
    stream = io.StringIO()
    service.command_node(azure_job)._to_job().dump(stream)
    assert yaml.safe_load(spec.job_yaml(azure_job)) == yaml.safe_load(stream.getvalue())


DRY_RUN = ("train", "--platform", "azureml", "--compute", "k8s-x", "--dry-run")


def test_dry_run_imports_no_heavy_sdk(cli: Cli) -> None:
    result, heavy = heavy_imports_of(DRY_RUN, cwd=cli.project, env=cli.env())
    assert result.returncode == 0, result.stderr
    assert heavy == []
    assert yaml.safe_load(result.stdout)["compute"] == "azureml:k8s-x"
    assert cli.fake.requests == []


def test_probe_sees_a_heavy_import(cli: Cli) -> None:
    result, heavy = heavy_imports_of(DRY_RUN, cwd=cli.project, env=cli.env(), prelude="import azure.identity")
    assert result.returncode == 0, result.stderr
    assert heavy[:1] == ["azure.identity"]

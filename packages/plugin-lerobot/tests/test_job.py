"""The job the lerobot workload builds, seen through `train --dry-run` on the local platform."""

from __future__ import annotations

import json
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain import UserError
from robotrain.common_options import apply_common_options
from robotrain.job import input_variable
from robotrain.plugins import load_plugins
from robotrain.testing import heavy_imports_of, run_cli
from robotrain_lerobot.installs import InstallSet, every_install_set
from robotrain_lerobot.job import build_job

DATASET = "lerobot/aloha_sim_insertion_human"
DryRun = Callable[..., dict[str, Any]]
JobFor = Callable[..., dict[str, Any]]


def train_args(job: dict[str, Any]) -> list[str]:
    """The arguments the job passes to lerobot-train."""
    command: list[str] = job["command"]
    assert command[:2] == ["bash", "training/train_lerobot.sh"]
    return command[2:]


def test_defaults(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET)
    assert train_args(job) == [
        f"--dataset.repo_id={DATASET}",
        "--policy.type=act",
        "--policy.push_to_hub=false",
        "--output_dir=outputs/train",
        "--job_name=lerobot-act-training",
        "--steps=100000",
        "--batch_size=32",
        "--save_freq=5000",
        "--log_freq=200",
        "--seed=1000",
        "--wandb.enable=false",
    ]
    assert job["name"] == "lerobot-act-training"
    assert job["experiment"] == "lerobot-training"
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    venv = project / ".robotrain" / "lerobot-envs" / f"0.3.3-py{python}"
    assert job["image"] == {"uri": f"venv:{venv}", "name": "lerobot-training-env", "version": "0.3.3"}
    assert job["environment"]["LEROBOT_VENV"] == str(venv)
    assert job["environment"]["LEROBOT_VENV_PYTHON"] == sys.executable
    assert job["environment"]["LEROBOT_INSTALL"] == "lerobot==0.3.3"
    assert job["environment"]["LEROBOT_CONSTRAINTS"] == ""
    assert job["resources"] == {"gpu": 1, "cpu": 8, "memory": "48Gi", "storage": "80Gi"}
    assert job["timeout_seconds"] == 12 * 3600
    assert job["environment"]["LEROBOT_VERSION"] == "0.3.3"
    assert job["environment"]["REGISTER_CHECKPOINT"] == "act-lerobot-aloha-sim-insertion-human"
    assert job["checkpoint"]["register_as"] == "act-lerobot-aloha-sim-insertion-human"
    assert job["secrets"] == []


def test_payload_holds_the_entry_point_only(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET)
    archive = project / ".robotrain" / "payloads" / f"{job['payload']['sha256']}.tar.gz"
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        texts = [tar.extractfile(name).read().decode() for name in names]  # type: ignore[union-attr]
    assert names == ["training/lerobot_job.py", "training/train_lerobot.sh"]
    assert not any("{{" in text for text in texts), "OSMO would template {{ in shipped files"
    assert any('os.environ.get("LEROBOT_INSTALL"' in t for t in texts), "the job installs the set it is given"


def test_every_training_option_reaches_lerobot(project: Path, dry_run: DryRun) -> None:
    job = dry_run(
        "--dataset-repo-id", DATASET, "--policy-type", "diffusion", "--training-steps", "500",
        "--batch-size", "8", "--learning-rate", "3e-5", "--lr-warmup-steps", "50",
        "--save-freq", "250", "--log-freq", "10", "--seed", "7", "--num-workers", "2",
        "--output-dir", "/workspace/outputs/train", "--job-name", "my-job",
    )  # fmt: skip
    args = train_args(job)
    for expected in (
        "--policy.type=diffusion", "--steps=500", "--batch_size=8", "--policy.optimizer_lr=3e-05",
        "--policy.scheduler_warmup_steps=50", "--save_freq=250", "--log_freq=10",
        "--seed=7", "--num_workers=2", "--output_dir=/workspace/outputs/train", "--job_name=my-job",
    ):  # fmt: skip
        assert expected in args
    assert not any(a.startswith("--optimizer.") for a in args), "presets overwrite --optimizer.*"
    assert job["name"] == "my-job"


def test_lerobot_06_flags(project: Path, dry_run: DryRun) -> None:
    job = dry_run(
        "--dataset-repo-id", DATASET, "--lerobot-version", "0.6.1", "--image", "my/lerobot:0.6",
        "--policy-type", "pi0_fast", "--eval-freq", "300",
    )  # fmt: skip
    args = train_args(job)
    assert "--policy.type=pi0_fast" in args
    assert not any("eval_freq" in a for a in args), "no simulation environment: simulation eval stays off"
    assert "--dataset.eval_split=0.1" in args and "--eval_steps=300" in args
    assert job["environment"]["LEROBOT_VERSION"] == "0.6.1"
    assert job["environment"]["LEROBOT_INSTALL"] == "lerobot[training,pi]==0.6.1"
    assert job["name"] == "lerobot-pi0-fast-training"


def test_no_val_split(project: Path, dry_run: DryRun) -> None:
    args = train_args(dry_run(
        "--dataset-repo-id", DATASET, "--lerobot-version", "0.6.1", "--image", "i", "--no-val-split"
    ))  # fmt: skip
    assert not any("eval_split" in a or "eval_steps" in a for a in args)


def test_fine_tune_from_a_local_policy(project: Path, dry_run: DryRun) -> None:
    (project / "pretrained").mkdir()
    (project / "pretrained" / "config.json").write_text(json.dumps({"type": "smolvla"}))
    job = dry_run("--dataset-repo-id", DATASET, "--policy-repo-id", "pretrained",
                  "--learning-rate", "1e-4")  # fmt: skip
    args = train_args(job)
    assert f"--policy.path={(project / 'pretrained').resolve()}" in args
    assert not any(a.startswith("--policy.type") for a in args)
    assert "--policy.optimizer_lr=0.0001" in args
    assert job["name"] == "lerobot-smolvla-training"


def test_fine_tune_from_a_hub_policy_of_unknown_type(project: Path, dry_run: DryRun) -> None:
    job = dry_run(
        "--dataset-repo-id", DATASET, "--policy-repo-id", "someone/my_policy", "--policy-type", "smolvla"
    )
    assert "--policy.path=someone/my_policy" in train_args(job)
    assert not any(a.startswith("--policy.type") for a in train_args(job))
    assert job["environment"]["LEROBOT_INSTALL"] == "lerobot[smolvla]==0.3.3", "the type decides the extra"
    assert job["name"] == "lerobot-smolvla-training"


def test_blob_source(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--from-blob", "--storage-account", "acct",
                  "--blob-prefix", "lerobot/aloha")  # fmt: skip
    assert f"--dataset.root=datasets/{DATASET}" in train_args(job)
    environment = job["environment"]
    assert environment["LEROBOT_DATASET_SOURCE"] == "blob"
    assert environment["AZURE_STORAGE_ACCOUNT"] == "acct"
    assert environment["AZURE_STORAGE_CONTAINER"] == "datasets"
    assert environment["BLOB_PREFIX"] == "lerobot/aloha"
    assert environment["LEROBOT_DATASET_ROOT"] == f"datasets/{DATASET}"


def test_staged_dataset_is_a_job_input(project: Path, job_for: JobFor) -> None:
    job = job_for("osmo", dataset_input="aloha-insertion", tracking="none")
    assert job["inputs"] == {"dataset": "aloha-insertion"}
    assert job["environment"]["LEROBOT_DATASET_SOURCE"] == "staged"
    assert job["environment"]["LEROBOT_DATASET_VARIABLE"] == input_variable("dataset")


def test_wandb_tracking_references_its_key(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--tracking", "wandb", "--wandb-project", "p1")
    args = train_args(job)
    assert "--wandb.enable=true" in args and "--wandb.project=p1" in args
    assert job["secrets"] == [{"env": "WANDB_API_KEY", "secret": "wandb", "key": "api_key"}]
    assert "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING" not in job["environment"]


def test_wandb_project_defaults_to_the_experiment(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--tracking", "wandb", "--experiment-name", "exp")
    assert "--wandb.project=exp" in train_args(job)
    assert job["experiment"] == "exp"


def test_mlflow_tracking_on_local_installs_no_mlflow(project: Path, dry_run: DryRun) -> None:
    """The entry point runs on robotrain's interpreter, which has MLflow; LeRobot's environment needs none."""
    job = dry_run("--dataset-repo-id", DATASET, "--tracking", "mlflow")
    assert job["environment"]["LEROBOT_TRACKING"] == "mlflow"
    assert "mlflow" not in job["environment"]["LEROBOT_INSTALL"]
    assert "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING" not in job["environment"]
    assert "--wandb.enable=false" in train_args(job)


def test_no_tracking(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--tracking", "none")
    assert job["environment"]["LEROBOT_TRACKING"] == "none"
    assert job["secrets"] == []


def test_push_to_hub_uses_the_token_reference(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--push-to-hub", "--hub-repo-id", "me/act_aloha")
    args = train_args(job)
    assert "--policy.push_to_hub=true" in args and "--policy.repo_id=me/act_aloha" in args
    assert job["secrets"] == [{"env": "HF_TOKEN", "secret": "hf_token", "key": "token"}]


def test_hf_token_on_request(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--hf-token")
    assert job["secrets"] == [{"env": "HF_TOKEN", "secret": "hf_token", "key": "token"}]
    assert "--policy.push_to_hub=false" in train_args(job)


def test_register_checkpoint_name_and_skip(project: Path, dry_run: DryRun) -> None:
    named = dry_run("--dataset-repo-id", DATASET, "--register-checkpoint", "my-model")
    assert named["environment"]["REGISTER_CHECKPOINT"] == "my-model"
    skipped = dry_run("--dataset-repo-id", DATASET, "--skip-register-checkpoint")
    assert skipped["environment"]["REGISTER_CHECKPOINT"] == ""
    assert skipped["checkpoint"]["register_as"] is None


def test_settings_from_the_project_config(project: Path) -> None:
    (project / "robotrain.toml").write_text(
        'workload = "lerobot"\ndataset-repo-id = "lerobot/pusht"\npolicy-type = "diffusion"\n'
    )
    result = run_cli(["train", "--dry-run", "-o", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    args = train_args(json.loads(result.stdout)["job"])
    assert "--dataset.repo_id=lerobot/pusht" in args and "--policy.type=diffusion" in args


def test_options_show_in_help(project: Path) -> None:
    result = run_cli(["train", "--help"], cwd=project)
    assert result.returncode == 0, result.stderr
    for flag in ("--dataset-repo-id", "--policy-type", "--policy-repo-id", "--training-steps", "--batch-size",
                 "--learning-rate", "--lr-warmup-steps", "--save-freq", "--val-split", "--no-val-split",
                 "--lerobot-version", "--from-blob", "--tracking"):  # fmt: skip
        assert flag in result.stdout


def test_options_explain_the_learning_rate_default(project: Path, dry_run: DryRun) -> None:
    help_text = " ".join(run_cli(["train", "--help"], cwd=project).stdout.split())
    assert "ACT 1e-5" in help_text and "give --learning-rate 1e-4 for the same training" in help_text
    assert not any("optimizer_lr" in a for a in train_args(dry_run("--dataset-repo-id", DATASET)))


def test_container_job_keeps_the_images_torch(project: Path, job_for: JobFor) -> None:
    job = job_for("osmo", mlflow_uri="http://mlflow.example:5000")
    assert job["image"] == {"uri": "pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime",
                            "name": "lerobot-training-env", "version": "1.1.0"}  # fmt: skip
    environment = job["environment"]
    assert environment["LEROBOT_CONSTRAINTS"] == "torch==2.7.1 torchvision==0.22.1"
    assert environment["LEROBOT_INSTALL"].split() == [
        "lerobot==0.3.3",
        "mlflow-skinny==3.15.0",
        "psutil==7.2.2",
        "nvidia-ml-py==13.615.71",
    ]
    assert environment["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert environment["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] == "true"
    assert "LEROBOT_VENV" not in environment


def test_another_image_gets_its_own_environment_version_and_no_constraints(
    project: Path, job_for: JobFor
) -> None:
    job = job_for("osmo", image="my/lerobot:1", tracking="none")
    assert job["image"]["version"].startswith("1.1.0-") and job["image"]["uri"] == "my/lerobot:1"
    assert job["environment"]["LEROBOT_CONSTRAINTS"] == ""


def test_azureml_tracks_to_the_workspace_mlflow(project: Path, job_for: JobFor) -> None:
    job = job_for("azureml", from_blob=True, storage_account="acct")
    install = job["environment"]["LEROBOT_INSTALL"].split()
    assert "azureml-mlflow==1.62.0.post6" in install and "azure-storage-blob==12.27.1" in install
    assert "MLFLOW_TRACKING_URI" not in job["environment"], "Azure ML sets it in the job"


def test_osmo_tracks_to_the_workspace_mlflow_when_the_azure_context_is_known(
    project: Path, job_for: JobFor
) -> None:
    azure = {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg",
             "workspace_name": "mlw"}  # fmt: skip
    environment = job_for("osmo", **azure)["environment"]
    assert environment["LEROBOT_MLFLOW_FROM_WORKSPACE"] == "true"
    assert environment["AZUREML_WORKSPACE_NAME"] == "mlw" and environment["AZURE_RESOURCE_GROUP"] == "rg"
    assert "azureml-mlflow==1.62.0.post6" in environment["LEROBOT_INSTALL"].split()


def test_osmo_mlflow_without_workspace_or_uri_is_refused(project: Path, job_for: JobFor) -> None:
    with pytest.raises(UserError) as refused:
        job_for("osmo", subscription_id="00000000-0000-0000-0000-000000000000")
    message = str(refused.value)
    assert "\n" not in message
    assert (
        "the Azure resource group is needed for MLflow tracking to the Azure ML workspace on OSMO" in message
    )
    assert "or give --mlflow-uri" in message


@pytest.mark.parametrize(
    ("version", "policy", "install"),
    [("0.3.3", "pi0", "lerobot[pi0]==0.3.3 pytest>=8.1"),
     ("0.3.3", "pi0fast", "lerobot[pi0]==0.3.3 scipy>=1.10"),
     ("0.3.3", "reward_classifier", "lerobot[transformers-dep]==0.3.3"),
     ("0.6.1", "pi05", "lerobot[training,pi]==0.6.1"), ("0.6.1", "act", "lerobot[training]==0.6.1")],
)  # fmt: skip
def test_policies_get_their_extras(
    project: Path, version: str, policy: str, install: str, job_for: JobFor
) -> None:
    job = job_for("osmo", lerobot_version=version, policy_type=policy, image="my/image", tracking="none")
    assert job["environment"]["LEROBOT_INSTALL"] == install


def distributed_job(project: Path, **options: Any) -> dict[str, Any]:
    """The job as ``train`` hands it to the platform: built by the workload, then --nodes/--gpus applied."""
    values = {"workload": "lerobot", "platform": "osmo", "dataset_repo_id": DATASET, "tracking": "none",
              "lerobot_version": "0.6.1", "image": "huggingface/lerobot-gpu"} | options  # fmt: skip
    settings = load_plugins().settings(values, start=project)
    return apply_common_options(build_job(settings), settings).to_dict()


def test_several_gpus_on_lerobot_06_launch_their_own_processes(project: Path) -> None:
    job = distributed_job(project, nodes=2, gpus=4)
    assert (job["nodes"], job["processes_per_node"], job["launches_processes"]) == (2, 4, True)
    assert job["resources"]["gpu"] == 4
    assert job["environment"]["LEROBOT_LAUNCHER"] == "accelerate"
    assert job["environment"]["LEROBOT_INSTALL"] == "lerobot[training]==0.6.1", (
        "the extra bringing accelerate"
    )
    assert train_args(job) == train_args(distributed_job(project)), "lerobot-train's arguments do not change"


def test_cpu_only_nodes_launch_their_own_processes_too(project: Path) -> None:
    """Without a GPU LeRobot picks the CPU and accelerate's processes train together over gloo."""
    job = distributed_job(project, nodes=2, gpus=0)
    assert (job["nodes"], job["processes_per_node"], job["launches_processes"]) == (2, 1, True)
    assert job["resources"]["gpu"] == 0


@pytest.mark.parametrize("shape", [{}, {"nodes": 1, "gpus": 1}, {"gpus": 0}])
def test_one_process_runs_lerobot_train_directly(project: Path, shape: dict[str, int]) -> None:
    job = distributed_job(project, **shape)
    assert not job["launches_processes"]
    assert "LEROBOT_LAUNCHER" not in job["environment"]


def test_gated_policies_get_the_hub_token(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--policy-type", "pi0")
    assert job["secrets"] == [{"env": "HF_TOKEN", "secret": "hf_token", "key": "token"}]


def test_lerobot_06_on_local_runs_on_python_312(project: Path, dry_run: DryRun) -> None:
    environment = dry_run("--dataset-repo-id", DATASET, "--lerobot-version", "0.6.1")["environment"]
    assert environment["LEROBOT_VENV"].endswith(("-py3.12", "-py3.13", "-py3.14"))
    import subprocess

    check = "import sys; print(sys.version_info >= (3, 12))"
    found = subprocess.run([environment["LEROBOT_VENV_PYTHON"], "-c", check],
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert found.stdout.strip() == "True"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="robotrain's own Python already suits LeRobot 0.6")
def test_lerobot_06_on_local_without_python_312_says_how_to_get_one(project: Path, tmp_path: Path) -> None:
    env = {"PYENV_ROOT": str(tmp_path / "no-pyenv"), "UV_PYTHON_INSTALL_DIR": str(tmp_path / "no-uv"),
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    result = run_cli(["train", "--dry-run", "--workload", "lerobot", "--dataset-repo-id", DATASET,
                      "--lerobot-version", "0.6.1"], cwd=project, env=env)  # fmt: skip
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "install one (`uv python install 3.12` or `pyenv install 3.12`) or use --lerobot-version 0.3.3"
        )
    )


@pytest.mark.parametrize("platform", ["local", "azureml", "osmo", "another"])
@pytest.mark.parametrize("version", ["0.3.3", "0.6.1"])
def test_every_install_set_a_job_carries_is_resolved_by_the_installs_session(
    project: Path, platform: str, version: str, job_for: JobFor
) -> None:
    options = {"lerobot_version": version, "policy_type": "smolvla", "from_blob": True,
               "storage_account": "a",
               "image": None if version == "0.3.3" else "my/image", "mlflow_uri": None}  # fmt: skip
    if platform in ("osmo", "another"):
        options["mlflow_uri"] = "http://mlflow:5000"
    environment = job_for(platform, **{k: v for k, v in options.items() if v is not None})["environment"]
    carried = InstallSet(
        tuple(environment["LEROBOT_INSTALL"].split()),
        tuple(environment["LEROBOT_CONSTRAINTS"].split()),
        "3.11" if version == "0.3.3" else "3.12",
    )
    assert carried in every_install_set()


def test_mlflow_uri_with_a_password_is_refused(job_for: JobFor) -> None:
    with pytest.raises(UserError) as refused:
        job_for("osmo", mlflow_uri="https://me:hunter2@mlflow.example")
    assert "--mlflow-uri carries a password" in str(refused.value) and "hunter2" not in str(refused.value)


def test_dry_run_and_help_stay_fast(project: Path) -> None:
    """Neither the lerobot options nor building its job import MLflow or the Azure SDK."""
    for args in (
        ["train", "--help"],
        ["train", "--dry-run", "--workload", "lerobot", "--dataset-repo-id", DATASET],
    ):
        result, heavy = heavy_imports_of(args, cwd=project)
        assert result.returncode == 0, result.stderr
        assert heavy == []

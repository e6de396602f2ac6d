"""The job the lerobot workload builds, seen through `train --dry-run` on the local platform."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robotrain.testing import run_cli

DATASET = "lerobot/aloha_sim_insertion_human"
DryRun = Callable[..., dict[str, Any]]


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
    assert job["image"] == {
        "uri": "pytorch/pytorch:2.4.1-cuda12.4-cudnn9-runtime",
        "name": "lerobot-training-env",
        "version": "1.0.0",
    }
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
    assert any('lerobot=={os.environ["LEROBOT_VERSION"]}' in t or "lerobot==" in t for t in texts)


def test_every_training_option_reaches_lerobot(project: Path, dry_run: DryRun) -> None:
    job = dry_run(
        "--dataset-repo-id", DATASET, "--policy-type", "diffusion", "--training-steps", "500",
        "--batch-size", "8", "--learning-rate", "3e-5", "--lr-warmup-steps", "50", "--eval-freq", "100",
        "--save-freq", "250", "--log-freq", "10", "--seed", "7", "--num-workers", "2",
        "--output-dir", "/workspace/outputs/train", "--job-name", "my-job",
    )  # fmt: skip
    args = train_args(job)
    for expected in (
        "--policy.type=diffusion", "--steps=500", "--batch_size=8", "--policy.optimizer_lr=3e-05",
        "--policy.scheduler_warmup_steps=50", "--eval_freq=100", "--save_freq=250", "--log_freq=10",
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
    assert "--env_eval_freq=300" in args and "--eval_freq=300" not in args
    assert "--dataset.eval_split=0.1" in args and "--eval_steps=300" in args
    assert job["environment"]["LEROBOT_VERSION"] == "0.6.1"
    assert job["image"]["uri"] == "my/lerobot:0.6"
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
    job = dry_run("--dataset-repo-id", DATASET, "--policy-repo-id", "someone/my_policy")
    assert "--policy.path=someone/my_policy" in train_args(job)
    assert job["name"] == "lerobot-finetune-training"


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


def test_staged_dataset_is_a_job_input(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--dataset-input", "aloha-insertion")
    assert job["inputs"] == {"dataset": "aloha-insertion"}
    assert job["environment"]["LEROBOT_DATASET_SOURCE"] == "staged"


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


def test_mlflow_tracking_and_system_metrics(project: Path, dry_run: DryRun) -> None:
    job = dry_run("--dataset-repo-id", DATASET, "--tracking", "mlflow")
    assert job["environment"]["LEROBOT_TRACKING"] == "mlflow"
    assert job["environment"]["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] == "true"
    assert "--wandb.enable=false" in train_args(job)
    off = dry_run("--dataset-repo-id", DATASET, "--no-system-metrics")
    assert "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING" not in off["environment"]


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

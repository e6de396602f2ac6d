"""Bad inputs end with one line, a non-zero exit and nothing packed or sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robotrain.testing import assert_one_line_error, run_cli

DATASET = "lerobot/aloha_sim_insertion_human"


def fails(project: Path, *args: str) -> str:
    result = run_cli(["train", "--dry-run", "--workload", "lerobot", *args], cwd=project)
    assert result.returncode == 2
    line = assert_one_line_error(result)
    assert not (project / ".robotrain" / "payloads").exists(), "nothing is packed before validation passes"
    return line


def test_missing_dataset(project: Path) -> None:
    line = fails(project)
    assert (
        "--dataset-repo-id is required for --workload lerobot, e.g. lerobot/aloha_sim_insertion_human" in line
    )


def test_unknown_policy_type_lists_the_known_ones(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--policy-type", "transformer")
    assert "unknown policy type 'transformer' for LeRobot 0.3.3" in line
    assert "act, diffusion, pi0, pi0fast" in line


@pytest.mark.parametrize(
    ("version", "given", "right"), [("0.3.3", "pi0_fast", "pi0fast"), ("0.6.1", "pi0fast", "pi0_fast")]
)
def test_policy_renamed_between_versions(project: Path, version: str, given: str, right: str) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", version, "--image", "i",
                 "--policy-type", given)  # fmt: skip
    assert f"use {right}" in line


def test_policy_gone_in_06(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", "0.6.1", "--image", "i",
                 "--policy-type", "sac")  # fmt: skip
    assert "unknown policy type 'sac' for LeRobot 0.6.1" in line and "xvla" in line


@pytest.mark.parametrize("option", ["--training-steps", "--batch-size", "--save-freq"])
@pytest.mark.parametrize("value", ["-5", "0"])
def test_steps_and_sizes_must_be_positive(project: Path, option: str, value: str) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, option, value)
    assert option in line and "below the minimum of 1" in line


@pytest.mark.parametrize("value", ["1", "1.5", "-0.1"])
def test_val_split_outside_range(project: Path, value: str) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", "0.6.1", "--image", "i",
                 "--val-split", value)  # fmt: skip
    assert "--val-split" in line and "outside [0, 1)" in line


def test_val_split_needs_lerobot_06(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--val-split", "0.2")
    assert "LeRobot 0.3.3 has no validation split" in line


def test_val_split_and_no_val_split(project: Path) -> None:
    assert "contradict" in fails(project, "--dataset-repo-id", DATASET, "--val-split", "0", "--no-val-split")


def test_fine_tune_with_a_different_policy_type(project: Path) -> None:
    (project / "pretrained").mkdir()
    (project / "pretrained" / "config.json").write_text(json.dumps({"type": "diffusion"}))
    line = fails(
        project, "--dataset-repo-id", DATASET, "--policy-repo-id", "pretrained", "--policy-type", "act"
    )
    assert "--policy-type act differs from the type of the pretrained policy" in line
    assert "pretrained (diffusion); drop --policy-type" in line


def test_fine_tune_a_known_hub_policy_with_another_type(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--policy-repo-id", "lerobot/smolvla_base",
                 "--policy-type", "pi0")  # fmt: skip
    assert "(smolvla)" in line


def test_learning_rate_must_be_positive(project: Path) -> None:
    assert "must be positive" in fails(project, "--dataset-repo-id", DATASET, "--learning-rate", "0")


def test_warmup_on_a_policy_without_one(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lr-warmup-steps", "100")
    assert "policy act in LeRobot 0.3.3 has no warm-up" in line


def test_learning_rate_on_a_policy_without_one(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--policy-type", "reward_classifier",
                 "--learning-rate", "1e-3")  # fmt: skip
    assert "policy reward_classifier in LeRobot 0.3.3 has no single learning rate" in line


def test_push_to_hub_needs_a_repo(project: Path) -> None:
    assert "--push-to-hub needs --hub-repo-id" in fails(
        project, "--dataset-repo-id", DATASET, "--push-to-hub"
    )


def test_hub_repo_without_push(project: Path) -> None:
    assert "only used with --push-to-hub" in fails(
        project, "--dataset-repo-id", DATASET, "--hub-repo-id", "a/b"
    )


def test_blob_needs_an_account(project: Path) -> None:
    assert "--from-blob needs --storage-account" in fails(
        project, "--dataset-repo-id", DATASET, "--from-blob"
    )


def test_blob_options_without_blob(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--blob-prefix", "x")
    assert "--blob-prefix is only used with --from-blob" in line


def test_two_data_sources(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--from-blob", "--storage-account", "a",
                 "--dataset-input", "d")  # fmt: skip
    assert "two data sources" in line


def test_unsupported_lerobot_version(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", "0.5.0")
    assert "--lerobot-version" in line and "0.3.3, 0.6.1" in line


def test_bad_tracking(project: Path) -> None:
    assert "mlflow, wandb, none" in fails(project, "--dataset-repo-id", DATASET, "--tracking", "tensorboard")


def test_lerobot_options_refused_for_another_workload(project: Path) -> None:
    result = run_cli(
        ["train", "--dry-run", "--workload", "isaaclab", "--dataset-repo-id", DATASET], cwd=project
    )
    assert "belongs to plugin 'lerobot'" in assert_one_line_error(result)


@pytest.mark.parametrize(("version", "policy"), [("0.3.3", "sac"), ("0.6.1", "gaussian_actor")])
def test_policies_lerobot_train_cannot_train_from_a_dataset(project: Path, version: str, policy: str) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", version, "--policy-type", policy)
    assert f"lerobot-train cannot train policy type {policy!r} from a dataset in LeRobot {version}" in line
    assert "act, diffusion" in line


def test_fine_tune_of_unknown_type_needs_the_policy_type(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--policy-repo-id", "someone/my_policy")
    assert "the type of the pretrained policy someone/my_policy is not known here" in line
    assert "give --policy-type" in line


@pytest.mark.parametrize("version", ["0.3.3", "0.6.1"])
def test_eval_freq_without_a_validation_split(project: Path, version: str) -> None:
    extra = ["--no-val-split"] if version == "0.6.1" else []
    line = fails(project, "--dataset-repo-id", DATASET, "--lerobot-version", version, "--eval-freq", "100",
                 *extra)  # fmt: skip
    assert "--eval-freq does nothing here: LeRobot evaluates in simulation only with a simulation" in line
    assert "--val-split" in line and "drop --eval-freq" in line


def test_mlflow_uri_is_for_platforms_without_their_own(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--mlflow-uri", "http://mlflow:5000")
    assert "--mlflow-uri is for platforms without an MLflow of their own (osmo)" in line


def test_mlflow_uri_needs_mlflow_tracking(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--platform", "local", "--tracking", "none",
                 "--mlflow-uri", "http://mlflow:5000")  # fmt: skip
    assert "--mlflow-uri" in line


def test_several_gpus_on_lerobot_03_are_refused(project: Path) -> None:
    line = fails(project, "--dataset-repo-id", DATASET, "--nodes", "2", "--gpus", "4")
    assert "LeRobot 0.3.3 trains in one process only" in line and "2 node(s) x 4 process(es)" in line
    assert "use --lerobot-version 0.6.1, or --nodes 1 --gpus 1" in line

"""Generated lerobot-train command lines, checked offline by the pinned LeRobot's own config parser.

LeRobot is installed without its heavy dependencies (torch, torchvision): a stand-in
module takes their place at import time, which is all parsing needs. The plugin's nox
session installs LeRobot and sets ROBOTRAIN_REQUIRE_LEROBOT, so there the check cannot
skip; elsewhere it skips when LeRobot is not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from robotrain.plugins import load_plugins
from robotrain_lerobot.command import lerobot_train_args
from robotrain_lerobot.job import request_from_settings
from robotrain_lerobot.versions import SUPPORTED, LeRobotVersion

REQUIRED = os.environ.get("ROBOTRAIN_REQUIRE_LEROBOT", "")
NEEDS_PACKAGE_TO_PARSE = {("0.6.1", "eo1"): "transformers"}
"""Policy configs that import an optional package when built (not installed here: it needs real torch)."""
DATASET = "lerobot/aloha_sim_insertion_human"


def _import_lerobot() -> Any:
    os.environ["HF_HUB_OFFLINE"] = "1"
    spec = importlib.util.spec_from_file_location(
        "torch_stand_in", Path(__file__).with_name("torch_stand_in.py")
    )
    assert spec is not None and spec.loader is not None
    stand_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stand_in)
    if REQUIRED:
        stand_in.install()
        return importlib.import_module("lerobot")
    if importlib.util.find_spec("lerobot") is None:
        pytest.skip(
            "lerobot is not installed; nox -s \"tests(package='plugin-lerobot')\" installs it",
            allow_module_level=True,
        )
    stand_in.install()
    return importlib.import_module("lerobot")


lerobot = _import_lerobot()
INSTALLED: LeRobotVersion = SUPPORTED[lerobot.__version__]
if REQUIRED:
    assert lerobot.__version__ == REQUIRED, f"expected LeRobot {REQUIRED}, found {lerobot.__version__}"
# What lerobot-train imports before parsing: it registers every policy type.
importlib.import_module(
    "lerobot.policies.factory" if INSTALLED.version.startswith("0.3") else "lerobot.policies"
)
parser = importlib.import_module("lerobot.configs.parser")
TrainPipelineConfig = importlib.import_module("lerobot.configs.train").TrainPipelineConfig
PreTrainedConfig = importlib.import_module("lerobot.configs.policies").PreTrainedConfig


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def generated_args(project: Path, **options: Any) -> list[str]:
    """The lerobot-train arguments the plugin generates for these options, via its own settings."""
    values = {"workload": "lerobot", "dataset_repo_id": DATASET, "lerobot_version": INSTALLED.version}
    settings = load_plugins().settings(values | options, start=project)
    return lerobot_train_args(request_from_settings(settings))


def parse_policy(policy_type: str, args: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """``parse``, except for a policy whose config needs an optional package: check that is the only fault."""
    package = NEEDS_PACKAGE_TO_PARSE.get((INSTALLED.version, policy_type))
    if package is None:
        return parse(args, monkeypatch)
    with pytest.raises(BaseException) as failure:
        parse(args, monkeypatch)
    chain, error = [], failure.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any(f"'{package}' is required" in text for text in chain), chain
    pytest.skip(
        f"{policy_type}'s config needs {package} (its LeRobot extra) to build; not installable offline"
    )


def parse(args: list[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """What lerobot-train does with ``args``: LeRobot's parser, then the config's own validation."""
    parsed: list[Any] = []

    def train(cfg: Any) -> None:
        cfg.validate()
        parsed.append(cfg)

    train.__annotations__["cfg"] = TrainPipelineConfig  # LeRobot's parser reads the real class from here
    monkeypatch.setattr(sys, "argv", ["lerobot-train", *args])
    parser.wrap()(train)()
    return parsed[0]


def test_the_installed_lerobot_is_a_supported_pin() -> None:
    assert sorted(PreTrainedConfig.get_known_choices()) == sorted(INSTALLED.policy_types)


def test_multi_gpu_only_where_lerobot_train_runs_under_accelerate() -> None:
    """0.6: lerobot-train builds an ``Accelerator`` and the job's ``training`` extra installs accelerate;
    0.3: lerobot-train uses one torch device, so the plugin refuses several processes."""
    script = "lerobot.scripts.lerobot_train" if INSTALLED.multi_gpu else "lerobot.scripts.train"
    spec = importlib.util.find_spec(script)
    assert spec is not None and spec.origin is not None
    source = Path(spec.origin).read_text(encoding="utf-8")
    assert ("from accelerate import Accelerator" in source) == INSTALLED.multi_gpu
    requires = metadata.requires("lerobot") or []
    brings_accelerate = {r.split(";")[1].strip() for r in requires if r.startswith("lerobot[accelerate-dep]")}
    if INSTALLED.multi_gpu:
        assert any(r.startswith("accelerate") and '"accelerate-dep"' in r for r in requires)
        assert {f'extra == "{extra}"' for extra in INSTALLED.base_extras} <= brings_accelerate


@pytest.mark.parametrize("policy_type", INSTALLED.trainable_policy_types)
def test_every_policy_type(policy_type: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = generated_args(workdir, policy_type=policy_type, training_steps=500, batch_size=4, seed=3)
    cfg = parse_policy(policy_type, args, monkeypatch)
    assert cfg.policy.type == policy_type
    assert (cfg.steps, cfg.batch_size, cfg.seed) == (500, 4, 3)
    assert cfg.dataset.repo_id == DATASET
    assert cfg.policy.push_to_hub is False
    assert cfg.wandb.enable is False


@pytest.mark.parametrize(
    "policy_type",
    [
        p
        for p, fields in INSTALLED.policies.items()
        if fields.learning_rate and p not in INSTALLED.untrainable
    ],
)
def test_learning_rate_lands_where_lerobot_reads_it(
    policy_type: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = INSTALLED.policies[policy_type]
    warmup = {"lr_warmup_steps": 123} if fields.warmup_steps else {}
    args = generated_args(workdir, policy_type=policy_type, learning_rate=3.5e-5, **warmup)
    assert not any(a.startswith("--optimizer.") for a in args), "presets replace --optimizer.* silently"
    cfg = parse_policy(policy_type, args, monkeypatch)
    assert cfg.use_policy_training_preset is True
    assert cfg.policy.optimizer_lr == pytest.approx(3.5e-5)
    assert cfg.optimizer.lr == pytest.approx(3.5e-5), "the preset optimizer takes the policy's rate"
    if warmup:
        assert getattr(cfg.policy, fields.warmup_steps or "") == 123
        assert cfg.scheduler.num_warmup_steps == 123


def test_frequencies_and_output(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = generated_args(workdir, save_freq=900, log_freq=11, num_workers=1,
                          output_dir="runs/out", job_name="job-x")  # fmt: skip
    cfg = parse(args, monkeypatch)
    assert cfg.env is None, "no simulation environment: LeRobot's simulation evaluation never runs"
    assert (cfg.save_freq, cfg.log_freq, cfg.num_workers) == (900, 11, 1)
    assert str(cfg.output_dir) == "runs/out" and cfg.job_name == "job-x"


def test_validation_split(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not INSTALLED.has_val_split:
        pytest.skip(f"LeRobot {INSTALLED.version} has no validation split (the plugin refuses one)")
    cfg = parse(generated_args(workdir, val_split=0.25, save_freq=400), monkeypatch)
    assert cfg.dataset.eval_split == pytest.approx(0.25)
    assert cfg.eval_steps == 400
    every = parse(generated_args(workdir, val_split=0.25, eval_freq=700), monkeypatch)
    assert every.eval_steps == 700
    none = parse(generated_args(workdir, no_val_split=True), monkeypatch)
    assert none.dataset.eval_split == 0


@pytest.mark.parametrize("pretrained_type", ["act", "diffusion"])
def test_fine_tune_from_a_pretrained_policy(
    pretrained_type: str, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = workdir / "pretrained"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"type": pretrained_type}))
    args = generated_args(workdir, policy_repo_id=str(folder), learning_rate=2e-5)
    assert not any(a.startswith("--policy.type") for a in args)
    cfg = parse(args, monkeypatch)
    assert cfg.policy.type == pretrained_type
    assert Path(cfg.policy.pretrained_path) == folder
    assert cfg.policy.optimizer_lr == pytest.approx(2e-5)
    assert cfg.optimizer.lr == pytest.approx(2e-5)
    assert cfg.policy.push_to_hub is False


def test_blob_source_reads_the_downloaded_root(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = generated_args(workdir, from_blob=True, storage_account="acct", blob_prefix="p")
    cfg = parse(args, monkeypatch)
    assert cfg.dataset.root == f"datasets/{DATASET}"
    assert cfg.dataset.repo_id == DATASET


def test_staged_dataset_root_the_entry_point_adds(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = generated_args(workdir, dataset_input="aloha")
    cfg = parse([*args, "--dataset.root=/mnt/inputs/dataset"], monkeypatch)
    assert cfg.dataset.root == "/mnt/inputs/dataset"


@pytest.mark.parametrize("tracking", ["wandb", "mlflow", "none"])
def test_tracking_choices(tracking: str, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse(generated_args(workdir, tracking=tracking, experiment_name="exp-1"), monkeypatch)
    assert cfg.wandb.enable is (tracking == "wandb")
    if tracking == "wandb":
        assert cfg.wandb.project == "exp-1"


def test_push_to_hub(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = parse(generated_args(workdir, push_to_hub=True, hub_repo_id="me/act_aloha"), monkeypatch)
    assert cfg.policy.push_to_hub is True and cfg.policy.repo_id == "me/act_aloha"


def test_the_parser_does_reject_bad_lines(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check has teeth: a flag of another version or a missing value is refused."""
    args = generated_args(workdir)
    other = "--env_eval_freq=5" if INSTALLED.env_eval_flag == "eval_freq" else "--eval_freq=5"
    for bad in ([*args, other], [*args, "--wandb.enable"], [a for a in args if "push_to_hub" not in a]):
        with pytest.raises((SystemExit, ValueError)):
            parse(bad, monkeypatch)

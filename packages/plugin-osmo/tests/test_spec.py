"""The generated OSMO spec: every rule of osmo.md, for isaaclab (inline, dataset) and lerobot."""

from __future__ import annotations

import base64
import gzip
import hashlib
import subprocess
from pathlib import Path

import pytest
import yaml
from osmo_helpers import FakeOsmo, add_random_file, assert_obeys_osmo_rules, task_of

from robotrain import Image, JobSpec, Resources, SecretRef
from robotrain.payload import pack
from robotrain.plugins import load_plugins
from robotrain.testing import assert_one_line_error
from robotrain_osmo.spec import ARCHIVE_PATH, ENTRY_SCRIPT, _SpecDumper
from robotrain_osmo.submit import render

DRY_RUN = ["train", "--platform", "osmo", "--dry-run"]


def dry_run(osmo: FakeOsmo, project: Path, *args: str) -> tuple[dict[str, object], str]:
    result = osmo.run([*DRY_RUN, *args], cwd=project)
    assert result.returncode == 0, result.stderr
    assert osmo.osmo_calls() == [], "a dry run asks osmo its version at most"
    return yaml.safe_load(result.stdout), result.stdout


def test_isaaclab_inline_spec_obeys_every_rule(osmo: FakeOsmo, project: Path) -> None:
    spec, _text = dry_run(osmo, project)
    assert_obeys_osmo_rules(spec)
    workflow = spec["workflow"]
    assert workflow["name"] == "isaaclab-training"
    assert workflow["timeout"] == {"exec_timeout": 23 * 3600}
    assert workflow["resources"] == {"default": {"gpu": 1, "cpu": 30, "memory": "400Gi", "storage": "200Gi"}}
    task = task_of(spec)
    assert task["image"] == "nvcr.io/nvidia/isaac-lab:2.3.2"
    assert task["command"] == ["bash", ENTRY_SCRIPT]
    assert task["args"][:2] == ["bash", "training/scripts/train.sh"]
    assert task["environment"]["ACCEPT_EULA"] == "Y"
    archive = next(f for f in task["files"] if f["path"] == ARCHIVE_PATH)
    assert archive["base64"] is True
    assert not any(len(v) > 1000 for v in task["environment"].values()), "the archive is never in env"


def test_dry_run_shows_the_archive_as_size_hash_and_files_never_its_bytes(
    osmo: FakeOsmo, project: Path
) -> None:
    add_random_file(project, 300 * 1024)
    spec, text = dry_run(osmo, project)
    (payload,) = (project / ".robotrain" / "payloads").glob("*.tar.gz")
    data = payload.read_bytes()
    encoded = base64.b64encode(data).decode()
    assert encoded[:64] not in text and len(text) < 20_000
    archive = next(f for f in task_of(spec)["files"] if f["path"] == ARCHIVE_PATH)
    digest = hashlib.sha256(data).hexdigest()
    assert archive["contents"] == f"<inline archive not shown: {len(data)} bytes, sha256 {digest}>"
    assert f"{len(data):,} bytes, sha256 {digest}" in text
    assert "#   training/scripts/train.sh" in text and "#   training/weights.bin" in text


def test_dry_run_shows_client_version_submit_command_and_checkpoint_place(
    osmo: FakeOsmo, project: Path
) -> None:
    args = ["--pool", "p1", "--timeout", "3600", "--env", "DEBUG_LEVEL=2", "--", "--set-env", "A=1"]
    spec, text = dry_run(osmo, project, *args)
    assert "# OSMO client 6.3 (assumed: no osmo CLI on PATH" not in text  # the stand-in is on PATH
    assert "# OSMO client 6.3 (the installed osmo CLI)" in text
    assert "# submitted as: osmo workflow submit '<spec file>' -t json -p p1 --set-env A=1" in text
    assert (
        "# checkpoints are kept in: dataset://training/isaaclab-training-checkpoints:{{workflow_id}}/checkpoints"
        in text
    )
    assert spec["workflow"]["timeout"] == {"exec_timeout": 3600}
    assert task_of(spec)["environment"]["DEBUG_LEVEL"] == "2"
    assert [argv[0] for argv in osmo.argvs()] in ([], ["version"])


def test_isaaclab_dataset_spec_obeys_every_rule(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run([*DRY_RUN, "--payload", "dataset", "--dataset-name", "my-code"], cwd=project)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)
    assert osmo.osmo_calls() == []
    assert_obeys_osmo_rules(spec)
    task = task_of(spec)
    assert task["inputs"] == [{"dataset": {"name": "training/my-code"}}]
    assert task["environment"]["ROBOTRAIN_CODE_INPUT"] == "{{input:0}}/my-code"
    assert [f["path"] for f in task["files"]] == [ENTRY_SCRIPT]
    assert "staged as training/my-code" in result.stderr


def test_dataset_name_alone_selects_dataset_mode(osmo: FakeOsmo, project: Path) -> None:
    for option in (["--dataset-name", "anymal"], ["--dataset-bucket", "code"]):
        spec, _ = dry_run(osmo, project, *option)
        assert "inputs" in task_of(spec) and len(task_of(spec)["files"]) == 1
    spec, _ = dry_run(osmo, project)
    assert "inputs" not in task_of(spec)


def test_dataset_spec_with_storage_url_is_content_addressed(osmo: FakeOsmo, project: Path) -> None:
    args = ["--payload", "dataset", "--dataset-url", "s3://bucket/robotrain/", "--osmo-client-version", "6.4"]
    spec, _text = dry_run(osmo, project, *args)
    assert_obeys_osmo_rules(spec, (6, 4))
    (item,) = task_of(spec)["inputs"]
    assert item["url"].startswith("s3://bucket/robotrain/training-code/")
    assert len(item["url"].rsplit("/", 1)[1]) == 12
    kept = "s3://bucket/robotrain/checkpoints/isaaclab-training/{{workflow_id}}"
    assert task_of(spec)["outputs"] == [{"url": kept}]
    # uploaded while the task runs too, so a preempted task leaves its checkpoints behind
    assert task_of(spec)["checkpoint"] == [
        {"path": "{{output}}/checkpoints", "url": f"{kept}/checkpoints", "frequency": 600}
    ]


def test_checkpoint_upload_sets_how_often_osmo_uploads_the_checkpoint_folder(
    osmo: FakeOsmo, project: Path
) -> None:
    args = ["--dataset-url", "s3://bucket/robotrain", "--osmo-client-version", "6.4", "--checkpoint-upload"]
    spec, _text = dry_run(osmo, project, *args, "30m")
    assert [entry["frequency"] for entry in task_of(spec)["checkpoint"]] == [1800]
    assert_obeys_osmo_rules(spec, (6, 4))
    result = osmo.run(["train", "--platform", "osmo", "--dry-run", *args, "soon"], cwd=project)
    assert_one_line_error(result, "--checkpoint-upload: 'soon' is not a duration")


def test_scripts_environment_names_set_resources_and_payload_root(osmo: FakeOsmo, project: Path) -> None:
    names = {"OSMO_GPU": "4", "OSMO_CPU": "12", "OSMO_MEMORY": "128Gi", "OSMO_STORAGE": "1Ti",
             "PAYLOAD_ROOT": "/workspace/custom"}  # fmt: skip
    result = osmo.run(DRY_RUN, cwd=project, **names)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)
    assert spec["workflow"]["resources"]["default"] == {
        "gpu": 4,
        "cpu": 12,
        "memory": "128Gi",
        "storage": "1Ti",
    }
    assert "payload_root=/workspace/custom" in task_of(spec)["files"][0]["contents"]
    spec, _ = dry_run(osmo, project, "--payload-root", "/opt/code")
    assert "payload_root=/opt/code" in task_of(spec)["files"][0]["contents"]


def test_help_explains_units_and_credentials(osmo: FakeOsmo, project: Path) -> None:
    text = " ".join(osmo.run(["train", "--help"], cwd=project).stdout.split())
    assert "G/M/T are powers of 10 to Kubernetes: 400G is 400*10^9 bytes" in text
    assert "osmo credential set hf_token --type GENERIC --payload token=..." in text


@pytest.mark.parametrize("script", ["inline", "dataset"])
def test_entry_scripts_are_valid_bash(osmo: FakeOsmo, project: Path, tmp_path: Path, script: str) -> None:
    spec, _ = dry_run(osmo, project, "--payload", script)
    entry = next(f for f in task_of(spec)["files"] if f["path"] == ENTRY_SCRIPT)
    path = tmp_path / "entry.sh"
    path.write_text(entry["contents"])
    checked = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert entry["contents"].rstrip().endswith('exec "$@"')


def test_overrides_reach_the_spec(osmo: FakeOsmo, project: Path) -> None:
    args = ["--gpu", "2", "--cpu", "16", "--memory", "64Gi", "--storage", "1.5Ti", "--timeout", "90m"]
    spec, _text = dry_run(osmo, project, *args)
    assert_obeys_osmo_rules(spec)
    assert spec["workflow"]["resources"]["default"] == {
        "gpu": 2,
        "cpu": 16,
        "memory": "64Gi",
        "storage": "1.5Ti",
    }
    assert spec["workflow"]["timeout"]["exec_timeout"] == 5400


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--memory", "10GB"], ["--memory", "10GB"]),
        (["--storage", "200"], ["--storage"]),
        (["--timeout", "1.5h"], ["--timeout", "1.5h"]),
        (["--timeout", "2H"], ["--timeout", "2H"]),
        (["--timeout", "61d"], ["--timeout", "60d"]),
        (["--priority", "urgent"], ["--priority", "HIGH, NORMAL, LOW"]),
        (["--label", "novalue"], ["--label", "KEY=VALUE"]),
        (["--label", "a=b/c"], ["--label", "Kubernetes label value"]),
        (["--memory", "64GiB"], ["--memory", "write '64Gi'"]),
        ([arg for i in range(17) for arg in ("--label", f"k{i}=v")], ["--label", "16"]),
        (["--job-name", "1-bad-"], ["job name", "--job-name"]),
        (["--gpu", "-1"], ["--gpu"]),
        (["--payload", "zip"], ["--payload", "inline, dataset"]),
        (["--dataset-url", "ftp://host/x"], ["--dataset-url"]),
        (["--task", "{{ evil }}"], ["template syntax"]),
    ],
)
def test_bad_values_are_refused_before_anything_is_sent(
    osmo: FakeOsmo, project: Path, args: list[str], fragments: list[str]
) -> None:
    for command in (DRY_RUN, ["train", "--platform", "osmo", "--osmo-client-version", "6.4"]):
        result = osmo.run([*command, *args], cwd=project)
        assert_one_line_error(result, *fragments)
    assert osmo.osmo_calls() == []


def test_osmo_options_are_refused_on_other_platforms(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["train", "--dry-run", "--platform", "local", "--pool", "gpu"], cwd=project)
    assert_one_line_error(result, "--pool", "osmo")


def test_archive_just_under_1_mib_goes_inline(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 1024 * 1024 - 4096)
    spec, _ = dry_run(osmo, project)
    assert_obeys_osmo_rules(spec)
    assert any(f["path"] == ARCHIVE_PATH for f in task_of(spec)["files"]), "the real limit is decoded bytes"


def test_2_mb_archive_is_refused_inline_naming_dataset(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 2 * 1024 * 1024)
    for command in (DRY_RUN, ["train", "--platform", "osmo"]):
        assert_one_line_error(osmo.run([*command, "--payload", "inline"], cwd=project), "--payload dataset")
    assert osmo.osmo_calls() == []


def test_2_mb_archive_goes_by_dataset_without_the_option(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 2 * 1024 * 1024)
    spec, _text = dry_run(osmo, project)
    assert_obeys_osmo_rules(spec)
    assert task_of(spec)["inputs"] == [{"dataset": {"name": "training/training-code"}}]


def lerobot_job(tmp_path: Path, with_code: bool) -> JobSpec:
    """A job shaped like the lerobot workload's (the plugin is not installed in this session)."""
    code = tmp_path / "code"
    (code / "scripts").mkdir(parents=True)
    (code / "scripts" / "train.sh").write_text('lerobot-train "$@"\n')
    return JobSpec(
        workload="lerobot",
        name="lerobot-act-training",
        image=Image("pytorch/pytorch:2.4.1-cuda12.4-cudnn9-runtime", "lerobot-training-env", "1.0.0"),
        command=(
            "lerobot-train",
            "--dataset.repo_id=lerobot/aloha_sim_insertion_human",
            "--policy.type=act",
            "--policy.push_to_hub=false",
            "--output_dir=/workspace/outputs/train",
        ),
        experiment="lerobot-training",
        environment={"WANDB_PROJECT": "lerobot-training", "HF_HUB_DISABLE_TELEMETRY": "1"},
        secrets=(SecretRef("HF_TOKEN", "hf_token", "token"), SecretRef("WANDB_API_KEY", "wandb", "api_key")),
        resources=Resources(gpu=1, cpu=8, memory="48Gi", storage="80Gi"),
        payload=pack({"training": code}, tmp_path / "payloads") if with_code else None,
        timeout_seconds=12 * 3600,
    )


@pytest.mark.parametrize("with_code", [False, True])
def test_lerobot_spec_obeys_every_rule(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch, with_code: bool
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_plantedSecretValue123")
    monkeypatch.setenv("WANDB_API_KEY", "wandb-planted-secret-456")
    settings = load_plugins().settings({"platform": "osmo"}, start=project)
    text = render(lerobot_job(tmp_path, with_code), settings)
    spec = yaml.safe_load(text)
    assert_obeys_osmo_rules(spec)
    assert spec["workflow"]["timeout"] == {"exec_timeout": 12 * 3600}
    assert "# credential hf_token must exist in OSMO with key(s) token: osmo credential set hf_token" in text
    assert spec["workflow"]["resources"]["default"] == {
        "gpu": 1,
        "cpu": 8,
        "memory": "48Gi",
        "storage": "80Gi",
    }
    task = task_of(spec)
    assert task["credentials"] == {"hf_token": {"HF_TOKEN": "token"}, "wandb": {"WANDB_API_KEY": "api_key"}}
    assert "hf_plantedSecretValue123" not in text and "wandb-planted-secret-456" not in text
    if with_code:
        assert task["command"] == ["bash", ENTRY_SCRIPT]
        assert "payload_root=/workspace/lerobot_payload" in task["files"][0]["contents"]
    else:
        assert task["command"][0] == "lerobot-train" and "files" not in task


def test_submitted_archive_bytes_round_trip(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 700 * 1024)
    result = osmo.run(["train", "--platform", "osmo"], cwd=project)
    assert result.returncode == 0, result.stderr
    archive = next(f for f in task_of(osmo.submitted_spec())["files"] if f["path"] == ARCHIVE_PATH)
    data = base64.b64decode(archive["contents"], validate=True)
    assert gzip.decompress(data)
    payloads = list((project / ".robotrain" / "payloads").glob("*.tar.gz"))
    assert [p.read_bytes() for p in payloads] == [data]


def test_yaml_is_written_by_libyaml_when_present() -> None:
    assert yaml.__with_libyaml__, (
        "PyYAML without libyaml: the spec is written by the slow pure-Python emitter"
    )
    assert issubclass(_SpecDumper, yaml.CSafeDumper)

"""Submitting through the CLI to the stand-in ``osmo``: argv, the submitted spec, errors, secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from osmo_helpers import FakeOsmo, add_random_file, assert_obeys_osmo_rules, lerobot_job, task_of

from robotrain import UserError
from robotrain.plugins import load_plugins
from robotrain.testing import assert_one_line_error
from robotrain_osmo import submit

TRAIN = ["train", "--platform", "osmo"]


def submit_argvs(osmo: FakeOsmo) -> list[list[str]]:
    return [argv for argv in osmo.argvs() if argv[:2] == ["workflow", "submit"]]


def test_submit_sends_the_spec_first_with_options_and_extra_args(osmo: FakeOsmo, project: Path) -> None:
    args = ["--pool", "gpu-pool", "--priority", "high", "--label", "team=robots", "--label", "run=1",
            "--dataset-url", "s3://bucket/robotrain"]  # fmt: skip
    result = osmo.run([*TRAIN, *args, "--output", "json", "--", "--set-env", "DEBUG=1"], cwd=project,
                      FAKE_OSMO_VERSION="6.4.0")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (argv,) = submit_argvs(osmo)
    spec_path = Path(argv[2])
    assert spec_path.parent == project / ".robotrain" / "osmo" and spec_path.suffix == ".yaml"
    assert argv[3:] == ["-t", "json", "-p", "gpu-pool", "--priority", "HIGH", "--label", "team=robots",
                        "--label", "run=1", "--set-env", "DEBUG=1"]  # fmt: skip
    record = json.loads(result.stdout)
    assert record["job_id"] == "isaaclab-training-1"
    assert record["url"] == "https://osmo.example.com/workflows/isaaclab-training-1"
    assert record["details"]["logs"] == "https://osmo.example.com/api/workflow/isaaclab-training-1/logs"
    checkpoints = "s3://bucket/robotrain/checkpoints/isaaclab-training/isaaclab-training-1/checkpoints"
    assert record["details"]["checkpoints"] == checkpoints
    assert osmo.submitted_spec() == yaml.safe_load(spec_path.read_text())


def test_submit_prints_the_workflow_id_and_url(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(TRAIN, cwd=project)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[0]
        == "osmo job isaaclab-training-1  https://osmo.example.com/workflows/isaaclab-training-1"
    )
    spec = osmo.submitted_spec()
    assert_obeys_osmo_rules(spec)
    assert spec["workflow"]["timeout"]["exec_timeout"] == 23 * 3600


def test_train_declares_and_prints_where_checkpoints_are_kept(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(TRAIN, cwd=project)
    assert result.returncode == 0, result.stderr
    task = task_of(osmo.submitted_spec())
    assert task["environment"]["TRAINING_CHECKPOINT_OUTPUT"] == "{{output}}/checkpoints"
    assert task["outputs"] == [
        {"dataset": {"name": "training/isaaclab-training-checkpoints:{{workflow_id}}"}}
    ]
    assert "checkpoint" not in task, (
        "6.3 keeps checkpoints in a dataset; OSMO's checkpointing takes URLs only"
    )
    assert "osmo job isaaclab-training-1" in result.stdout
    kept = "dataset://training/isaaclab-training-checkpoints:isaaclab-training-1/checkpoints"
    assert f"checkpoints are kept in {kept}" in result.stdout


def test_600_kb_archive_submits_inline(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 600 * 1024)
    result = osmo.run([*TRAIN, "--payload", "inline"], cwd=project)
    assert result.returncode == 0, result.stderr
    task = task_of(osmo.submitted_spec())
    assert any(f.get("base64") is True and len(f["contents"]) > 600 * 1024 for f in task["files"])
    assert [a[0] for a in osmo.argvs()] == ["version", "workflow"], "inline needs no staging"


def test_2_mb_archive_is_refused_inline(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 2 * 1024 * 1024)
    assert_one_line_error(
        osmo.run([*TRAIN, "--payload", "inline"], cwd=project), "--payload dataset", "1,048,576 bytes"
    )
    assert osmo.calls() == []


def test_dataset_payload_stages_then_references_the_version(osmo: FakeOsmo, project: Path) -> None:
    (project / "src" / "training" / ".env").write_text("HF_TOKEN=hf_never_uploaded_999\n")
    args = [*TRAIN, "--payload", "dataset", "--dataset-bucket", "code", "--dataset-name", "anymal"]
    result = osmo.run(args, cwd=project)
    assert result.returncode == 0, result.stderr
    argvs = osmo.argvs()
    assert argvs[0] == ["version", "-t", "json"]
    assert argvs[1][:3] == ["dataset", "upload", "code/anymal"]
    assert argvs[2] == ["dataset", "info", "code/anymal", "-t", "json"]
    assert argvs[3][:2] == ["workflow", "submit"]
    upload = osmo.calls()[1]
    assert "training/scripts/train.sh" in upload["uploaded_files"]
    assert not any(name.endswith(".env") for name in upload["uploaded_files"])
    spec = osmo.submitted_spec()
    assert_obeys_osmo_rules(spec)
    assert task_of(spec)["inputs"] == [{"dataset": {"name": "code/anymal:1"}}]


def test_unchanged_code_is_not_uploaded_again(osmo: FakeOsmo, project: Path) -> None:
    for _ in range(2):
        assert osmo.run([*TRAIN, "--payload", "dataset"], cwd=project).returncode == 0
    uploads = [a for a in osmo.argvs() if a[:2] == ["dataset", "upload"]]
    assert len(uploads) == 1
    assert task_of(osmo.submitted_spec())["inputs"] == [{"dataset": {"name": "training/training-code:1"}}]
    (project / "src" / "training" / "new.py").write_text("print('changed')\n")
    assert osmo.run([*TRAIN, "--payload", "dataset"], cwd=project).returncode == 0
    assert task_of(osmo.submitted_spec())["inputs"] == [{"dataset": {"name": "training/training-code:2"}}]


def test_2_mb_archive_goes_by_dataset_when_not_told(osmo: FakeOsmo, project: Path) -> None:
    add_random_file(project, 2 * 1024 * 1024)
    assert osmo.run(TRAIN, cwd=project).returncode == 0
    assert any(a[:2] == ["dataset", "upload"] for a in osmo.argvs())
    task = task_of(osmo.submitted_spec())
    assert all("base64" not in f for f in task["files"])


def test_osmo_6_4_uploads_data_under_the_storage_url(osmo: FakeOsmo, project: Path) -> None:
    args = [*TRAIN, "--payload", "dataset", "--dataset-url", "s3://bucket/robotrain"]
    result = osmo.run(args, cwd=project, FAKE_OSMO_VERSION="6.4.0")
    assert result.returncode == 0, result.stderr
    (upload,) = [a for a in osmo.argvs() if a[0] == "data"]
    assert upload[:2] == ["data", "upload"] and upload[2].startswith("s3://bucket/robotrain/training-code/")
    spec = osmo.submitted_spec()
    assert_obeys_osmo_rules(spec)
    assert task_of(spec)["inputs"] == [{"url": upload[2]}]


def test_osmo_6_4_without_a_storage_url_is_one_line(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run([*TRAIN, "--payload", "dataset"], cwd=project, FAKE_OSMO_VERSION="6.4.1")
    assert_one_line_error(result, "--dataset-url")
    assert submit_argvs(osmo) == []


TEMPLATE = """\
workflow:
  name: isaaclab-dataset-training
  timeout:
    exec_timeout: 23h
  resources:
    default:
      gpu: {{ gpu }}
      cpu: {{ cpu }}
      memory: "{{ memory }}"
      storage: "{{ storage }}"
  tasks:
  - name: isaac-training
    image: "{{ image }}"
    command: [/bin/bash, /tmp/entry.sh]
    environment:
      TASK: "{{ task }}"
      NUM_ENVS: "{{ num_envs }}"
      MAX_ITERATIONS: "{{ max_iterations }}"
      TRAINING_ROOT: "{{input:0}}/{{ dataset_name }}/training"
      AZURE_RESOURCE_GROUP: "{{ azure_resource_group }}"
      CHECKPOINT_MODE: "{{ checkpoint_mode }}"
      REGISTER_CHECKPOINT: "{{ register_checkpoint }}"
      TRAINING_BACKEND: "{{ training_backend }}"
      PAYLOAD_ROOT: "{{ payload_root }}"
    inputs:
    - dataset:
        name: "{{ dataset_bucket }}/{{ dataset_name }}"
        localpath: "{{ training_localpath }}"
    files:
    - path: /tmp/entry.sh
      contents: |
        bash "$TRAINING_ROOT/scripts/train.sh" --task "$TASK"
default-values:
  max_iterations: ""
  azure_resource_group: ""
"""


def test_user_template_gets_the_script_variables(osmo: FakeOsmo, project: Path) -> None:
    template = project / "workflows" / "train-dataset.yaml"
    template.parent.mkdir()
    template.write_text(TEMPLATE)
    args = [
        *TRAIN,
        "--workflow",
        "workflows/train-dataset.yaml",
        "--task",
        "Isaac-Cartpole-v0",
        "--pool",
        "p1",
    ]
    result = osmo.run(args, cwd=project, AZURE_RESOURCE_GROUP="rg-robotics")
    assert result.returncode == 0, result.stderr
    (argv,) = submit_argvs(osmo)
    assert argv[:7] == ["workflow", "submit", str(template), "-t", "json", "-p", "p1"]
    assert argv[7] == "--set-string"
    values = dict(pair.split("=", 1) for pair in argv[8:])
    assert values | {"training_localpath": "x"} == {
        "image": "nvcr.io/nvidia/isaac-lab:2.3.2", "payload_root": "/workspace/isaac_payload",
        "checkpoint_mode": "from-scratch", "register_checkpoint": "isaac-cartpole-v0",
        "training_backend": "skrl", "dataset_bucket": "training", "dataset_name": "training-code",
        "gpu": "1", "cpu": "30", "memory": "400Gi", "storage": "200Gi", "task": "Isaac-Cartpole-v0",
        "num_envs": "2048", "run_azure_smoke_test": "0", "azure_resource_group": "rg-robotics",
        "training_localpath": "x",
    }  # fmt: skip
    call = osmo.submits()[-1]
    assert call["localpath_uploads"] == [["scripts/train.sh"]]
    environment = task_of(call["rendered"])["environment"]
    assert environment["TASK"] == "Isaac-Cartpole-v0" and environment["AZURE_RESOURCE_GROUP"] == "rg-robotics"
    assert json.loads(json.dumps(call["rendered"]["workflow"]["resources"]))["default"]["gpu"] == 1


def test_user_template_dry_run_renders_it_like_osmo(osmo: FakeOsmo, project: Path) -> None:
    (project / "wf.yaml").write_text(TEMPLATE)
    result = osmo.run([*TRAIN, "--workflow", "wf.yaml", "--dry-run"], cwd=project)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    environment = task_of(rendered)["environment"]
    assert environment["TASK"] == "Isaac-Velocity-Rough-Anymal-C-v0"
    assert environment["TRAINING_ROOT"] == "{{input:0}}/training-code/training", "OSMO's tokens stay"
    assert f"# submitted as: osmo workflow submit {project / 'wf.yaml'} -t json --set-string" in result.stdout
    assert osmo.osmo_calls() == []


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        (TEMPLATE.replace("{{ task }}", "{{ tsak }}"), "'tsak' is undefined"),
        (TEMPLATE.replace("  tasks:", "  tasks: [oops"), "not valid YAML"),
    ],
)
def test_user_template_mistakes_are_one_line(
    osmo: FakeOsmo, project: Path, template: str, fragment: str
) -> None:
    (project / "wf.yaml").write_text(template)
    for extra in (["--dry-run"], []):
        assert_one_line_error(
            osmo.run([*TRAIN, "--workflow", "wf.yaml", *extra], cwd=project), "wf.yaml", fragment
        )
    assert osmo.osmo_calls() == []


def test_template_expecting_the_archive_gets_it_when_it_fits(osmo: FakeOsmo, project: Path) -> None:
    template = TEMPLATE.replace(
        '      TASK: "{{ task }}"', '      TASK: "{{ task }}"\n      ARCHIVE: "{{ encoded_archive }}"'
    )
    (project / "wf.yaml").write_text(template)
    dry = osmo.run([*TRAIN, "--workflow", "wf.yaml", "--dry-run"], cwd=project)
    assert dry.returncode == 0, dry.stderr
    assert task_of(yaml.safe_load(dry.stdout))["environment"]["ARCHIVE"].startswith(
        "<inline archive not shown"
    )
    assert osmo.run([*TRAIN, "--workflow", "wf.yaml"], cwd=project).returncode == 0
    (payload,) = (project / ".robotrain" / "payloads").glob("*.tar.gz")
    archive = task_of(osmo.submits()[-1]["rendered"])["environment"]["ARCHIVE"]
    assert base64.b64decode(archive) == payload.read_bytes()
    add_random_file(project, 200 * 1024)
    result = osmo.run([*TRAIN, "--workflow", "wf.yaml"], cwd=project)
    assert_one_line_error(result, "encoded_archive", "dataset-style template", "generated spec")
    assert len(osmo.submits()) == 1


def test_missing_credential_is_reported_before_submitting(
    osmo: FakeOsmo, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**osmo.env, "FAKE_OSMO_CREDENTIALS": "hf_token"}.items():
        monkeypatch.setenv(key, value)
    settings = load_plugins().settings({"platform": "osmo"}, start=project)
    job = lerobot_job(settings.state_dir, with_input=False)
    with pytest.raises(UserError) as raised:
        submit.submit(job, settings)
    assert str(raised.value) == (
        "OSMO credential wandb does not exist (wandb missing); create it with "
        "`osmo credential set wandb --type GENERIC --payload api_key=...` and submit again"
    )
    assert [argv[:2] for argv in osmo.argvs()] == [["version", "-t"], ["credential", "--format-type"]]
    monkeypatch.setenv("FAKE_OSMO_CREDENTIALS", "hf_token,wandb")
    assert submit.submit(job, settings).job_id == "lerobot-act-training-1"


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"FAKE_OSMO_EXIT": "10"}, ["OSMO server or connection error"]),
        ({"FAKE_OSMO_EXIT": "1"}, ["OSMO could not run `osmo workflow submit`", "rejected"]),
        ({"FAKE_OSMO_EXIT": "75"}, ["rate limited by OSMO", "try again"]),
    ],
)
def test_osmo_failures_are_one_line(
    osmo: FakeOsmo, project: Path, env: dict[str, str], fragments: list[str]
) -> None:
    assert_one_line_error(osmo.run(TRAIN, cwd=project, **env), *fragments)


def test_not_logged_in_is_one_line(osmo: FakeOsmo, project: Path) -> None:
    (Path(osmo.env["OSMO_CONFIG_FILE_DIR"]) / "login.yaml").unlink()
    assert_one_line_error(osmo.run(TRAIN, cwd=project), "not logged in to OSMO", "osmo login")
    assert [(call["argv"][0], call["exit"]) for call in osmo.calls()] == [("version", 0), ("workflow", 2)]


def test_cli_not_installed_is_one_line(osmo: FakeOsmo, project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = osmo.run(TRAIN, cwd=project, PATH=str(empty))
    assert_one_line_error(result, "osmo CLI not found on PATH", "install")


def test_rate_limiting_is_retried_a_bounded_number_of_times(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(TRAIN, cwd=project, FAKE_OSMO_EXIT="75", FAKE_OSMO_EXIT_TIMES="2")
    assert result.returncode == 0, result.stderr
    assert [call["exit"] for call in osmo.osmo_calls_records()] == [75, 75, 0]
    osmo.run(TRAIN, cwd=project, FAKE_OSMO_EXIT="75")
    assert [call["exit"] for call in osmo.osmo_calls_records()][3:] == [75, 75, 75, 75]


TFSTATE = {
    "version": 4,
    "outputs": {
        "resource_group": {"value": {"name": "rg-visible"}, "type": "object"},
        "azureml_workspace": {"value": {"name": "mlw-sensitive-7731"}, "type": "object", "sensitive": True},
    },
}
PLANTED = {"HF_TOKEN": "hf_plantedSecretValue123", "WANDB_API_KEY": "wandb-planted-secret-456"}


@pytest.mark.parametrize("extra", [[], ["--payload", "dataset"], ["--workflow", "wf.yaml"]])
def test_planted_secrets_never_leave(osmo: FakeOsmo, project: Path, extra: list[str]) -> None:
    (project / "infra").mkdir()
    (project / "infra" / "terraform.tfstate").write_text(json.dumps(TFSTATE))
    (project / "wf.yaml").write_text(TEMPLATE)
    args = [*TRAIN, "--terraform-dir", "infra", *extra]
    outputs = [osmo.run([*args, "--dry-run"], cwd=project, **PLANTED), osmo.run(args, cwd=project, **PLANTED)]
    assert all(r.returncode == 0 for r in outputs), [r.stderr for r in outputs]
    seen = "".join(r.stdout + r.stderr for r in outputs) + json.dumps(osmo.calls())
    seen += "".join(p.read_text() for p in (project / ".robotrain" / "osmo").glob("*.yaml"))
    assert "rg-visible" in seen, "the non-sensitive output does travel"
    for secret in [*PLANTED.values(), "mlw-sensitive-7731"]:
        assert secret not in seen

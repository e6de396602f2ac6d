"""The stand-in ``osmo`` refuses what OSMO refuses (per version) and accepts what it accepts.

Hand-written specs, submitted straight to the stand-in: if it were lenient, the other tests would prove
nothing. Each expectation comes from the OSMO source cited in osmo_spec_rules.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from osmo_helpers import FakeOsmo
from osmo_spec_rules import spec_problems

GOOD = """\
workflow:
  name: {name}
  timeout:
    exec_timeout: {timeout}
  resources:
    default:
      memory: {memory}
  tasks:
  - name: train
    image: ubuntu:24.04
    command: [bash, /workspace/run.sh]
    environment:
      OUT: "{{{{output}}}}/checkpoints"
    {extra}
    files:
    - path: /workspace/run.sh
      contents: |
        echo "{{{{workflow_id}}}} writes to {{{{output}}}}"
"""


def submit(
    osmo: FakeOsmo, tmp_path: Path, version: str, *args: str, **fields: str
) -> subprocess.CompletedProcess[str]:
    values = {"name": "demo", "timeout": "3600", "memory": "8Gi", "extra": ""} | fields
    spec = tmp_path / "wf.yaml"
    spec.write_text(GOOD.format(**values))
    env = {**os.environ, **osmo.env, "FAKE_OSMO_VERSION": version}
    return subprocess.run(["osmo", "workflow", "submit", str(spec), *args], capture_output=True, text=True,
                          env=env, check=False)  # fmt: skip


@pytest.mark.parametrize("version", ["6.3.1", "6.4.0"])
def test_a_good_spec_is_accepted_and_its_tokens_substituted_in_files(
    osmo: FakeOsmo, tmp_path: Path, version: str
) -> None:
    result = submit(osmo, tmp_path, version, "-t", "json")
    assert result.returncode == 0, result.stdout
    (task,) = osmo.submits()[-1]["started_tasks"]
    # Jinja drops the template's final newline (keep_trailing_newline=False): the last file loses its own
    assert task["files"][0]["contents"] == 'echo "demo-1 writes to /osmo/data/output"'
    assert task["environment"]["OUT"] == "/osmo/data/output/checkpoints"


@pytest.mark.parametrize(
    ("version", "fields", "message"),
    [
        ("6.3.1", {"timeout": "'3600'"}, "Cannot recognize duration: 3600"),
        ("6.3.1", {"timeout": "1.5h"}, "Cannot recognize duration"),
        ("6.3.1", {"name": "a" * 65}, "longer than 64"),
        ("6.3.1", {"memory": "10GB"}, "has no valid unit"),
        ("6.3.1", {"memory": "64GiB"}, "pod creation failed"),
        ("6.3.1", {"extra": "inputs: [{dataset: {name: 'training/my.code'}}]"}, "Invalid name"),
        (
            "6.4.0",
            {"extra": "inputs: [{dataset: {name: training/code}}]"},
            "one of task, url is required on 6.4",
        ),
        ("6.4.0", {"extra": "outputs: [{dataset: {name: training/out}}]"}, "one of url is required on 6.4"),
        ("6.3.1", {"extra": "credentials: {hf_token: {HF_TOKEN: token}}"}, "Could not find the credential"),
        ("6.3.1", {"extra": "unknown_key: 1"}, "extra key 'unknown_key'"),
        ("6.3.1", {"name": "{{ undefined_value }}"}, "'undefined_value' is undefined"),
    ],
)
def test_what_osmo_refuses_is_refused_with_its_message_on_stdout(
    osmo: FakeOsmo, tmp_path: Path, version: str, fields: dict[str, str], message: str
) -> None:
    result = submit(osmo, tmp_path, version, **fields)
    assert result.returncode == 2
    assert result.stdout.startswith("Error message: ") and message in result.stdout
    assert result.stdout.rstrip().endswith("Error code: 2")


def test_label_flag_exists_only_from_6_4(osmo: FakeOsmo, tmp_path: Path) -> None:
    old = submit(osmo, tmp_path, "6.3.1", "--label", "team=robots")
    assert old.returncode == 2 and "unrecognized arguments: --label" in old.stderr
    assert submit(osmo, tmp_path, "6.4.0", "--label", "team=robots").returncode == 0
    bad = submit(osmo, tmp_path, "6.4.0", "--label", "team=a/b")
    assert bad.returncode == 2 and "not a valid non-empty Kubernetes label value" in bad.stdout


def test_trailing_positional_after_nargs_plus_is_swallowed(osmo: FakeOsmo, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(GOOD.format(name="demo", timeout=60, memory="1Gi", extra=""))
    env = {**os.environ, **osmo.env}
    result = subprocess.run(["osmo", "workflow", "submit", "--set-env", "A=1", str(tmp_path / "wf.yaml")],
                            capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert result.returncode == 2 and "required: workflow_file" in result.stderr


@pytest.mark.parametrize(
    ("version", "present", "absent"), [("6.3.1", "dataset", "data"), ("6.4.0", "data", "dataset")]
)
def test_dataset_commands_follow_the_version(osmo: FakeOsmo, version: str, present: str, absent: str) -> None:
    env = {**os.environ, **osmo.env, "FAKE_OSMO_VERSION": version}
    gone = subprocess.run(
        ["osmo", absent, "upload", "--help"], capture_output=True, text=True, env=env, check=False
    )
    assert gone.returncode == 2 and "invalid choice" in gone.stderr
    there = subprocess.run(
        ["osmo", present, "upload", "--help"], capture_output=True, text=True, env=env, check=False
    )
    assert there.returncode == 0


GROUP = """\
workflow:
  name: demo
  groups:
  - name: {group}
    tasks:
{tasks}
"""
NODE = """\
    - name: {name}
      image: ubuntu:24.04
      command: [bash, -c, 'echo "$MASTER_ADDR"']
      environment:
        MASTER_ADDR: "{{{{host:{master}}}}}"
"""


def submit_group(
    osmo: FakeOsmo, tmp_path: Path, names: list[str], group: str = "train", lead: int | None = 0,
    master: str | None = None,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """A group of tasks ``names``, task ``lead`` marked as the lead, every task pointing at ``master``."""
    tasks = ""
    for index, name in enumerate(names):
        tasks += NODE.format(name=name, master=master or names[0])
        if index == lead:
            tasks += "      lead: true\n"
    spec = tmp_path / "group.yaml"
    spec.write_text(GROUP.format(group=group, tasks=tasks))
    return subprocess.run(["osmo", "workflow", "submit", str(spec)], capture_output=True, text=True,
                          env={**os.environ, **osmo.env}, check=False)  # fmt: skip


def test_a_group_is_accepted_and_host_tokens_name_the_lead_for_every_task(
    osmo: FakeOsmo, tmp_path: Path
) -> None:
    result = submit_group(osmo, tmp_path, ["train-0", "train-1", "train-2"])
    assert result.returncode == 0, result.stdout
    started = osmo.submits()[-1]["started_tasks"]
    hosts = {task["environment"]["MASTER_ADDR"] for task in started}
    (host,) = hosts
    assert host.endswith(".svc.cluster.local") and "{{" not in host
    assert [task["name"] for task in started] == ["train-0", "train-1", "train-2"]


@pytest.mark.parametrize(
    ("names", "options", "message"),
    [
        (["train-0", "train-1"], {"lead": None}, 'Group "train" has 0 leader(s) but must have exactly one.'),
        (["train-0", "Train_0"], {}, 'Multiple tasks/groups have the same name: "train-0".'),
        (["train-0", "train-1"], {"group": "TRAIN_0"}, "Multiple tasks/groups have the same name"),
        ([f"n{i}" for i in range(21)], {}, "Workflow cannot have more than 20 tasks."),
        (["train-0", "train-1"], {"master": "master"}, "{{host:master}} names no task"),
        (["train-0"], {}, "{{host:train-0}} names no task of a group of several tasks"),
        (["train-0", "train-1"], {"group": "bad name"}, "invalid group name"),
    ],
)
def test_what_osmo_refuses_of_a_group_is_refused(
    osmo: FakeOsmo, tmp_path: Path, names: list[str], options: dict[str, Any], message: str
) -> None:
    result = submit_group(osmo, tmp_path, names, **options)
    assert result.returncode == 2, result.stdout
    assert message in result.stdout
    assert osmo.submits() == []


def test_two_leads_tasks_and_groups_together_or_neither_are_refused() -> None:
    node = {"name": "a", "image": "i", "command": ["true"], "lead": True}
    two_leads = {"workflow": {"name": "w", "groups": [{"name": "g", "tasks": [node, {**node, "name": "b"}]}]}}
    assert 'Group "g" has 2 leader(s) but must have exactly one.' in spec_problems(two_leads)
    both = {"workflow": {"name": "w", "tasks": [node], "groups": [{"name": "g", "tasks": [node]}]}}
    assert "Cannot use both groups and tasks in the same workflow." in spec_problems(both)
    neither = {"workflow": {"name": "w"}}
    assert "Workflows need to have at least one group or one task." in spec_problems(neither)
    unknown = {"workflow": {"name": "w", "groups": [{"name": "g", "tasks": [node], "leader": "a"}]}}
    assert "group: extra key 'leader' not permitted" in spec_problems(unknown)
    one = {"workflow": {"name": "w", "groups": [{"name": "g", "tasks": [{**node, "lead": False}]}]}}
    assert spec_problems(one) == [], "a group of one task gets its lead by itself"


KEEPING = """\
workflow:
  name: keep
  tasks:
  - name: train
    image: ubuntu:24.04
    command: [bash, -c, "true"]
    environment:
      TRAINING_CHECKPOINT_OUTPUT: "{{{{output}}}}/checkpoints"
    outputs: [{output}]
    checkpoint: {checkpoint}
"""


def osmo_cli(osmo: FakeOsmo, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **osmo.env, **env}
    return subprocess.run(["osmo", *args], capture_output=True, text=True, env=environment, check=False)


@pytest.mark.parametrize(
    ("version", "end", "output_kept", "checkpoint_kept"),
    [("6.3.1", "COMPLETED", True, False), ("6.3.1", "FAILED", True, False),
     ("6.3.1", "FAILED_EVICTED", True, False), ("6.3.1", "FAILED_PREEMPTED", False, False),
     ("6.4.0", "FAILED_BACKEND_ERROR", False, True), ("6.4.0", "COMPLETED", True, True)],
)  # fmt: skip
def test_outputs_are_kept_only_as_osmo_uploads_them(
    osmo: FakeOsmo, tmp_path: Path, version: str, end: str, output_kept: bool, checkpoint_kept: bool
) -> None:
    """ctrl.go uploads outputs once the command ended (an OOM kill ends it), never from a deleted pod;
    OSMO's checkpointing (6.4 here, URLs only) uploaded while the task ran, whatever the end."""
    written = tmp_path / "written"
    (written / "iteration-1").mkdir(parents=True)
    (written / "iteration-1" / "model.pt").write_bytes(b"w")
    url = "s3://bucket/keep/{{workflow_id}}"
    output = (
        "{dataset: {name: 'training/keep:{{workflow_id}}'}}" if version == "6.3.1" else f"{{url: '{url}'}}"
    )
    checkpoint = "[]" if version == "6.3.1" else (
        f"[{{path: '{{{{output}}}}/checkpoints', url: '{url}/checkpoints', frequency: 60}}]"
    )  # fmt: skip
    spec = tmp_path / "keep.yaml"
    spec.write_text(KEEPING.format(output=output, checkpoint=checkpoint))
    env = {"FAKE_OSMO_VERSION": version, "FAKE_OSMO_END_STATUSES": end, "FAKE_OSMO_LOG_LINES": "1",
           "FAKE_OSMO_CHECKPOINT_FILES": str(written), "FAKE_OSMO_LOG_INTERVAL": "0"}  # fmt: skip
    assert osmo_cli(osmo, "workflow", "submit", str(spec), **env).returncode == 0
    assert f'"status": "{end}"' in osmo_cli(osmo, "workflow", "query", "keep-1", "-t", "json", **env).stdout
    if version == "6.3.1":
        fetched = osmo_cli(osmo, "dataset", "download", "training/keep:keep-1", str(tmp_path / "got"), **env)
        assert (fetched.returncode == 0) is output_kept, fetched.stdout
        assert (tmp_path / "got/keep/checkpoints/iteration-1/model.pt").is_file() is output_kept
        return
    listed = osmo_cli(osmo, "data", "list", "s3://bucket/keep/keep-1", "--recursive", "--no-pager", **env)
    keys = set(listed.stdout.split())
    assert ("keep/keep-1/checkpoints/iteration-1/model.pt" in keys) is (output_kept or checkpoint_kept)
    fetched = osmo_cli(osmo, "data", "download", "s3://bucket/keep/keep-1", str(tmp_path / "got"), **env)
    assert fetched.returncode == 0
    assert (tmp_path / "got/checkpoints/iteration-1/model.pt").is_file() is (output_kept or checkpoint_kept)


def test_dataset_download_refuses_what_the_cli_refuses(osmo: FakeOsmo, tmp_path: Path) -> None:
    """src/lib/data/dataset/manager.py: a non-empty folder needs --resume, and --resume a version."""
    data = tmp_path / "episodes"
    data.mkdir()
    (data / "a.txt").write_text("a")
    assert osmo_cli(osmo, "dataset", "upload", "training/episodes", str(data)).returncode == 0
    target = tmp_path / "got"
    assert osmo_cli(osmo, "dataset", "download", "training/episodes", str(target)).returncode == 0
    again = osmo_cli(osmo, "dataset", "download", "training/episodes", str(target))
    assert again.returncode == 2 and f"Path {target}/episodes is not empty" in again.stdout
    untagged = osmo_cli(osmo, "dataset", "download", "training/episodes", str(target), "--resume")
    assert untagged.returncode == 2 and "Specify specific version in order to resume." in untagged.stdout
    assert (
        osmo_cli(osmo, "dataset", "download", "training/episodes:1", str(target), "--resume").returncode == 0
    )
    assert (target / "episodes" / "episodes" / "a.txt").read_text() == "a"

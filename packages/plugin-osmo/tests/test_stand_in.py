"""The stand-in ``osmo`` refuses what OSMO refuses (per version) and accepts what it accepts.

Hand-written specs, submitted straight to the stand-in: if it were lenient, the other tests would prove
nothing. Each expectation comes from the OSMO source cited in osmo_spec_rules.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from osmo_helpers import FakeOsmo

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

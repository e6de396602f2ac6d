"""The option matrix of issue 9: what OSMO accepts is generated so the stand-in accepts it; what OSMO would
refuse is refused by robotrain before anything reaches OSMO.

Both workloads (the Isaac Lab one through core's real workload; a LeRobot-shaped job built as the lerobot
plugin builds it, since that plugin is not installed in this session), inline and dataset payloads, both
client versions, resources, timeouts, labels, names and templates. Jobs are submitted in-process through
the plugin's own submit with the stand-in ``osmo`` on PATH.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from osmo_helpers import FakeOsmo, add_random_file, assert_obeys_osmo_rules, lerobot_job, task_of

from robotrain import JobSpec, Settings, UserError
from robotrain.common_options import apply_common_options
from robotrain.plugins import load_plugins
from robotrain_osmo import datasets, submit

V63, V64 = "6.3.1", "6.4.0"
URL = "s3://bucket/robotrain"
LEROBOT_CREDENTIALS = "hf_token,wandb"


@dataclass(frozen=True)
class Case:
    """One combination: settings given on the command line, the workload, the client version."""

    id: str
    workload: str = "isaaclab"
    version: str = V63
    options: dict[str, Any] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    template: str | None = None
    big_code: bool = False


def accepted_cases() -> Iterator[Case]:
    variants: dict[str, dict[str, Any]] = {
        "defaults": {},
        "resources+timeout": {"gpu": 2, "cpu": 16, "memory": "64Gi", "storage": "1.5Ti", "timeout": "3600"},
        "decimal-units+timeout-units": {"memory": "500G", "storage": "2T", "timeout": "1h30m"},
        "pool+priority+name": {"pool": "gpu-pool", "priority": "low", "job_name": "a" * 64},
    }
    for workload in ("isaaclab", "lerobot"):
        for payload in ("inline", "dataset"):
            for version in (V63, V64):
                for name, options in variants.items():
                    url = {"dataset_url": URL} if version == V64 else {}
                    yield Case(f"{workload}-{payload}-{version}-{name}", workload, version,
                               {"payload": payload, **url, **options})  # fmt: skip
    labels = {"label": ["team=robots", "run=a.b_c-1", "x" * 63 + "=" + "v" * 63]}
    yield Case("labels-6.4", version=V64, options={"dataset_url": URL, **labels})
    yield Case("extra-args", extra=("--set-env", "DEBUG=1", "--rsync", "a:/b"))
    yield Case("big-code-goes-by-dataset", big_code=True)
    yield Case("template-dataset-6.3", template=DATASET_TEMPLATE)
    yield Case("template-archive-6.3", template=ARCHIVE_TEMPLATE)
    yield Case("template-archive-6.4", version=V64, template=ARCHIVE_TEMPLATE)


def refused_cases() -> Iterator[tuple[Case, str]]:
    yield Case("label-on-6.3", options={"label": ["team=robots"]}), "needs the OSMO 6.4 CLI"
    yield Case("label-slash", V64_URL, options={"label": ["team=a/b"]}), "not a Kubernetes label value"
    yield Case("label-empty", V64_URL, options={"label": ["team="]}), "not a Kubernetes label value"
    yield Case("label-64", V64_URL, options={"label": ["team=" + "v" * 64]}), "not a Kubernetes label value"
    yield Case("label-key", V64_URL, options={"label": ["-team=x"]}), "Kubernetes label key"
    for unit, fixed in (("GiB", "64Gi"), ("MiB", "64Mi"), ("TiB", "64Ti"), ("KiB", "64Ki"), ("B", "64")):
        yield Case(f"memory-{unit}", options={"memory": f"64{unit}"}), f"write '{fixed}'"
    yield Case("storage-K", options={"storage": "64K"}), "write '64Ki'"
    yield Case("memory-GB", options={"memory": "10GB"}), "--memory"
    yield Case("name-65", options={"job_name": "a" * 65}), "at most 64"
    yield Case("name-pattern", options={"job_name": "1-bad-"}), "--job-name"
    yield (
        Case("dataset-name-dot", options={"payload": "dataset", "dataset_name": "my.code"}),
        "--dataset-name",
    )
    yield Case("dataset-bucket-slash", options={"dataset_bucket": "a/b"}), "--dataset-bucket"
    yield Case("6.4-without-url", version=V64), "--dataset-url"
    yield Case("inline-too-big", options={"payload": "inline"}, big_code=True), "--payload dataset"
    yield Case("priority", options={"priority": "urgent"}), "--priority"
    yield Case("template-syntax-in-env", options={"env": ["NOTE={{ evil }}"]}), "template syntax"
    yield Case("template-undefined", template=UNDEFINED_TEMPLATE), "'not_a_value' is undefined"
    yield Case("template-bad-yaml", template=BAD_YAML_TEMPLATE), "not valid YAML"
    yield Case("template-archive-too-big", template=ARCHIVE_TEMPLATE, big_code=True), "dataset-style template"
    yield Case("template-unknown-section", template="workflow:\n  name: a\nextra: 1\n"), "top-level key"
    yield Case("inline-template-without-archive", options={"payload": "inline"},
               template=DATASET_TEMPLATE), "takes no encoded_archive"  # fmt: skip
    yield Case("lerobot-input-name", "lerobot", options={"payload": "inline"},
               env={"INPUT": "episodes.v2"}), "NAME or NAME:VERSION"  # fmt: skip


V64_URL = V64  # label cases on 6.4 carry --dataset-url below


DATASET_TEMPLATE = """\
workflow:
  name: "{{ job_name }}"
  timeout:
    exec_timeout: 3600
  tasks:
  - name: isaac-training
    image: "{{ image }}"
    command: [bash, /tmp/entry.sh]
    environment:
      TASK: "{{ task }}"
      TRAINING_ROOT: "{{input:0}}/{{ dataset_name }}/training"
    inputs:
    - dataset:
        name: "{{ dataset_bucket }}/{{ dataset_name }}"
        localpath: "{{ training_localpath }}"
    files:
    - path: /tmp/entry.sh
      contents: |
        bash "$TRAINING_ROOT/scripts/train.sh" --task "$TASK"
default-values:
  job_name: isaaclab-dataset
"""
ARCHIVE_TEMPLATE = """\
workflow:
  name: isaaclab-inline
  tasks:
  - name: train
    image: "{{ image }}"
    command: [bash, -c, 'echo "$ENCODED_ARCHIVE" | base64 -d | tar -xz && bash training/scripts/train.sh']
    environment:
      ENCODED_ARCHIVE: "{{ encoded_archive }}"
      OUT: "{{output}}"
"""
UNDEFINED_TEMPLATE = ARCHIVE_TEMPLATE.replace("{{ image }}", "{{ not_a_value }}")
BAD_YAML_TEMPLATE = "workflow:\n  name: [unclosed\n  tasks: {{ image }}\n"


@pytest.fixture
def in_process(osmo: FakeOsmo, project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[Case], Any]:
    """Run a case's submission in this process, the stand-in on PATH."""

    def run(case: Case) -> Any:
        for key, value in {**osmo.env, "FAKE_OSMO_VERSION": case.version,
                           "FAKE_OSMO_CREDENTIALS": LEROBOT_CREDENTIALS, **case.env}.items():  # fmt: skip
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(project)
        if case.big_code:
            add_random_file(project, 1024 * 1024 + 1)
        options = dict(case.options)
        if case.template is not None:
            (project / "wf.yaml").write_text(case.template)
            options["workflow"] = "wf.yaml"
        plugins = load_plugins()
        settings = plugins.settings({"platform": "osmo", **options}, extra_args=case.extra, start=project)
        job = _job(plugins, settings, case)
        osmo.state.mkdir(exist_ok=True)
        (osmo.state / "calls.jsonl").write_text("")  # staging the case's inputs is not the case
        return submit.submit(job, settings)

    return run


def _job(plugins: Any, settings: Settings, case: Case) -> JobSpec:
    if case.workload == "isaaclab":
        job = plugins.hook.robotrain_build_job(workload="isaaclab", settings=settings)
        return apply_common_options(job, settings)  # type: ignore[no-any-return]
    job = apply_common_options(lerobot_job(settings.state_dir, with_input=True), settings)
    value = os.environ.get("INPUT", "episodes")
    version = datasets.client_version()
    data = settings.project_root / "episodes"
    data.mkdir(exist_ok=True)
    (data / "0.json").write_text("[1]\n")
    target = datasets.target_for("episodes", settings["dataset_bucket"], settings.get("dataset_url"),
                                 version >= datasets.FIRST_URL_VERSION)  # fmt: skip
    datasets.stage(data, target, settings.state_dir)
    return job.evolve(inputs={"dataset": value})


@pytest.mark.parametrize("case", list(accepted_cases()), ids=lambda c: c.id)
def test_accepted_combination_passes_the_stand_in(osmo: FakeOsmo, in_process: Callable[[Case], Any],
                                                  case: Case) -> None:  # fmt: skip
    submission = in_process(case)
    (call,) = osmo.submits()
    assert submission.job_id == call["workflow_id"]
    spec = call["rendered"]
    version = (6, 4) if case.version == V64 else (6, 3)
    if case.template is None:
        assert_obeys_osmo_rules(spec, version)
        task = task_of(spec)
        assert task["environment"]["TRAINING_CHECKPOINT_OUTPUT"] == "{{output}}/checkpoints"
        name = spec["workflow"]["name"]
        kept = {"url": f"{URL}/checkpoints/{name}/{{{{workflow_id}}}}"}
        assert task["outputs"][0] == (
            kept
            if version == (6, 4)
            else {"dataset": {"name": f"training/{name}-checkpoints:{{{{workflow_id}}}}"}}
        )
        if case.workload == "lerobot":
            _assert_lerobot_input(task, version)
        timeout = case.options.get("timeout")
        expected = {None: 12 * 3600 if case.workload == "lerobot" else 23 * 3600, "3600": 3600, "1h30m": 5400}
        assert spec["workflow"]["timeout"] == {"exec_timeout": expected[timeout]}
    assert call["argv"][2].endswith(".yaml") and call["argv"][3:5] == ["-t", "json"]
    if case.extra:
        assert tuple(call["argv"][-len(case.extra) :]) == case.extra


def _assert_lerobot_input(task: dict[str, Any], version: tuple[int, int]) -> None:
    """The staged dataset is the last task input; the job learns its folder from ROBOTRAIN_INPUT_DATASET."""
    index = len(task["inputs"]) - 1
    variable = task["environment"]["ROBOTRAIN_INPUT_DATASET"]
    if version == (6, 4):
        assert task["inputs"][index]["url"].startswith(f"{URL}/episodes/")
        assert variable == f"{{{{input:{index}}}}}"
    else:
        assert task["inputs"][index] == {"dataset": {"name": "training/episodes"}}
        assert variable == f"{{{{input:{index}}}}}/episodes"
    assert task["credentials"] == {"hf_token": {"HF_TOKEN": "token"}, "wandb": {"WANDB_API_KEY": "api_key"}}


@pytest.mark.parametrize(("case", "message"), list(refused_cases()), ids=lambda c: getattr(c, "id", ""))
def test_refused_combination_never_reaches_osmo(osmo: FakeOsmo, in_process: Callable[[Case], Any],
                                                case: Case, message: str) -> None:  # fmt: skip
    if case.version == V64 and "dataset_url" not in case.options and case.id != "6.4-without-url":
        case = Case(case.id, case.workload, case.version, {**case.options, "dataset_url": URL}, case.extra,
                    case.env, case.template, case.big_code)  # fmt: skip
    with pytest.raises(UserError, match=re.escape(message)) as raised:
        in_process(case)
    assert "\n" not in str(raised.value)
    assert osmo.osmo_calls() == [], "only `osmo version` (a local query) may run before a refusal"


def test_the_matrix_has_at_least_40_combinations() -> None:
    assert len(list(accepted_cases())) + len(list(refused_cases())) >= 40

"""Distributed jobs on OSMO: a group of one task per node, one lead, rendezvous through ``{{host:TASK}}``.

Every spec is checked against the stand-in's rules (src/utils/job/task.py TaskGroupSpec, workflow.py,
workflow_service.py); the launcher arguments are compared with the job's own command from
``train --dry-run --output json``, so they hold whatever arguments the workload gives.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from osmo_helpers import FakeOsmo, add_random_file, all_tasks, assert_obeys_osmo_rules, lerobot_job

from robotrain.job import NODE_VARIABLES, RANK_VARIABLES
from robotrain.plugins import load_plugins
from robotrain.testing import assert_one_line_error
from robotrain_osmo.spec import ARCHIVE_PATH, ENTRY_SCRIPT
from robotrain_osmo.submit import render

DRY_RUN = ["train", "--platform", "osmo", "--dry-run"]
LAUNCHER_LINE = 'exec ${PYTHON:-python3} -m torch.distributed.run "$@"'


def dry_run_json(osmo: FakeOsmo, project: Path, *args: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The job robotrain built and the spec the OSMO platform rendered for it, and the spec's text."""
    result = osmo.run([*DRY_RUN, "--output", "json", *args], cwd=project)
    assert result.returncode == 0, result.stderr
    assert osmo.osmo_calls() == [], "a dry run asks osmo its version at most"
    data = json.loads(result.stdout)
    return data["job"], yaml.safe_load(data["spec"]), data["spec"]


def launcher(nodes: int, per_node: int, rank: int, master: str) -> list[str]:
    return [
        "--nnodes", str(nodes), "--nproc_per_node", str(per_node), "--node_rank", str(rank),
        "--master_addr", master, "--master_port", "29500", "--no-python",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("version", "payload"), [("6.3", "inline"), ("6.3", "dataset"), ("6.4", "inline"), ("6.4", "dataset")]
)
def test_two_nodes_of_four_gpus_are_a_group_with_one_lead_and_host_tokens(
    osmo: FakeOsmo, project: Path, version: str, payload: str
) -> None:
    args = ["--nodes", "2", "--gpus", "4", "--osmo-client-version", version, "--payload", payload,
            "--dataset-url", "s3://bucket/robotrain"]  # fmt: skip
    job, spec, text = dry_run_json(osmo, project, *args)
    assert_obeys_osmo_rules(spec, (6, 4) if version == "6.4" else (6, 3))
    workflow = spec["workflow"]
    assert "tasks" not in workflow
    (group,) = workflow["groups"]
    assert group["name"] == "train" and group["ignoreNonleadStatus"] is False
    lead, worker = group["tasks"]
    assert (lead["name"], lead["lead"], worker["name"], worker["lead"]) == ("train-0", True, "train-1", False)
    assert workflow["resources"]["default"]["gpu"] == 4, "each node asks for its 4 GPUs"
    for rank, task in enumerate(group["tasks"]):
        assert task["command"] == ["bash", ENTRY_SCRIPT]
        assert task["args"] == launcher(2, 4, rank, "{{host:train-0}}") + job["command"]
        environment = task["environment"]
        assert {name: environment[name] for name in NODE_VARIABLES} == {
            "NNODES": "2", "NODE_RANK": str(rank), "NPROC_PER_NODE": "4",
            "MASTER_ADDR": "{{host:train-0}}", "MASTER_PORT": "29500",
        }  # fmt: skip
        assert environment["PYTHON"] == "/workspace/isaaclab/isaaclab.sh -p"
        entry = next(f for f in task["files"] if f["path"] == ENTRY_SCRIPT)
        assert entry["contents"].rstrip().endswith(LAUNCHER_LINE)
        assert task["image"] == lead["image"] and task.get("inputs") == lead.get("inputs")
    assert lead["outputs"] and "outputs" not in worker, "only the lead (rank 0) keeps the checkpoints"
    if payload == "dataset":
        assert lead["inputs"] and worker["environment"]["ROBOTRAIN_CODE_INPUT"].startswith("{{input:0}}")
    else:
        assert [f["path"] for f in worker["files"]] == [ENTRY_SCRIPT, ARCHIVE_PATH]
    assert "# distributed: 2 node(s) x 4 = 8 processes; group train of 2 tasks (lead train-0)" in text


def test_the_stand_in_accepts_the_group_and_resolves_the_lead_for_every_task(
    osmo: FakeOsmo, project: Path
) -> None:
    result = osmo.run(["train", "--platform", "osmo", "--nodes", "3", "--gpus", "2"], cwd=project)
    assert result.returncode == 0, result.stderr
    started = osmo.submits()[-1]["started_tasks"]
    assert [task["name"] for task in started] == ["train-0", "train-1", "train-2"]
    masters = {task["environment"]["MASTER_ADDR"] for task in started}
    (master,) = masters
    assert master.endswith(".svc.cluster.local")
    assert [task["args"][: len(launcher(3, 2, 0, master))] for task in started] == [
        launcher(3, 2, rank, master) for rank in range(3)
    ]
    status = json.loads(osmo.run(["status", "isaaclab-training-1", "--platform", "osmo", "--output", "json"],
                                 cwd=project).stdout)  # fmt: skip
    assert [task["name"] for task in status["details"]["tasks"]] == ["train-0", "train-1", "train-2"]


def test_one_node_of_four_gpus_is_one_task_launching_four_processes_locally(
    osmo: FakeOsmo, project: Path
) -> None:
    job, spec, _ = dry_run_json(osmo, project, "--gpus", "4")
    assert_obeys_osmo_rules(spec)
    (task,) = spec["workflow"]["tasks"]
    assert "groups" not in spec["workflow"] and "lead" not in task
    assert task["args"] == launcher(1, 4, 0, "127.0.0.1") + job["command"]
    assert task["environment"]["MASTER_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("gpus", [[], ["--gpus", "1"], ["--gpus", "0"]])
def test_one_process_is_one_task_running_the_command_itself(
    osmo: FakeOsmo, project: Path, gpus: list[str]
) -> None:
    job, spec, _ = dry_run_json(osmo, project, *gpus)
    (task,) = spec["workflow"]["tasks"]
    assert task["args"] == job["command"]
    assert not set(RANK_VARIABLES + NODE_VARIABLES) & set(task["environment"])
    assert (
        next(f for f in task["files"] if f["path"] == ENTRY_SCRIPT)["contents"].rstrip().endswith('exec "$@"')
    )


def test_cpu_only_nodes_start_one_process_each(osmo: FakeOsmo, project: Path) -> None:
    job, spec, _ = dry_run_json(osmo, project, "--nodes", "2", "--gpus", "0")
    assert_obeys_osmo_rules(spec)
    assert spec["workflow"]["resources"]["default"]["gpu"] == 0
    tasks = spec["workflow"]["groups"][0]["tasks"]
    assert [t["args"] for t in tasks] == [
        launcher(2, 1, r, "{{host:train-0}}") + job["command"] for r in (0, 1)
    ]


def test_twenty_nodes_fit_and_twenty_one_are_refused_naming_the_limit(osmo: FakeOsmo, project: Path) -> None:
    _, spec, _ = dry_run_json(osmo, project, "--nodes", "20", "--payload", "dataset")
    assert_obeys_osmo_rules(spec)
    assert len(all_tasks(spec)) == 20 and sum(t["lead"] for t in all_tasks(spec)) == 1
    for command in (DRY_RUN, ["train", "--platform", "osmo"]):
        result = osmo.run([*command, "--nodes", "21"], cwd=project)
        assert_one_line_error(result, "--nodes 21", "at most 20 tasks")
    assert osmo.osmo_calls() == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--nodes", "0"], ["--nodes"]),
        (["--nodes", "two"], ["--nodes"]),
        (["--gpus", "-1"], ["--gpus"]),
        (["--gpu", "-1"], ["--gpus"]),  # the old OSMO flag is an alias of --gpus
    ],
)
def test_bad_node_and_gpu_counts_are_refused_before_anything_is_sent(
    osmo: FakeOsmo, project: Path, args: list[str], fragments: list[str]
) -> None:
    for command in (DRY_RUN, ["train", "--platform", "osmo"]):
        assert_one_line_error(osmo.run([*command, *args], cwd=project), *fragments)
    assert osmo.osmo_calls() == []


def test_an_inline_archive_goes_by_dataset_when_every_node_would_carry_a_copy(
    osmo: FakeOsmo, project: Path
) -> None:
    add_random_file(project, 400 * 1024)
    _, one, _ = dry_run_json(osmo, project)
    assert "inputs" not in one["workflow"]["tasks"][0], "one copy fits inline"
    _, spec, _ = dry_run_json(osmo, project, "--nodes", "3")
    assert all(
        task["inputs"] == [{"dataset": {"name": "training/training-code"}}] for task in all_tasks(spec)
    )
    result = osmo.run([*DRY_RUN, "--nodes", "3", "--payload", "inline"], cwd=project)
    assert_one_line_error(result, "each of the 3 tasks would carry a copy", "--payload dataset")


def test_the_submitted_spec_carries_the_archive_in_every_task(osmo: FakeOsmo, project: Path) -> None:
    result = osmo.run(["train", "--platform", "osmo", "--nodes", "2"], cwd=project)
    assert result.returncode == 0, result.stderr
    spec = osmo.submitted_spec()
    archives = [next(f for f in t["files"] if f["path"] == ARCHIVE_PATH)["contents"] for t in all_tasks(spec)]
    (payload,) = (project / ".robotrain" / "payloads").glob("*.tar.gz")
    assert archives == [base64.b64encode(payload.read_bytes()).decode()] * 2


def test_a_job_that_launches_its_processes_runs_once_per_node_with_node_variables(
    project: Path,
) -> None:
    settings = load_plugins().settings({"platform": "osmo", "osmo_client_version": "6.3"}, start=project)
    job = lerobot_job(settings.state_dir, with_input=False).evolve(
        nodes=2, processes_per_node=4, launches_processes=True
    )
    spec = yaml.safe_load(render(job, settings))
    assert_obeys_osmo_rules(spec)
    for rank, task in enumerate(spec["workflow"]["groups"][0]["tasks"]):
        assert task["args"] == list(job.command), "no torch launcher: the command starts its processes"
        assert task["environment"]["NODE_RANK"] == str(rank)
        assert task["environment"]["NPROC_PER_NODE"] == "4"
        assert task["credentials"] == {
            "hf_token": {"HF_TOKEN": "token"},
            "wandb": {"WANDB_API_KEY": "api_key"},
        }
        entry = next(f for f in task["files"] if f["path"] == ENTRY_SCRIPT)
        assert entry["contents"].rstrip().endswith('exec "$@"')


MULTI_NODE_TEMPLATE = """\
workflow:
  name: train-multi-gpu
  resources:
    default:
      gpu: {{ n_gpus_per_node }}
  groups:
  - name: training
    tasks:
    {% for item in range(n_nodes) %}
    - name: {{ 'master' if item == 0 else 'worker_' ~ item }}
      lead: {{ 'true' if item == 0 else 'false' }}
      image: {{ image }}
      command: [bash, -c]
      args:
      - torchrun --nnodes {{ n_nodes }} --nproc_per_node {{ n_gpus_per_node }} --node_rank {{ item }}
        --master_addr {{host:master}} --master_port 29400 train.py --task {{ task }}
    {% endfor %}
"""


def test_a_multi_node_template_gets_the_node_and_gpu_counts_as_numbers(osmo: FakeOsmo, project: Path) -> None:
    """The template of OSMO's multi-node guide loops over ``range(n_nodes)``: the counts go by ``--set``,
    which OSMO casts to int (``--set-string`` would make ``range('2')`` fail)."""
    (project / "multi.yaml").write_text(MULTI_NODE_TEMPLATE)
    args = ["train", "--platform", "osmo", "--workflow", "multi.yaml", "--nodes", "2", "--gpus", "4"]
    result = osmo.run(args, cwd=project)
    assert result.returncode == 0, result.stderr
    call = osmo.submits()[-1]
    assert call["argv"][-3:] == ["--set", "n_nodes=2", "n_gpus_per_node=4"]
    tasks = call["rendered"]["workflow"]["groups"][0]["tasks"]
    assert [(t["name"], t["lead"]) for t in tasks] == [("master", True), ("worker_1", False)]
    assert "--nnodes 2 --nproc_per_node 4 --node_rank 1" in tasks[1]["args"][0]
    assert call["rendered"]["workflow"]["resources"]["default"]["gpu"] == 4


def test_a_template_that_would_ignore_the_node_count_is_refused(osmo: FakeOsmo, project: Path) -> None:
    single = MULTI_NODE_TEMPLATE.replace("range(n_nodes)", "range(1)").replace("{{ n_nodes }}", "1")
    (project / "single.yaml").write_text(single)
    for extra in (["--dry-run"], []):
        args = ["train", "--platform", "osmo", "--workflow", "single.yaml", "--nodes", "2", *extra]
        assert_one_line_error(osmo.run(args, cwd=project), "single.yaml does not use n_nodes", "--nodes 2")
    assert osmo.osmo_calls() == []


def test_a_job_without_code_gets_a_launcher_script_of_its_own(project: Path) -> None:
    settings = load_plugins().settings({"platform": "osmo", "osmo_client_version": "6.3"}, start=project)
    job = lerobot_job(settings.state_dir, with_input=False).evolve(
        payload=None, nodes=2, processes_per_node=2
    )
    spec = yaml.safe_load(render(job, settings))
    assert_obeys_osmo_rules(spec)
    for rank, task in enumerate(all_tasks(spec)):
        assert task["command"] == ["bash", ENTRY_SCRIPT]
        assert task["args"] == launcher(2, 2, rank, "{{host:train-0}}") + list(job.command)
        (entry,) = task["files"]
        assert "payload_root" not in entry["contents"]
        assert entry["contents"].rstrip().endswith(LAUNCHER_LINE)

"""A submitted OSMO job starts: its task runs in a simulated Isaac Lab container root laid out as OSMO would.

From the spec the stand-in accepted: OSMO's tokens substituted as src/utils/job/task.py TaskSpec.parse does,
each ``files:`` entry written at its path (decoded when ``base64: true``, as a Kubernetes Secret volume
holds it, src/utils/job/kb_objects.py), each input laid out under ``/osmo/data/input/N`` (a 6.3 dataset at
``N/<dataset name>/<uploaded folder's basename>/...``, a 6.4 URL at ``N/<path below the URL>``), then the
task's command and args run with the task's environment and nothing else.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from osmo_helpers import FakeOsmo, lerobot_job, task_of

from robotrain import container
from robotrain.container import ContainerRoot
from robotrain.plugins import load_plugins
from robotrain.testing import make_isaaclab_project
from robotrain_osmo import submit

pytestmark = pytest.mark.skipif(not container.available(), reason="needs Linux, root, unshare and chroot")


def start_task(osmo: FakeOsmo, root: ContainerRoot, index: int | None = None) -> Any:
    """Lay out the last accepted submission's task (the only one, or number ``index``) in ``root`` and
    run it."""
    started = osmo.submits()[-1]["started_tasks"]  # tokens substituted by the stand-in, as OSMO does
    if index is None:
        (task,) = started
    else:
        task = started[index]
    for entry in task.get("files", []):
        contents = entry["contents"]
        root.write(entry["path"], base64.b64decode(contents) if entry.get("base64") else contents)
    for index, item in enumerate(task.get("inputs", [])):
        lay_out_input(osmo, root, index, item)
    root.path("/osmo/data/output").mkdir(parents=True, exist_ok=True)
    return root.run([*task["command"], *task.get("args", [])], env=task.get("environment", {}))


def lay_out_input(osmo: FakeOsmo, root: ContainerRoot, index: int, item: dict[str, Any]) -> None:
    kept = kept_output(osmo, item)
    if kept is not None:  # an earlier workflow's output (a checkpoint to resume from)
        shutil.copytree(kept, root.path(f"/osmo/data/input/{index}"), dirs_exist_ok=True)
        return
    if "dataset" in item:
        name = item["dataset"]["name"].split(":")[0]
        (upload,) = [a for a in osmo.argvs() if a[:3] == ["dataset", "upload", name]]
        folder, paths = f"/osmo/data/input/{index}/{name.split('/')[-1]}", upload[3:]
    else:
        (upload,) = [a for a in osmo.argvs() if a[:3] == ["data", "upload", item["url"]]]
        folder, paths = f"/osmo/data/input/{index}", upload[3:]
    for source in map(Path, paths):
        target = root.path(f"{folder}/{source.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)


def kept_output(osmo: FakeOsmo, item: dict[str, Any]) -> Path | None:
    """Where the stand-in keeps a workflow's output this input names: a tagged 6.3 dataset version (laid
    out under the dataset's name) or a URL's files."""
    if "dataset" in item:
        name, _, tag = item["dataset"]["name"].partition(":")
        recorded = osmo.state / "dataset_tags.json"
        tags = json.loads(recorded.read_text()) if tag and recorded.is_file() else {}
        version = tags.get(name, {}).get(tag)
        if version is None:
            return None
        laid_out = osmo.state / "laid-out" / str(version) / name.split("/")[-1]
        shutil.copytree(osmo.state / "dataset-files" / name / str(version), laid_out, dirs_exist_ok=True)
        return laid_out.parent
    scheme, _, rest = item["url"].partition("://")
    folder = osmo.state / "storage" / scheme / rest.strip("/")
    return folder if folder.is_dir() else None


EXPECTED_ARGS = ["-p", "-m", "training.scripts.launch", "--mode", "train", "--task", "Isaac-Cartpole-v0",
                 "--num_envs", "64"]  # fmt: skip


@pytest.mark.parametrize("payload", ["inline", "dataset"])
def test_isaaclab_job_reaches_the_launcher_in_the_image(osmo: FakeOsmo, tmp_path: Path, payload: str) -> None:
    project = make_isaaclab_project(tmp_path / "isaaclab-project")
    args = [
        "train",
        "--platform",
        "osmo",
        "--payload",
        payload,
        "--task",
        "Isaac-Cartpole-v0",
        "--num-envs",
        "64",
    ]
    result = osmo.run(args, cwd=project)
    assert result.returncode == 0, result.stderr
    root = ContainerRoot(tmp_path / "root")
    started = start_task(osmo, root)
    assert started.returncode == 0, started.stderr
    (call,) = root.isaaclab_calls()
    assert call[: len(EXPECTED_ARGS)] == EXPECTED_ARGS
    assert call[call.index("--checkpoint-mode") + 1] == "from-scratch" and call[-1] == "--headless"
    assert root.path("/workspace/isaac_payload/training/scripts/train.sh").is_file()
    assert root.path("/osmo/data/output/checkpoints").is_dir(), "the declared output folder exists"


@pytest.mark.parametrize("version", ["6.3.1", "6.4.0"])
def test_staged_dataset_input_is_mounted_and_named_to_the_job(
    osmo: FakeOsmo, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    for key, value in {
        **osmo.env,
        "FAKE_OSMO_VERSION": version,
        "FAKE_OSMO_CREDENTIALS": "hf_token,wandb",
    }.items():
        monkeypatch.setenv(key, value)
    data = project / "episodes"
    (data / "meta").mkdir(parents=True)
    (data / "meta" / "info.json").write_text('{"fps": 30}\n')
    options = {"dataset_url": "s3://bucket/robotrain"} if version == "6.4.0" else {}
    settings = load_plugins().settings({"platform": "osmo", **options}, start=project)
    stage = load_plugins().hook.robotrain_stage_dataset
    staged = stage(platform="osmo", source=data, name="episodes", settings=settings)
    reference = "episodes" if version == "6.3.1" else f"episodes:{staged.version}"
    copy_input = 'cp "$ROBOTRAIN_INPUT_DATASET/meta/info.json" "$TRAINING_CHECKPOINT_OUTPUT/seen.json"'
    job = lerobot_job(settings.state_dir, with_input=False).evolve(
        inputs={"dataset": reference}, command=("bash", "-c", copy_input)
    )
    submit.submit(job, settings)
    root = ContainerRoot(tmp_path / "root", isaaclab=False)
    started = start_task(osmo, root)
    assert started.returncode == 0, started.stderr
    assert root.path("/osmo/data/output/checkpoints/seen.json").read_text() == '{"fps": 30}\n'
    environment = task_of(osmo.submits()[-1]["rendered"])["environment"]
    expected = "{{input:0}}/episodes" if version == "6.3.1" else "{{input:0}}"
    assert environment["ROBOTRAIN_INPUT_DATASET"] == expected


@pytest.mark.parametrize("payload", ["inline", "dataset"])
def test_each_node_of_a_distributed_isaaclab_job_starts_the_torch_launcher_with_its_rank(
    osmo: FakeOsmo, tmp_path: Path, payload: str
) -> None:
    """``--nodes 2 --gpus 4``: each task's entry script runs ``$PYTHON -m torch.distributed.run`` with the
    node's arguments and the job's command. The image's interpreter (PYTHON=isaaclab.sh -p, a command
    with an argument) is the recording stand-in, so the launcher's exact command line is what it got."""
    project = make_isaaclab_project(tmp_path / "isaaclab-project")
    args = ["train", "--platform", "osmo", "--payload", payload, "--task", "Isaac-Cartpole-v0",
            "--num-envs", "64", "--nodes", "2", "--gpus", "4"]  # fmt: skip
    result = osmo.run(args, cwd=project)
    assert result.returncode == 0, result.stderr
    started = osmo.submits()[-1]["started_tasks"]
    master = started[0]["environment"]["MASTER_ADDR"]
    assert master.endswith(".svc.cluster.local"), "{{host:train-0}} resolved by OSMO"
    for rank in range(2):
        root = ContainerRoot(tmp_path / f"node-{rank}")
        run = start_task(osmo, root, rank)
        assert run.returncode == 0, run.stderr
        (call,) = root.isaaclab_calls()
        launcher = ["-p", "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "4",
                    "--node_rank", str(rank), "--master_addr", master, "--master_port", "29500",
                    "--no-python"]  # fmt: skip
        assert call[: len(launcher)] == launcher
        command = call[len(launcher) :]
        assert command[:2] == ["bash", "training/scripts/train.sh"]
        assert command[2:10] == ["--mode", "train", "--task", "Isaac-Cartpole-v0", "--num_envs", "64",
                                 "--max_iterations", ""]  # fmt: skip
        assert root.path("/workspace/isaac_payload/training/scripts/train.sh").is_file()
        assert root.path("/osmo/data/output/checkpoints").is_dir()
    assert "outputs" in started[0] and "outputs" not in started[1]


def test_each_node_of_a_job_that_launches_its_processes_gets_the_node_variables(
    osmo: FakeOsmo, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {**osmo.env, "FAKE_OSMO_CREDENTIALS": "hf_token,wandb"}.items():
        monkeypatch.setenv(key, value)
    settings = load_plugins().settings({"platform": "osmo"}, start=project)
    variables = "$NNODES $NODE_RANK $NPROC_PER_NODE $MASTER_ADDR $MASTER_PORT"
    report = f'echo "{variables}" > "$TRAINING_CHECKPOINT_OUTPUT/node"'
    job = lerobot_job(settings.state_dir, with_input=False).evolve(
        command=("bash", "-c", report), nodes=2, processes_per_node=4, launches_processes=True
    )
    submit.submit(job, settings)
    started = osmo.submits()[-1]["started_tasks"]
    master = started[0]["environment"]["MASTER_ADDR"]
    for rank in range(2):
        root = ContainerRoot(tmp_path / f"node-{rank}", isaaclab=False)
        run = start_task(osmo, root, rank)
        assert run.returncode == 0, run.stderr
        assert root.path("/osmo/data/output/checkpoints/node").read_text() == f"2 {rank} 4 {master} 29500\n"


@pytest.mark.parametrize("version", ["6.3.1", "6.4.0"])
def test_a_resumed_job_finds_the_checkpoint_it_resumes_from(
    osmo: FakeOsmo, tmp_path: Path, version: str
) -> None:
    """The checkpoint URI train printed for the first job, given to the next: the launcher gets the
    mounted folder, which holds the first job's checkpoints."""
    project = make_isaaclab_project(tmp_path / "isaaclab-project")
    written = tmp_path / "written" / "iteration-000010"
    written.mkdir(parents=True)
    (written / "model.pt").write_bytes(b"weights")
    env = {
        "FAKE_OSMO_VERSION": version,
        "FAKE_OSMO_CHECKPOINT_FILES": str(written.parent),
        "FAKE_OSMO_END_STATUSES": "FAILED",
        "FAKE_OSMO_LOG_LINES": "1",
        "FAKE_OSMO_LOG_INTERVAL": "0",
    }
    args = ["train", "--platform", "osmo", "--task", "Isaac-Cartpole-v0", "--num-envs", "64",
            "--dataset-url", "s3://bucket/robotrain", "--output", "json"]  # fmt: skip
    first = osmo.run(args, cwd=project, **env)
    assert first.returncode == 0, first.stderr
    kept = json.loads(first.stdout)["details"]["checkpoints"]
    status = osmo.run(["status", "isaaclab-training-1"], cwd=project, **env)
    assert status.stdout.strip() == "osmo job isaaclab-training-1: failed", "its command ended: outputs kept"
    resumed = osmo.run([*args, "--checkpoint-uri", kept, "--checkpoint-mode", "resume"], cwd=project, **env)
    assert resumed.returncode == 0, resumed.stderr
    root = ContainerRoot(tmp_path / "root")
    started = start_task(osmo, root)
    assert started.returncode == 0, started.stderr
    (call,) = root.isaaclab_calls()
    folder = call[call.index("--checkpoint-uri") + 1]
    assert call[call.index("--checkpoint-mode") + 1] == "resume"
    assert folder.startswith("/osmo/data/input/")
    assert root.path(f"{folder}/iteration-000010/model.pt").read_bytes() == b"weights"

"""register-model and stage-dataset on the local platform: versioned by content, nothing copied twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain.testing import assert_one_line_error, make_project, run_cli

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def checkpoint(project: Path, seed_store: Callable[[Path], Path]) -> Path:
    """A checkpoint folder in a project that has its MLflow store."""
    seed_store(project)
    folder = project / "ckpt"
    (folder / "nested").mkdir(parents=True)
    (folder / "weights.npz").write_bytes(b"\x00weights")
    (folder / "nested" / "state.json").write_text('{"iteration": 3}')
    return folder


def client(project: Path) -> Any:
    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def register(project: Path, source: str, name: str = "policy") -> dict[str, Any]:
    result = run_cli(["register-model", source, "--name", name, "--output", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


@pytest.mark.slow
def test_a_folder_registered_twice_makes_one_version(project: Path, checkpoint: Path) -> None:
    first = register(project, "ckpt")
    again = register(project, str(checkpoint))
    assert (first["version"], first["created"], first["uri"]) == ("1", True, "models:/policy/1")
    assert (again["version"], again["created"]) == ("1", False)
    (checkpoint / "weights.npz").write_bytes(b"\x00changed")
    assert register(project, "ckpt")["version"] == "2"
    versions = client(project).search_model_versions("name = 'policy'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
    source = Path(client(project).get_model_version("policy", "1").source.removeprefix("file://"))
    assert source.is_relative_to(project / ".robotrain")
    assert (source / "weights.npz").read_bytes() == b"\x00weights"
    assert not list(project.rglob("mlruns"))


@pytest.mark.slow
def test_a_run_artifact_is_registered_with_its_run(project: Path, checkpoint: Path) -> None:
    store = client(project)
    experiment = store.create_experiment("e", artifact_location=(project / ".robotrain" / "art").as_uri())
    run = store.create_run(experiment)
    store.log_artifacts(run.info.run_id, str(checkpoint), "checkpoint")
    store.set_terminated(run.info.run_id)
    model = register(project, f"runs:/{run.info.run_id}/checkpoint")
    assert (model["version"], model["created"]) == ("1", True)
    version = store.get_model_version("policy", "1")
    assert version.run_id == run.info.run_id
    assert version.source.endswith("/checkpoint")
    assert register(project, "ckpt")["created"] is False


@pytest.mark.parametrize(
    ("source", "fragments"),
    [("missing", ["missing", "runs:/"]), ("local-20250101-000000-abcd", ["local-20250101-000000-abcd"])],
)
def test_bad_model_source_is_one_line(project: Path, source: str, fragments: list[str]) -> None:
    result = run_cli(["register-model", source, "--name", "policy"], cwd=project)
    assert_one_line_error(result, *fragments)


def test_bad_model_name_is_one_line(project: Path, checkpoint: Path) -> None:
    result = run_cli(["register-model", "ckpt", "--name", "bad name'"], cwd=project)
    assert_one_line_error(result, "model name", "bad name'")


def stage(project: Path, source: str, name: str = "demos") -> dict[str, Any]:
    result = run_cli(["stage-dataset", source, "--name", name, "--output", "json"], cwd=project)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_stage_dataset_versions_by_content(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    data = project / "data"
    data.mkdir()
    (data / "episode_0.json").write_text("[1, 2, 3]")
    (data / ".env").write_text("TOKEN=secret")
    first = stage(project, "data")
    stored = Path(first["uri"])
    assert (first["version"], first["uploaded"]) == ("1", True)
    assert stored == project / ".robotrain" / "datasets" / "demos" / "1"
    assert sorted(p.name for p in stored.iterdir()) == ["episode_0.json"]
    modified = (stored / "episode_0.json").stat().st_mtime_ns
    again = stage(project, "data")
    assert (again["version"], again["uploaded"], again["uri"]) == ("1", False, first["uri"])
    assert (stored / "episode_0.json").stat().st_mtime_ns == modified
    (data / "episode_1.json").write_text("[4]")
    second = stage(project, "data")
    assert (second["version"], second["uploaded"]) == ("2", True)
    assert sorted(p.name for p in Path(second["uri"]).iterdir()) == ["episode_0.json", "episode_1.json"]


def test_bad_dataset_name_is_one_line(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    (project / "data").mkdir()
    (project / "data" / "x").write_text("x")
    assert_one_line_error(
        run_cli(["stage-dataset", "data", "--name", "../up"], cwd=project), "dataset name", "../up"
    )

"""The local platform end to end with the real example payload: train, track, register, restart."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robotrain.testing import assert_one_line_error, run_cli

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "cartpole"
MODEL = "cartpole-v1"

pytest.importorskip("gymnasium")
mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.xdist_group("one real training")  # one pytest-xdist worker runs `trained` (noxfile)


def cartpole_project(root: Path, iterations: int) -> Path:
    """A project whose training folder is a copy of examples/cartpole."""
    shutil.copytree(EXAMPLE, root / "training", ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    (root / "robotrain.toml").write_text(
        'training-dir = "training"\ntask = "CartPole-v1"\nnum-envs = 8\n'
        f'max-iterations = {iterations}\nexperiment-name = "cartpole"\n'
    )
    return root


def client(project: Path) -> Any:
    uri = f"sqlite:///{project / '.robotrain' / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def run_of_job(project: Path, job_id: str) -> Any:
    runs = client(project).search_runs(
        [client(project).get_experiment_by_name("cartpole").experiment_id],
        filter_string="",
    )
    log = (project / ".robotrain" / "jobs" / job_id / "output.log").read_text()
    (found,) = [run for run in runs if run.info.run_id in log]
    return found


def first_return(project: Path, run: Any) -> tuple[int, float]:
    history = client(project).get_metric_history(run.info.run_id, "mean_return")
    first = min(history, key=lambda metric: metric.step)
    return first.step, first.value


def train(project: Path, *args: str) -> str:
    result = run_cli(["train", *args], cwd=project, timeout=300)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout.strip().splitlines()[-1].split()[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, seed_store: Callable[[Path], Path]) -> tuple[Path, str]:
    """One from-scratch training (long enough to learn), shared by the checkpoint tests."""
    project = cartpole_project(tmp_path_factory.mktemp("cartpole") / "project", iterations=30)
    return project, train(seed_store(project))


@pytest.mark.slow
def test_train_registers_a_model_and_writes_only_under_state_dir(trained: tuple[Path, str]) -> None:
    project, job_id = trained
    versions = client(project).search_model_versions(f"name = '{MODEL}'")
    assert [str(v.version) for v in versions] == ["1"]
    run = run_of_job(project, job_id)
    assert versions[0].run_id == run.info.run_id
    assert run.data.params["mode"] == "from-scratch"
    assert run.data.metrics["mean_return"] > 0
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(project / ".robotrain")
    assert sorted(p.name for p in project.iterdir()) == [".robotrain", "robotrain.toml", "training"]
    assert not list(project.rglob("mlruns"))


@pytest.mark.slow
def test_registering_the_jobs_checkpoint_again_makes_no_new_version(trained: tuple[Path, str]) -> None:
    project, job_id = trained
    result = run_cli(["register-model", job_id, "--name", MODEL], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "version 1 (already registered" in result.stdout
    assert len(client(project).search_model_versions(f"name = '{MODEL}'")) == 1


@pytest.mark.slow
def test_resume_continues_the_iteration_counter(trained: tuple[Path, str]) -> None:
    project, job_id = trained
    source = run_of_job(project, job_id)
    uri = f"runs:/{source.info.run_id}/checkpoint"
    resumed = train(project, "--checkpoint-uri", uri, "--checkpoint-mode", "resume",
                    "--max-iterations", "2", "--skip-register-checkpoint")  # fmt: skip
    run = run_of_job(project, resumed)
    assert run.data.params["start_iteration"] == "30"
    assert int(run.data.params["start_optimizer_step"]) == 30
    assert run.data.params["initial_weights_sha256"] == source.data.params["final_weights_sha256"]
    assert first_return(project, run)[0] == 30
    assert run.data.params["final_iteration"] == "32"


@pytest.mark.slow
def test_warm_start_loads_weights_and_restarts_counters(trained: tuple[Path, str]) -> None:
    project, job_id = trained
    source = run_of_job(project, job_id)
    warm = train(project, "--checkpoint-uri", f"models:/{MODEL}/1", "--checkpoint-mode", "warm-start",
                 "--max-iterations", "2", "--skip-register-checkpoint")  # fmt: skip
    run = run_of_job(project, warm)
    assert run.data.params["start_iteration"] == "0"
    assert run.data.params["start_optimizer_step"] == "0"
    assert run.data.params["initial_weights_sha256"] == source.data.params["final_weights_sha256"]
    step, value = first_return(project, run)
    _, scratch_value = first_return(project, source)
    assert step == 0
    assert value > 2 * scratch_value


@pytest.mark.slow
def test_fresh_keeps_only_the_architecture(trained: tuple[Path, str]) -> None:
    project, job_id = trained
    source = run_of_job(project, job_id)
    fresh = train(project, "--checkpoint-uri", f"models:/{MODEL}/1", "--checkpoint-mode", "fresh",
                  "--max-iterations", "1", "--skip-register-checkpoint")  # fmt: skip
    run = run_of_job(project, fresh)
    assert run.data.params["start_iteration"] == "0"
    assert run.data.params["hidden"] == source.data.params["hidden"]
    assert run.data.params["initial_weights_sha256"] != source.data.params["final_weights_sha256"]


@pytest.mark.slow
@pytest.mark.parametrize("uri", ["models:/nope/1", "runs:/0123456789abcdef/checkpoint"])
def test_unknown_checkpoint_is_refused_before_the_job_starts(trained: tuple[Path, str], uri: str) -> None:
    project, _ = trained
    jobs_before = set((project / ".robotrain" / "jobs").iterdir())
    result = run_cli(["train", "--checkpoint-uri", uri, "--checkpoint-mode", "resume"], cwd=project)
    assert_one_line_error(result, uri, "not in the local MLflow store")
    assert set((project / ".robotrain" / "jobs").iterdir()) == jobs_before

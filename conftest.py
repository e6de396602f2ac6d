"""Fixtures for every package's tests: an empty local MLflow store made once per test process."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow store built as the local platform builds one (MLflow's schema migrations take
    seconds): ``SqlAlchemyStore`` on SQLite, as ``robotrain.platforms.local_tracking._create_store``."""
    pytest.importorskip("mlflow")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from robotrain.platforms import local_tracking

    state = tmp_path_factory.mktemp("empty-store")
    path = local_tracking.store_path(state)
    store = SqlAlchemyStore(f"sqlite:///{path}", local_tracking.artifact_root(state).as_uri())  # type: ignore[no-untyped-call]
    store.engine.dispose()
    local_tracking.check_store(path)
    return path


@pytest.fixture(scope="session")
def seed_store(empty_store: Path) -> Callable[[Path], Path]:
    """``seed_store(project)``: give the project the store its first ``train`` would create, then return it.

    For tests of what happens in a project with a store; tests of the store's creation (interrupts,
    concurrent first trains) start without one.
    """
    from robotrain.platforms import local_tracking

    def seed(project: Path) -> Path:
        state = project / ".robotrain"
        state.mkdir(parents=True, exist_ok=True)
        target = local_tracking.store_path(state)
        shutil.copyfile(empty_store, target)
        # The one row that names a place: the Default experiment's artifact folder (MLflow's
        # SqlAlchemyStore._create_default_experiment puts it under the store's artifact root).
        default_location = f"{local_tracking.artifact_root(state).as_uri()}/0"
        with closing(sqlite3.connect(target)) as db, db:
            db.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (default_location,)
            )
        return project

    return seed

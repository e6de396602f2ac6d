"""MLflow for the local platform: a SQLite store and artifacts under ``.robotrain/``.

MLflow is imported only inside these functions (``robotrain-core[local]``), so
``--help`` and ``--dry-run`` never load it. Model versions carry a
``content_sha256`` tag (see ``content_sha256``): registering the same content
again returns the existing version.

The store survives interrupts and concurrent commands: it is created under a
file lock (``mlflow.db.lock``) as ``mlflow.db.<unique>.partial`` and renamed
to ``mlflow.db`` only when complete, so an interrupted first ``train`` leaves
no half-built store, and several ``train`` commands started at once wait for
one another instead of racing MLflow's schema migrations. An existing store
is checked (tables and schema version) before use; a damaged one is reported
in one line with the fix.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from robotrain.errors import UserError
from robotrain.job import ModelRef
from robotrain.platforms.local_jobs import jobs_dir, test_hook

PLATFORM = "local"
CONTENT_TAG = "content_sha256"
INSTALL_HINT = "the local platform tracks runs with MLflow: pip install 'robotrain-core[local]'"
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MLFLOW_URIS = ("runs:/", "models:/")
STORE = "mlflow.db"
STORE_TABLES = frozenset({"alembic_version", "experiments", "runs", "metrics", "registered_models",
                          "model_versions"})  # fmt: skip
"""Tables MLflow's schema migrations create (mlflow/store/db_migrations); a store without one is damaged."""


def store_path(state_dir: Path) -> Path:
    return state_dir.resolve() / STORE


def tracking_uri(state_dir: Path) -> str:
    return f"sqlite:///{store_path(state_dir)}"


def artifact_root(state_dir: Path) -> Path:
    return state_dir.resolve() / "mlartifacts"


def job_environment(state_dir: Path, experiment: str) -> dict[str, str]:
    """What a local job needs to log to the local store under its experiment."""
    uri = tracking_uri(state_dir)
    return {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "MLFLOW_EXPERIMENT_NAME": experiment,
    } | QUIET


def require_mlflow() -> None:
    """Refuse early, without importing it, when MLflow is not installed."""
    if importlib.util.find_spec("mlflow") is None:
        raise UserError(INSTALL_HINT)


def check_name(name: str, what: str) -> None:
    if not NAME_PATTERN.match(name):
        raise UserError(
            f"{what} name {name!r} is not valid; use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit"
        )


def _import_mlflow() -> Any:
    """MLflow, quiet."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        import mlflow
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return mlflow


def _mlflow(state_dir: Path) -> Any:
    """MLflow pointed at the project's store (which must exist: see ``open_store``)."""
    mlflow = _import_mlflow()
    mlflow.set_tracking_uri(tracking_uri(state_dir))
    mlflow.set_registry_uri(tracking_uri(state_dir))
    return mlflow


@contextmanager
def store_lock(state_dir: Path) -> Iterator[None]:
    """Hold the project's store lock: one command at a time creates, migrates or changes the store."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(state_dir / f"{STORE}.lock"):
        yield


def open_store(state_dir: Path, announce: bool = False) -> Any:
    """MLflow on the project's store, creating the store first when there is none; hold ``store_lock``.

    ``announce`` prints a line when the store is created (the first ``train``).
    """
    path = store_path(state_dir)
    if path.exists():
        check_store(path)
    else:
        if announce:
            print(f"robotrain: creating the local MLflow store {path} (first run only)", flush=True)
        _create_store(state_dir)
    return _mlflow(state_dir)


def require_store(state_dir: Path, needed_for: str) -> Any:
    """MLflow on the existing store, or one line saying there is none yet (nothing is created)."""
    path = store_path(state_dir)
    if not path.exists():
        raise UserError(
            f"there is no local MLflow store yet ({path}), so {needed_for} cannot be found; "
            f"train a job first (`invoke train`), or give a folder"
        )
    check_store(path)
    return _mlflow(state_dir)


def _create_store(state_dir: Path) -> None:
    """Build the store as a uniquely named partial file and rename it into place when complete."""
    for stale in state_dir.glob(f"{STORE}.*.partial*"):  # left by a killed process; we hold the lock
        stale.unlink(missing_ok=True)
    partial = state_dir.resolve() / f"{STORE}.{os.getpid()}-{secrets.token_hex(4)}.partial"
    try:
        test_hook("store-building")
        _import_mlflow()
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        store = SqlAlchemyStore(f"sqlite:///{partial}", artifact_root(state_dir).as_uri())  # type: ignore[no-untyped-call]
        store.engine.dispose()
        test_hook("store-built")
        check_store(partial)
        partial.replace(store_path(state_dir))
    finally:
        for leftover in partial.parent.glob(partial.name + "*"):
            leftover.unlink(missing_ok=True)
    test_hook("store-ready")


def check_store(path: Path) -> None:
    """Refuse, in one line with the fix, a store that is not a complete MLflow database."""
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = (
                db.execute("SELECT version_num FROM alembic_version").fetchone()
                if ("alembic_version" in tables)
                else None
            )
    except sqlite3.Error as error:
        raise _damaged(path, str(error)) from None
    missing = sorted(STORE_TABLES - tables)
    if missing:
        raise _damaged(path, f"tables missing: {', '.join(missing)}")
    if not version:
        raise _damaged(path, "no schema version recorded")


def _damaged(path: Path, reason: str) -> UserError:
    return UserError(
        f"the local MLflow store {path} is damaged ({reason}); move it aside "
        f"(mv {path} {path}.broken) and run again to start a new store"
    )


def _store_error(state_dir: Path, error: Exception) -> UserError:
    return UserError(f"the local MLflow store {store_path(state_dir)} refused: {_first_line(error)}")


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "message", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def prepare_tracking(state_dir: Path, experiment: str, model: str | None) -> str:
    """Create the store if needed, the experiment, and the registered model the job will register to.

    Done under the store lock before the job starts, so concurrent jobs never
    race to create the same experiment or model. Returns the experiment's id.
    """
    if model:
        check_name(model, "model")
    with store_lock(state_dir):
        mlflow = open_store(state_dir, announce=True)
        from mlflow.exceptions import MlflowException

        try:
            experiment_id = _ensure_experiment(state_dir, mlflow.MlflowClient(), experiment)
            test_hook("experiment-created")
            if model:
                _ensure_registered_model(mlflow.MlflowClient(), model)
        except MlflowException as error:
            raise _store_error(state_dir, error) from None
        return experiment_id


def _ensure_experiment(state_dir: Path, client: Any, name: str) -> str:
    """The experiment's id, creating it with its artifacts under ``.robotrain/mlartifacts``."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        folder = artifact_root(state_dir) / re.sub(r"[^A-Za-z0-9._-]+", "_", name)
        return str(client.create_experiment(name, artifact_location=folder.as_uri()))
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return str(experiment.experiment_id)


def download(state_dir: Path, uri: str, destination: Path, what: str) -> Path:
    """Download a ``runs:/`` or ``models:/`` URI from the local store; a UserError when it is not there."""
    mlflow = require_store(state_dir, f"{what} {uri}")
    from mlflow.exceptions import MlflowException

    destination.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(destination)))
    except (MlflowException, OSError) as error:
        raise UserError(
            f"{what} {uri} is not in the local MLflow store {store_path(state_dir)} "
            f"({_first_line(error)}); check the model name and version or the run id"
        ) from None


def check_checkpoint(state_dir: Path, project_root: Path, uri: str) -> None:
    """Refuse a checkpoint that cannot be there before anything is created: no store, or no such folder."""
    if uri.startswith(MLFLOW_URIS):
        if not store_path(state_dir).exists():
            require_store(state_dir, f"checkpoint {uri}")
    else:
        _local_checkpoint(project_root, uri)


def resolve_checkpoint(state_dir: Path, project_root: Path, uri: str, destination: Path) -> Path:
    """The local folder of a checkpoint URI: downloaded for runs:/ and models:/, else an existing path."""
    if uri.startswith(MLFLOW_URIS):
        return download(state_dir, uri, destination, "checkpoint")
    return _local_checkpoint(project_root, uri)


def _local_checkpoint(project_root: Path, uri: str) -> Path:
    path = Path(uri.removeprefix("file://")).expanduser()
    local = path if path.is_absolute() else project_root / path
    if "://" in uri.removeprefix("file://") or not local.exists():
        raise UserError(
            f"checkpoint {uri} not found; on the local platform give runs:/RUN/PATH, "
            f"models:/NAME/VERSION or an existing folder"
        )
    return local.resolve()


def files_of(folder: Path) -> list[tuple[str, Path]]:
    """Every file under ``folder`` (or the file itself) as (relative posix path, path)."""
    if folder.is_file():
        return [(folder.name, folder)]
    return [(p.relative_to(folder).as_posix(), p) for p in folder.rglob("*") if p.is_file()]


def content_sha256(files: Iterable[tuple[str, Path]]) -> str:
    """SHA-256 over each file's relative path, size and bytes, sorted by path.

    The example payload (examples/cartpole/train.py) computes the same digest
    when it registers its checkpoint, so registering that folder again is a no-op.
    """
    digest = hashlib.sha256()
    for relative, path in sorted(files):
        data = path.read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def register_model(state_dir: Path, project_root: Path, source: str, name: str) -> ModelRef:
    """Register a folder, a local job's checkpoint output or a ``runs:/`` URI as a version of ``name``."""
    check_name(name, "model")
    if source.startswith("runs:/"):
        require_store(state_dir, f"model source {source}")
        return _register_run_artifact(state_dir, source, name)
    folder = _source_folder(state_dir, project_root, source)
    content = content_sha256(files_of(folder))
    with store_lock(state_dir):
        client = open_store(state_dir).MlflowClient()
        existing = _existing_version(client, name, content)
        if existing is not None:
            return _model_ref(name, existing, created=False)
        stored = artifact_root(state_dir) / "models" / name / content[:16]
        if not stored.exists():
            stored.parent.mkdir(parents=True, exist_ok=True)
            partial = Path(tempfile.mkdtemp(dir=stored.parent, prefix=f".{stored.name}.", suffix=".partial"))
            try:
                shutil.copytree(folder, partial, dirs_exist_ok=True)
                partial.replace(stored)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
        return _model_ref(name, _create_version(client, name, stored.as_uri(), None, content), created=True)


def _register_run_artifact(state_dir: Path, source: str, name: str) -> ModelRef:
    run_id, _, path = source.removeprefix("runs:/").partition("/")
    with tempfile.TemporaryDirectory(dir=state_dir, prefix="download-") as scratch:
        local = download(state_dir, source, Path(scratch), "model source")
        content = content_sha256(files_of(local))
    with store_lock(state_dir):
        client = open_store(state_dir).MlflowClient()
        existing = _existing_version(client, name, content)
        if existing is not None:
            return _model_ref(name, existing, created=False)
        artifact_uri = client.get_run(run_id).info.artifact_uri
        location = f"{artifact_uri}/{path.strip('/')}" if path.strip("/") else artifact_uri
        return _model_ref(name, _create_version(client, name, location, run_id, content), created=True)


def _source_folder(state_dir: Path, project_root: Path, source: str) -> Path:
    job_root = jobs_dir(state_dir) / source
    if source.startswith("local-") and "/" not in source and job_root.is_dir():
        output = job_root / "outputs" / "checkpoints"
        if not output.is_dir() or not any(output.iterdir()):
            raise UserError(f"local job {source} wrote no checkpoint to {output}; register a folder instead")
        return output
    path = Path(source).expanduser()
    folder = path if path.is_absolute() else project_root / path
    if folder.is_file():
        raise UserError(f"model source {folder} is a file, expected a folder; give the checkpoint's folder")
    if not folder.is_dir() or not files_of(folder):
        raise UserError(
            f"model source {source} is not a folder with files, a local job id or a runs:/RUN/PATH URI; "
            f"give one of those"
        )
    return folder.resolve()


def _ensure_registered_model(client: Any, name: str) -> bool:
    """Create the registered model unless it exists; whether it existed."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
        return False
    return True


def _existing_version(client: Any, name: str, content: str) -> Any:
    if not _ensure_registered_model(client, name):
        return None
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get(CONTENT_TAG) == content:
            return version
    return None


def _create_version(client: Any, name: str, source: str, run_id: str | None, content: str) -> Any:
    return client.create_model_version(name, source=source, run_id=run_id, tags={CONTENT_TAG: content})


def _model_ref(name: str, version: Any, created: bool) -> ModelRef:
    number = str(version.version)
    return ModelRef(PLATFORM, name, number, f"models:/{name}/{number}", created)

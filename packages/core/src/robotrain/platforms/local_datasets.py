"""Datasets on the local platform: ``.robotrain/datasets/<name>/<version>/``, versions 1, 2, ...

Each version folder holds a copy of the staged files, checked and filtered like
the code payload (ignore rules, no secrets, no symlink out of the folder);
``<version>.json`` beside it records the tree hash, so staging unchanged content
returns the existing version and copies nothing. The stat cache under
``.robotrain/cache/`` means an unchanged folder is not even read again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from robotrain.errors import UserError
from robotrain.job import DatasetRef
from robotrain.payload import Entry, checked_files, progress_bar, tree_sha256
from robotrain.payload_cache import stat_key
from robotrain.payload_secrets import AllowedSecret
from robotrain.platforms.local_tracking import PLATFORM, check_name

TREE_KEY = "tree_sha256"


def stage_dataset(
    state_dir: Path, source: Path, name: str, allow: Sequence[AllowedSecret] = ()
) -> DatasetRef:
    """Copy ``source`` into a new version of dataset ``name``, unless the newest match has this content."""
    check_name(name, "dataset")
    if source.is_file():
        raise UserError(
            f"dataset folder {source} is a file, expected a folder; give the folder that holds it"
        )
    if not source.is_dir():
        raise UserError(f"dataset folder {source} not found; give an existing folder")
    entries = checked_files({"": source}, f"stage {source}", allow, state_dir / "cache")
    if not entries:
        raise UserError(f"dataset folder {source} has no files to stage (after ignore rules); add some")
    content = tree_sha256(entries)
    root = state_dir / "datasets" / name
    for version, recorded in _versions(root).items():
        if recorded.get(TREE_KEY) == content and (root / str(version)).is_dir():
            return DatasetRef(PLATFORM, name, str(version), str(root / str(version)), uploaded=False)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
    try:
        _copy(entries, staging)
        record = {TREE_KEY: content, "source": str(source), "files": len(entries), "created": time.time()}
        version = _publish(root, staging, record)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DatasetRef(PLATFORM, name, str(version), str(root / str(version)), uploaded=True)


def _copy(entries: list[Entry], destination: Path) -> None:
    """Copy the checked files; one changed since it was checked is refused (it was not scanned)."""
    with progress_bar(sum(entry.size for entry in entries), "staging") as advance:
        for entry in entries:
            target = destination / entry.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry.location, target)
            if stat_key(os.stat(entry.location)) != stat_key(entry.stat):
                raise UserError(f"{entry.path} changed while it was being staged; run the command again")
            advance(entry.size)


def _publish(root: Path, staging: Path, record: dict[str, object]) -> int:
    """Rename the staged copy to the next free version number (another stager may take one first)."""
    while True:
        taken = [int(p.name) for p in root.iterdir() if p.name.isdigit()] + list(_versions(root))
        version = max(taken, default=0) + 1
        try:
            os.rename(staging, root / str(version))
        except OSError:
            if not (root / str(version)).exists():
                raise
            continue
        handle, temporary = tempfile.mkstemp(dir=root, prefix=f".{version}-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(record, indent=2) + "\n")
        os.replace(temporary, root / f"{version}.json")
        return version


def _versions(root: Path) -> dict[int, dict[str, object]]:
    """The recorded versions of one dataset: number -> its record."""
    if not root.is_dir():
        return {}
    found: dict[int, dict[str, object]] = {}
    for path in root.glob("*.json"):
        if path.stem.isdigit():
            try:
                found[int(path.stem)] = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                found[int(path.stem)] = {}
    return found


def resolve_input(state_dir: Path, reference: str) -> Path:
    """The folder of a staged dataset ``NAME`` (newest version) or ``NAME:VERSION``."""
    name, _, version = reference.partition(":")
    root = state_dir / "datasets" / name
    versions = [v for v in _versions(root) if (root / str(v)).is_dir()]
    if not versions:
        raise UserError(
            f"no local dataset {name!r} in {state_dir / 'datasets'}; stage it first with "
            f"`invoke stage-dataset FOLDER --name {name}`"
        )
    if not version:
        return root / str(max(versions))
    if not version.isdigit() or int(version) not in versions:
        known = ", ".join(str(v) for v in sorted(versions))
        raise UserError(f"local dataset {name!r} has no version {version!r} (versions: {known})")
    return root / version

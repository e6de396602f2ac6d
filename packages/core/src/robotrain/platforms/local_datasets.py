"""Datasets on the local platform: ``.robotrain/datasets/<name>/<version>/``, versions 1, 2, ...

Each version folder holds a copy of the staged files (filtered like the code
payload); ``<version>.json`` beside it records the content hash, so staging
unchanged content returns the existing version and copies nothing.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from robotrain.errors import UserError
from robotrain.job import DatasetRef
from robotrain.payload import iter_files
from robotrain.platforms.local_tracking import PLATFORM, check_name, content_sha256


def stage_dataset(state_dir: Path, source: Path, name: str) -> DatasetRef:
    check_name(name, "dataset")
    files = list(iter_files(source))
    if not files:
        raise UserError(f"dataset folder {source} has no files to stage (after ignore rules); add some")
    content = content_sha256(files)
    root = state_dir / "datasets" / name
    versions = _versions(root)
    for version, recorded in versions.items():
        if recorded.get("sha256") == content and (root / str(version)).is_dir():
            return DatasetRef(PLATFORM, name, str(version), str(root / str(version)), uploaded=False)
    version = max(versions, default=0) + 1
    target = root / str(version)
    partial = root / f".{version}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for relative, path in files:
        destination = partial / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
    record = {"sha256": content, "source": str(source), "files": len(files), "created": time.time()}
    (root / f"{version}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    partial.replace(target)
    return DatasetRef(PLATFORM, name, str(version), str(target), uploaded=True)


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

"""Staging local folders on OSMO: datasets (6.3) or data under a storage URL (6.4+), once per content."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robotrain import DatasetRef, UserError
from robotrain.payload import checked_files, tree_sha256
from robotrain.payload_secrets import AllowedSecret
from robotrain_osmo import runner
from robotrain_osmo.config import DATASET_PART
from robotrain_osmo.spec import TaskInput

PLATFORM = "osmo"
STATE_FILE = "datasets.json"
FIRST_URL_VERSION = (6, 4)
ASSUMED_VERSION = (6, 3)
TEXT_VERSION = re.compile(r"client version:\s*(\d+)\.(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    """Where a named dataset goes: an OSMO bucket (6.3) or a storage URL base (6.4+)."""

    name: str
    bucket: str
    url: str | None
    uses_url: bool

    @property
    def key(self) -> str:
        return f"{self.url}/{self.name}" if self.uses_url else f"{self.bucket}/{self.name}"

    def url_for(self, digest: str) -> str:
        return f"{self.url}/{self.name}/{digest[:12]}"


def client_version() -> tuple[int, int]:
    """The installed CLI's (major, minor), from ``osmo version -t json`` (src/cli/version.py)."""
    output = runner.run(["version", "-t", "json"])
    try:
        client = json.loads(output)["client"]
        return int(client["major"]), int(client["minor"])
    except (ValueError, KeyError, TypeError):
        match = TEXT_VERSION.search(output)
        if match is None:
            raise UserError("cannot read the OSMO CLI's version from `osmo version`; reinstall it") from None
        return int(match.group(1)), int(match.group(2))


def version_for_dry_run(chosen: str | None) -> tuple[tuple[int, int], str]:
    """The client version a dry run writes for, and where it came from (a dry run submits nothing)."""
    if chosen:
        major, minor = chosen.split(".")
        return (int(major), int(minor)), "--osmo-client-version"
    if shutil.which(runner.EXECUTABLE) is None:
        return ASSUMED_VERSION, "assumed: no osmo CLI on PATH; set --osmo-client-version"
    return client_version(), "the installed osmo CLI"


def target_for(name: str, bucket: str, url: str | None, uses_url: bool) -> Target:
    if uses_url and not url:
        raise UserError(
            "the installed OSMO CLI (6.4+) stores data under a storage URL; set --dataset-url "
            "(or OSMO_DATA_URL), e.g. s3://my-bucket/robotrain"
        )
    return Target(name, bucket, url, uses_url)


def known_version(state_dir: Path, target: Target, digest: str) -> DatasetRef | None:
    """The last staged version of ``target`` when it has exactly this content."""
    entry = _load_state(state_dir).get(target.key)
    if not isinstance(entry, dict) or entry.get("sha256") != digest:
        return None
    return DatasetRef(PLATFORM, entry["name"], entry["version"], entry["uri"], uploaded=False)


def stage(
    source: Path,
    target: Target,
    state_dir: Path,
    digest: str | None = None,
    allow: Sequence[AllowedSecret] = (),
) -> DatasetRef:
    """Upload the files of ``source`` (filtered and checked for secrets like the payload) unless this
    content was staged last."""
    entries = checked_files({"": source}, f"stage {source}", allow, state_dir / "cache")
    files = [(entry.name, entry.path) for entry in entries]
    if not files:
        raise UserError(f"nothing to stage in {source}: every file is ignored or the folder is empty")
    digest = digest or tree_sha256(entries)
    known = known_version(state_dir, target, digest)
    if known is not None:
        return known
    staging = _filtered_copy(files, state_dir / "osmo" / "staging" / f"{target.name}-{digest[:12]}")
    paths = [str(path) for path in sorted(staging.iterdir())]
    dataset = _upload_url(target, digest, paths) if target.uses_url else _upload_dataset(target, paths)
    _record(state_dir, target, digest, dataset)
    return dataset


def _upload_url(target: Target, digest: str, paths: list[str]) -> DatasetRef:
    uri = target.url_for(digest)
    runner.run(["data", "upload", uri, *paths])
    return DatasetRef(PLATFORM, target.name, digest[:12], uri, uploaded=True)


def _upload_dataset(target: Target, paths: list[str]) -> DatasetRef:
    full_name = f"{target.bucket}/{target.name}"
    runner.run(["dataset", "upload", full_name, *paths])
    version = latest_version(full_name)
    return DatasetRef(PLATFORM, full_name, version, f"{full_name}:{version}", uploaded=True)


def latest_version(full_name: str) -> str:
    """The newest version of a dataset, from ``osmo dataset info NAME -t json``."""
    info = runner.run_json(["dataset", "info", full_name, "-t", "json"])
    versions = [str(v.get("version")) for v in info.get("versions", []) if isinstance(v, dict)]
    numbers = [int(v) for v in versions if v.isdigit()]
    if not numbers:
        raise UserError(
            f"OSMO lists no version of dataset {full_name} after the upload; check `osmo dataset info`"
        )
    return str(max(numbers))


def _filtered_copy(files: list[tuple[str, Path]], destination: Path) -> Path:
    if destination.exists():
        shutil.rmtree(destination)
    for relative, path in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return destination


def _state_path(state_dir: Path) -> Path:
    return state_dir / "osmo" / STATE_FILE


def _load_state(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(_state_path(state_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record(state_dir: Path, target: Target, digest: str, dataset: DatasetRef) -> None:
    state = _load_state(state_dir)
    state[target.key] = {
        "sha256": digest,
        "name": dataset.name,
        "version": dataset.version,
        "uri": dataset.uri,
    }
    path = _state_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def job_input(
    input_name: str, value: str, bucket: str, url: str | None, version: tuple[int, int], state_dir: Path
) -> TaskInput:
    """The task input for job input ``input_name`` = ``NAME`` or ``NAME:VERSION`` staged with stage-dataset.

    6.3: a dataset input ``bucket/NAME[:VERSION]`` (no version: OSMO takes the latest). 6.4+: the URL
    the dataset was staged to (``URL/NAME/VERSION``; without a version, the one last staged from here).
    """
    name, _, dataset_version = value.partition(":")
    for part in (name, dataset_version) if dataset_version else (name,):
        if not DATASET_PART.match(part):
            raise UserError(
                f"input {input_name}: {value!r} is not NAME or NAME:VERSION of a dataset staged with "
                f"`invoke stage-dataset --platform osmo` (letters, digits, - and _)"
            )
    if version < FIRST_URL_VERSION:
        return TaskInput.dataset(f"{bucket}/{value}")
    target = target_for(name, bucket, url, uses_url=True)
    if dataset_version:
        return TaskInput.url(f"{target.url}/{name}/{dataset_version}")
    entry = _load_state(state_dir).get(target.key)
    if not isinstance(entry, dict) or not entry.get("uri"):
        raise UserError(
            f"input {input_name}: dataset {name} was not staged from this project under {url}; run "
            f"`invoke stage-dataset FOLDER --name {name} --platform osmo` or give {name}:VERSION"
        )
    return TaskInput.url(str(entry["uri"]))

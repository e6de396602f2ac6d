"""A workflow's outputs after it ends: its checkpoint folder (to resume from, or to download) and its log.

Where the checkpoints of a job are is recorded at submit (``details["checkpoints"]``, see
``spec.checkpoint_output``): ``dataset://BUCKET/NAME:WORKFLOW_ID/checkpoints`` with the 6.3 CLI, the
storage URL ``.../WORKFLOW_ID/checkpoints`` with 6.4. Both are what ``--checkpoint-uri`` takes on OSMO.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from robotrain import JobStatus, Settings, UserError
from robotrain.history import find
from robotrain_osmo import datasets, follow, runner
from robotrain_osmo.spec import DATASET_URI, STORAGE_URI

STAGING = ".osmo-download"
"""Below the destination: where ``osmo dataset download`` writes (it adds the dataset's name), kept so
that ``--resume`` skips what is complete the next time."""
LOGS, CHECKPOINTS = "logs", "checkpoints"


def checkpoint_uri(job_id: str, settings: Settings) -> str:
    """The recorded URI of the job's checkpoint folder."""
    record = find(settings.state_dir, follow.check_job_id(job_id))
    if record is None or not record.checkpoints:
        raise UserError(
            f"OSMO workflow {job_id} was not submitted from this project, so robotrain does not know where "
            f"its checkpoints are; `invoke jobs` lists the jobs it knows"
        )
    if not (DATASET_URI.match(record.checkpoints) or STORAGE_URI.match(record.checkpoints)):
        raise UserError(
            f"OSMO workflow {job_id} was recorded by an older robotrain ({record.checkpoints}); download its "
            f"checkpoints with `osmo dataset download` or `osmo data download`"
        )
    return record.checkpoints


def latest_checkpoint(job_id: str, settings: Settings) -> str:
    """The job's checkpoint folder URI when OSMO holds files there, else ``""``."""
    uri = checkpoint_uri(job_id, settings)
    dataset = DATASET_URI.match(uri)
    if dataset is None:
        listing = runner.run(["data", "list", uri, "--recursive", "--no-pager"])
        return uri if listing.strip() else ""
    reference = dataset.group("dataset")
    name, _, tag = reference.partition(":")
    _require_client(uses_url=False, uri=uri)
    try:
        info = runner.run_json(["dataset", "info", name, "-t", "json"])
    except UserError as error:
        if "does not exist" in str(error):
            return ""
        raise
    versions = info.get("versions") if isinstance(info, dict) else None
    tagged = any(tag in (version.get("tags") or []) for version in versions or [])
    return uri if tagged else ""


def download(job_id: str, destination: Path, settings: Settings) -> list[Path]:
    """The checkpoint folder into ``destination/checkpoints``, the log into ``destination/logs``.

    The osmo CLI downloads by itself: with ``--resume`` it skips a file already there with the same size
    and checksum (src/lib/data/storage/downloading.py), so a second run fetches only what is missing.
    """
    uri = checkpoint_uri(job_id, settings)
    status = follow.query(job_id)
    destination.mkdir(parents=True, exist_ok=True)
    _download_checkpoints(uri, destination)
    _download_log(status, destination / LOGS)
    return [destination / CHECKPOINTS, destination / LOGS]


def _download_checkpoints(uri: str, destination: Path) -> None:
    target = destination / CHECKPOINTS
    dataset = DATASET_URI.match(uri)
    if dataset is None:
        _require_client(uses_url=True, uri=uri)
        runner.run(["data", "download", uri, str(target), "--resume"])
        target.mkdir(exist_ok=True)
        return
    _require_client(uses_url=False, uri=uri)
    reference = dataset.group("dataset")
    staging = destination / STAGING
    runner.run(["dataset", "download", reference, str(staging), "--resume"])
    name = reference.split("/")[-1].split(":")[0]
    _link_tree(staging / name / (dataset.group("path") or "").strip("/"), target)


def _link_tree(source: Path, target: Path) -> None:
    """Make ``target`` hold the files of ``source`` (hard links: no second copy), replacing stale ones."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if not path.is_file():
            continue
        linked = target / path.relative_to(source)
        if linked.exists() and os.path.samefile(linked, path):
            continue
        linked.parent.mkdir(parents=True, exist_ok=True)
        linked.unlink(missing_ok=True)
        try:
            os.link(path, linked)
        except OSError:
            shutil.copy2(path, linked)


def _download_log(status: JobStatus, folder: Path) -> None:
    """``osmo workflow logs``: kept as ``ID.log`` once the workflow has ended (then never fetched again);
    while it runs, what is there so far goes to ``ID.so-far.log``."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{status.job_id}.log"
    if final.is_file():
        return
    target = final if status.finished else folder / f"{status.job_id}.so-far.log"
    part = target.with_name(target.name + ".part")
    with part.open("w", encoding="utf-8") as out:
        follow.logs(status.job_id, status.finished, out.write)
    part.replace(target)


def _require_client(uses_url: bool, uri: str) -> None:
    installed = datasets.client_version()
    if (installed >= datasets.FIRST_URL_VERSION) != uses_url:
        command = "data (OSMO 6.4+)" if uses_url else "dataset (OSMO 6.3)"
        raise UserError(
            f"{uri} is read with `osmo {command}`, which the installed osmo CLI "
            f"{installed[0]}.{installed[1]} does not have; use the CLI version that submitted the job"
        )

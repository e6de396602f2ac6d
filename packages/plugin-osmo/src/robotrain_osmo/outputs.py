"""A workflow's outputs after it ends: its checkpoint folder (to resume from, or to download) and its log.

Where the checkpoints of a job are is recorded at submit (``details["checkpoints"]``, see
``spec.checkpoint_output``): ``dataset://BUCKET/NAME:WORKFLOW_ID/checkpoints`` with the 6.3 CLI, the
storage URL ``.../WORKFLOW_ID/checkpoints`` with 6.4. Both are what ``--checkpoint-uri`` takes on OSMO.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from robotrain import JobStatus, Settings, UserError
from robotrain.history import JobRecord, find
from robotrain.job import CheckpointMode
from robotrain_osmo import datasets, follow, runner
from robotrain_osmo.spec import DATASET_URI, STORAGE_URI

STAGING = ".osmo-download"
"""Below the destination: where the osmo CLI downloads to (``dataset download`` adds the dataset's name),
kept so that ``--resume`` skips what is complete the next time."""
LOGS, CHECKPOINTS = "logs", "checkpoints"
RESUME = CheckpointMode.RESUME.value


def recorded(job_id: str, settings: Settings) -> JobRecord:
    record = find(settings.state_dir, follow.check_job_id(job_id))
    if record is None:
        raise UserError(
            f"OSMO workflow {job_id} was not submitted from this project, so robotrain does not know where "
            f"its checkpoints are; `invoke jobs` lists the jobs it knows"
        )
    return record


def checkpoint_uri(record: JobRecord) -> str | None:
    """The recorded URI of the job's checkpoint folder; None for a job of your own ``--workflow``
    template (robotrain does not know where it keeps checkpoints)."""
    uri = record.checkpoints
    if uri and not (DATASET_URI.match(uri) or STORAGE_URI.match(uri)):
        raise UserError(
            f"OSMO workflow {record.job_id} was recorded by an older robotrain ({uri}); download its "
            f"checkpoints with `osmo dataset download` or `osmo data download`"
        )
    return uri


def latest_checkpoint(job_id: str, settings: Settings) -> str:
    """The newest checkpoint of the job: its own checkpoint folder when OSMO holds files there, else the
    one it resumed from itself (a resumed attempt preempted before its first upload), else ``""``."""
    record = recorded(job_id, settings)
    uri = checkpoint_uri(record)
    if uri and _holds_files(uri):
        return uri
    started_from = record.settings.get("checkpoint_uri")
    if record.settings.get("checkpoint_mode") == RESUME and isinstance(started_from, str):
        return started_from
    return ""


def _holds_files(uri: str) -> bool:
    dataset = DATASET_URI.match(uri)
    if dataset is None:
        _require_client(uses_url=True, uri=uri)
        return bool(runner.run(["data", "list", uri, "--recursive", "--no-pager"]).strip())
    _require_client(uses_url=False, uri=uri)
    name, _, tag = dataset.group("dataset").partition(":")
    try:
        info = runner.run_json(["dataset", "info", name, "-t", "json"])
    except UserError as error:
        if "does not exist" in str(error):
            return False
        raise
    versions = info.get("versions") if isinstance(info, dict) else None
    return any(tag in (version.get("tags") or []) for version in versions or [])


def download(job_id: str, destination: Path, settings: Settings) -> list[Path]:
    """The checkpoint folder into ``destination/checkpoints``, the log into ``destination/logs``.

    The osmo CLI downloads by itself: with ``--resume`` it skips a file already there with the same size
    and checksum (src/lib/data/storage/downloading.py), so a second run fetches only what is missing.
    """
    uri = checkpoint_uri(recorded(job_id, settings))
    status = follow.query(job_id)
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    if uri:
        _download_checkpoints(uri, destination, job_id)
        written.append(destination / CHECKPOINTS)
    else:
        sys.stderr.write(
            f"robotrain: note: {job_id} ran your own --workflow template; robotrain does not know where it "
            f"keeps checkpoints, so only its log is downloaded\n"
        )
    _download_log(status, destination / LOGS)
    return [*written, destination / LOGS]


def _download_checkpoints(uri: str, destination: Path, job_id: str) -> None:
    """The osmo CLI downloads into the staging folder; only once it is done do the files appear in
    ``checkpoints/``, so that folder never holds a half-written file."""
    staging = destination / STAGING
    dataset = DATASET_URI.match(uri)
    if dataset is None:
        _require_client(uses_url=True, uri=uri)
        arguments, fetched = ["data", "download", uri, str(staging / CHECKPOINTS)], staging / CHECKPOINTS
    else:
        _require_client(uses_url=False, uri=uri)
        reference = dataset.group("dataset")
        arguments = ["dataset", "download", reference, str(staging)]
        name = reference.split("/")[-1].split(":")[0]
        fetched = staging / name / (dataset.group("path") or "").strip("/")
    try:
        runner.run([*arguments, "--resume"], show_progress=True)
    except UserError as error:
        raise UserError(
            f"{error}; run `invoke download {job_id}` again to continue (complete files are not "
            f"fetched again)"
        ) from None
    _link_tree(fetched, destination / CHECKPOINTS)


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

        def write(text: str) -> None:
            out.write(text)

        follow.logs(status.job_id, status.finished, write)
    part.replace(target)


def _require_client(uses_url: bool, uri: str) -> None:
    installed = datasets.client_version()
    if (installed >= datasets.FIRST_URL_VERSION) != uses_url:
        command = "data (OSMO 6.4+)" if uses_url else "dataset (OSMO 6.3)"
        raise UserError(
            f"{uri} is read with `osmo {command}`, which the installed osmo CLI "
            f"{installed[0]}.{installed[1]} does not have; use the CLI version that submitted the job"
        )

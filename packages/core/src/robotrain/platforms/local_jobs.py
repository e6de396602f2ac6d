"""Local jobs on disk: ``.robotrain/jobs/<job-id>/`` and the process that runs each.

A job folder holds ``workspace/`` (the unpacked payload, the job's working
directory), ``output.log`` (everything the job printed), ``job.json`` (command,
state, process id, exit code, times), ``inputs/checkpoint`` (a resolved
checkpoint) and ``outputs/checkpoints`` (``TRAINING_CHECKPOINT_OUTPUT``).

The job's command runs under a small supervisor (``local_runner``) in its own
session, so it outlives a detached ``invoke train``, and the supervisor records
the exit code. Only the standard library is imported here.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from robotrain.errors import UserError

STARTING, RUNNING, COMPLETED, FAILED, CANCELED = "starting", "running", "completed", "failed", "canceled"
FINISHED = frozenset({COMPLETED, FAILED, CANCELED})
POLL_SECONDS = 0.1
CANCEL_GRACE_SECONDS = 10.0
STARTING_GRACE_SECONDS = 120.0
"""A job still starting (no supervisor yet) after this long was abandoned by its ``invoke train``."""


def new_job_id() -> str:
    """``local-20250101-120000-1a2b``: sortable by time, unique by the random suffix."""
    return f"local-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class LocalJob:
    """One job's folder and its ``job.json`` record."""

    root: Path

    @property
    def job_id(self) -> str:
        return self.root.name

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def log(self) -> Path:
        return self.root / "output.log"

    @property
    def record_path(self) -> Path:
        return self.root / "job.json"

    @property
    def checkpoint_input(self) -> Path:
        return self.root / "inputs" / "checkpoint"

    @property
    def checkpoint_output(self) -> Path:
        return self.root / "outputs" / "checkpoints"

    def read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise UserError(f"local job {self.job_id}: cannot read {self.record_path} ({error})") from None
        return data

    def write(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into job.json (atomically: readers never see half a file)."""
        record = self.read() if self.record_path.exists() else {}
        record.update(changes)
        partial = self.record_path.with_name(f"job.json.{os.getpid()}.partial")
        partial.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        partial.replace(self.record_path)
        return record


def jobs_dir(state_dir: Path) -> Path:
    return state_dir / "jobs"


def find_job(state_dir: Path, job_id: str) -> LocalJob:
    """The job with this id, or a UserError naming where local jobs live."""
    root = jobs_dir(state_dir) / job_id
    if "/" in job_id or job_id in ("", ".", "..") or not (root / "job.json").is_file():
        raise UserError(
            f"no local job {job_id!r} in {jobs_dir(state_dir)}; use the id `invoke train` printed"
        )
    return LocalJob(root)


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie.

    Comparing start times tells a live job from an unrelated process that
    reused its pid. Without ``/proc`` only existence is checked.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _exists(pid)
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def _exists(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def is_alive(record: dict[str, Any]) -> bool:
    """Whether the job's supervisor (recorded pid and start time) is still running."""
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    started = process_start(pid)
    return started is not None and started in (record.get("process_start"), "?")


def current_state(job: LocalJob) -> dict[str, Any]:
    """job.json, with a running job whose process has died recorded as failed."""
    record = job.read()
    if record.get("state") not in (STARTING, RUNNING) or is_alive(record):
        return record
    record = job.read()  # the supervisor may have recorded the end just before it exited
    if record.get("state") in FINISHED:
        return record
    if (
        record.get("state") == STARTING
        and time.time() - float(record.get("created", 0)) < STARTING_GRACE_SECONDS
    ):
        return record
    return job.write(
        state=FAILED, ended=time.time(), reason="the job's process died without recording an end"
    )


def cancel(job: LocalJob) -> dict[str, Any]:
    """SIGTERM the job's process group, wait (SIGKILL after a grace period), record canceled."""
    record = current_state(job)
    if record.get("state") in FINISHED:
        return record
    pid = int(record["pid"])
    _signal_group(pid, signal.SIGTERM)
    if not _wait_until(lambda: not is_alive(record), CANCEL_GRACE_SECONDS):
        _signal_group(pid, signal.SIGKILL)
        _wait_until(lambda: not is_alive(record), CANCEL_GRACE_SECONDS)
    record = job.read()
    if record.get("state") in FINISHED:
        return record
    return job.write(state=CANCELED, ended=time.time())


def stop_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a supervisor that has not recorded itself yet)."""
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def _wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def follow(job: LocalJob, write: Callable[[str], None], running: Callable[[], bool]) -> None:
    """Pass the log to ``write`` as it grows, until ``running()`` is false; then the rest."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    offset = 0
    while True:
        still_running = running()
        chunk = _read_from(job.log, offset)
        offset += len(chunk)
        text = decoder.decode(chunk, final=not still_running)
        if text:
            write(text)
        if not still_running:
            return
        if not chunk:
            time.sleep(POLL_SECONDS)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""

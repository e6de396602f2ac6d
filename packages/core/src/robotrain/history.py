"""The project's record of submitted jobs: ``.robotrain/submissions.jsonl``.

One JSON line per event, appended in a single write so concurrent commands and
interrupts never mix or cut lines: ``submitted`` (the job, where it went and how it
was built: its settings without sensitive values, its description, its payload
hash, which attempt it is) and ``state`` (a state read from the platform). Later
lines of the same job add to earlier ones; ``jobs``, ``rerun``, ``download`` and
``status``/``logs``/``cancel`` (which need no ``--platform`` for a recorded job) read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robotrain.job import FINISHED_STATES, JobSpec, Submission

FILE = "submissions.jsonl"


@dataclass(frozen=True)
class JobRecord:
    """Everything recorded about one submitted job."""

    job_id: str
    platform: str
    url: str | None = None
    time: float = 0.0
    """When it was submitted (seconds since the epoch)."""
    workload: str | None = None
    name: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    """The option values it was built from, sensitive ones left out."""
    extra_args: tuple[str, ...] = ()
    job: Mapping[str, Any] = field(default_factory=dict)
    """``JobSpec.to_dict()``."""
    payload_sha256: str | None = None
    checkpoints: str | None = None
    attempt: int = 1
    first_attempt: str | None = None
    """The job id of attempt 1 when this is a retry."""
    rerun_of: str | None = None
    state: str | None = None
    """The last state read from the platform (or reported by ``train``)."""
    state_time: float | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return data | {"settings": dict(self.settings), "extra_args": list(self.extra_args),
                       "job": dict(self.job)}  # fmt: skip


@dataclass
class Recording:
    """What ``train`` knows about the job it is submitting, added to its record by whoever records it."""

    fields: dict[str, Any]
    recorded: list[Submission] = field(default_factory=list)


_recording: ContextVar[Recording | None] = ContextVar("robotrain_recording", default=None)


@contextlib.contextmanager
def recording(**fields: Any) -> Iterator[Recording]:
    """Within this block, every ``record_submission`` (core's or a platform's) records ``fields`` too."""
    current = Recording(fields)
    token = _recording.set(current)
    try:
        yield current
    finally:
        _recording.reset(token)


def describe(job: JobSpec, settings: Mapping[str, Any], extra_args: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``recording`` takes for a job built from these settings."""
    return {
        "workload": job.workload,
        "name": job.name,
        "settings": dict(settings),
        "extra_args": list(extra_args),
        "job": job.to_dict(),
        "payload_sha256": None if job.payload is None else job.payload.sha256,
    }


def record_submission(state_dir: Path, submission: Submission) -> None:
    """Record a submitted job; recording it again (a platform that records before streaming, then
    ``train``) adds nothing."""
    current = _recording.get()
    if current is not None and all(s.job_id != submission.job_id for s in current.recorded):
        current.recorded.append(submission)
    if find_platform(state_dir, submission.job_id) == submission.platform:
        return
    checkpoints = submission.details.get("checkpoints")
    _append(state_dir, {
        "event": "submitted", "job_id": submission.job_id, "platform": submission.platform,
        "url": submission.url, "time": time.time(),
        "checkpoints": None if checkpoints is None else str(checkpoints),
        **(current.fields if current is not None else {}),
    })  # fmt: skip


def record_state(state_dir: Path, platform: str, job_id: str, state: str) -> None:
    _append(state_dir, {"event": "state", "job_id": job_id, "platform": platform, "state": state,
                        "state_time": time.time()})  # fmt: skip


def _append(state_dir: Path, line: Mapping[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(state_dir / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(line, default=str) + "\n").encode())
    finally:
        os.close(descriptor)


def _lines(state_dir: Path) -> Iterator[dict[str, Any]]:
    path = state_dir / FILE
    if not path.exists():
        return
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("job_id"), str) and entry.get("platform"):
            yield entry


def load(state_dir: Path) -> list[JobRecord]:
    """Every recorded job, newest submission first."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in _lines(state_dir):
        key = (str(entry["platform"]), str(entry["job_id"]))
        if entry.get("event") == "state" and key not in merged:
            continue
        known = merged.setdefault(key, {})
        fields = JobRecord.__dataclass_fields__
        known.update({k: v for k, v in entry.items() if k in fields and v is not None})
    records = [_record(fields) for fields in merged.values() if "time" in fields]
    return sorted(records, key=lambda record: record.time, reverse=True)


def _record(fields: dict[str, Any]) -> JobRecord:
    fields = dict(fields)
    fields["extra_args"] = tuple(fields.get("extra_args") or ())
    return JobRecord(**fields)


def find(state_dir: Path, job_id: str) -> JobRecord | None:
    """The newest recorded job with this id."""
    return next((record for record in load(state_dir) if record.job_id == job_id), None)


def find_platform(state_dir: Path, job_id: str) -> str | None:
    """The platform of the newest recorded submission with this id."""
    found = None
    for entry in _lines(state_dir):
        if entry["job_id"] == job_id and entry.get("event", "submitted") == "submitted":
            found = str(entry["platform"])
    return found

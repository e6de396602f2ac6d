"""Which platform each submitted job went to, so status/logs/cancel need no --platform."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from robotrain.job import Submission

FILE = "submissions.jsonl"


def record_submission(state_dir: Path, submission: Submission) -> None:
    """Append one line in a single write, so concurrent commands and interrupts never mix or cut lines.

    A job already recorded (a platform that records before streaming, then ``train`` again) is not
    recorded twice.
    """
    if find_platform(state_dir, submission.job_id) == submission.platform:
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    line = {"job_id": submission.job_id, "platform": submission.platform, "url": submission.url,
            "time": time.time()}  # fmt: skip
    descriptor = os.open(state_dir / FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (json.dumps(line) + "\n").encode())
    finally:
        os.close(descriptor)


def find_platform(state_dir: Path, job_id: str) -> str | None:
    """The platform of the newest recorded submission with this id."""
    path = state_dir / FILE
    if not path.exists():
        return None
    found = None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("job_id") == job_id:
            found = entry.get("platform")
    return found

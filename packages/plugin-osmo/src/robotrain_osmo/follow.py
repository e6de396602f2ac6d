"""Following a submitted workflow: ``osmo workflow query``, ``logs`` and ``cancel``."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any

from robotrain import JobStatus, UserError
from robotrain_osmo import runner

PLATFORM = "osmo"
POLL_ENV = "ROBOTRAIN_OSMO_POLL_SECONDS"
JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
STATES = {
    "PENDING": "pending",
    "WAITING": "running",
    "RUNNING": "running",
    "COMPLETED": "completed",
    "FAILED_CANCELED": "canceled",
}


def robotrain_state(raw: str) -> str:
    """OSMO's workflow status as a robotrain state (every ``FAILED_*`` but cancelation is ``failed``)."""
    return STATES.get(raw) or ("failed" if raw.startswith("FAILED") else raw.lower() or "unknown")


def check_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id):
        raise UserError(
            f"{job_id!r} is not an OSMO workflow id (like isaaclab-training-3); use the id train printed"
        )
    return job_id


def query(job_id: str) -> JobStatus:
    data = runner.run_json(["workflow", "query", check_job_id(job_id), "-t", "json"])
    if not isinstance(data, dict):
        raise UserError(f"`osmo workflow query {job_id}` answered with no workflow")
    raw = str(data.get("status", ""))
    details = {
        "status": raw,
        "overview": data.get("overview"),
        "logs": data.get("logs"),
        "pool": data.get("pool"),
        "tasks": _tasks(data),
    }
    return JobStatus(PLATFORM, job_id, robotrain_state(raw), details)


def _tasks(data: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("name", "status", "exit_code", "failure_message")
    return [
        {key: task.get(key) for key in keys}
        for group in data.get("groups") or []
        for task in group.get("tasks") or []
    ]


def logs(job_id: str, follow: bool, write: Callable[[str], None]) -> bool:
    """Write the logs; with ``follow``, poll until the workflow has finished, writing only new text."""
    check_job_id(job_id)
    shown = _show_new(job_id, "", write)
    while follow:
        finished = query(job_id).finished
        shown = _show_new(job_id, shown, write)
        if finished:
            break
        time.sleep(float(os.environ.get(POLL_ENV, "10")))
    return True


def _show_new(job_id: str, shown: str, write: Callable[[str], None]) -> str:
    text = runner.run(["workflow", "logs", job_id])
    write(text[len(shown) :] if text.startswith(shown) else text)
    return text


def cancel(job_id: str) -> JobStatus:
    """Cancel; OSMO exits 0 even when it could not, so its output says which."""
    output = runner.run(["workflow", "cancel", check_job_id(job_id), "-t", "json"])
    if "cancelation failed" in output.lower():
        raise UserError(f"OSMO could not cancel {job_id}: {' '.join(output.split())[:300]}")
    status = query(job_id)
    if status.finished:
        return status
    return JobStatus(PLATFORM, job_id, "canceling", status.details)

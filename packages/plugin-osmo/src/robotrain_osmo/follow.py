"""Following a submitted workflow: ``osmo workflow query``, ``logs`` and ``cancel``."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from robotrain import JobStatus, UserError
from robotrain_osmo import runner

PLATFORM = "osmo"
QUIET_ENV = "ROBOTRAIN_OSMO_LOGS_QUIET_SECONDS"
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
    """Stream ``osmo workflow logs``, each line written as it arrives.

    The CLI follows the workflow until it ends (src/cli/workflow.py reads the server's stream line by
    line). With ``follow`` that is what the user gets; without it the stream is stopped once it has been
    quiet for a moment (what is there has been shown). Ctrl-C stops following cleanly.
    """
    check_job_id(job_id)
    banner = f"Workflow {job_id} has logs:\n"

    def show(line: str) -> None:
        if line != banner:
            write(line)

    quiet = None if follow else float(os.environ.get(QUIET_ENV, "2"))
    try:
        runner.stream(["workflow", "logs", job_id], show, quiet_seconds=quiet)
    except KeyboardInterrupt:
        sys.stderr.write(f"\nrobotrain: stopped following {job_id}; the workflow keeps running\n")
    return True


def cancel(job_id: str) -> JobStatus:
    """Cancel; OSMO exits 0 even when it could not, so its output says which."""
    output = runner.run(["workflow", "cancel", check_job_id(job_id), "-t", "json"])
    if "cancelation failed" in output.lower():
        raise UserError(f"OSMO could not cancel {job_id}: {' '.join(output.split())[:300]}")
    status = query(job_id)
    if status.finished:
        return status
    return JobStatus(PLATFORM, job_id, "canceling", status.details)

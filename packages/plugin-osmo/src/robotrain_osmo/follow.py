"""Following a submitted workflow: ``osmo workflow query``, ``logs`` and ``cancel``."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from robotrain import JobStatus, UserError
from robotrain.job import FAILED, OUT_OF_MEMORY, PREEMPTED
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
    # src/operator/backend_listener.py calculate_pod_status: the scheduler preempted the pod
    # (PreemptionByScheduler, exit code 3006), after OSMO's own rescheduling, if any, gave up.
    "FAILED_PREEMPTED": PREEMPTED,
    # The machine went away: a DisruptionTarget condition (node drained, spot node reclaimed), a node
    # that stopped reporting (ContainerStatusUnknown for 30 min), a GPU that dropped
    # (UnexpectedAdmissionError); docs/user_guide/workflows/lifecycle/index.rst: "Node failures".
    "FAILED_BACKEND_ERROR": PREEMPTED,
}
EVICTED = "FAILED_EVICTED"
POD_MESSAGE = " error message: "
"""backend_listener.py prefixes a pod-level message (``pod.status.message``, set when the kubelet evicts
the pod) with ``Pod NAME error message: ``; an OOMKilled container leaves none."""
LOW_ON_MEMORY = "low on resource: memory"
"""Kubernetes pkg/kubelet/eviction/helpers.go: ``The node was low on resource: memory. ...``."""


def robotrain_state(raw: str) -> str:
    """OSMO's workflow status as a robotrain state (every other ``FAILED_*`` is ``failed``)."""
    return STATES.get(raw) or (FAILED if raw.startswith("FAILED") else raw.lower() or "unknown")


def out_of_memory(raw: str, tasks: list[dict[str, Any]]) -> bool:
    """Whether a ``FAILED_EVICTED`` workflow ran out of memory.

    src/operator/backend_listener.py calculate_pod_status turns an ``OOMKilled`` container into
    ``FAILED_EVICTED`` (exit code 3004), the status of a pod the kubelet evicted too; the task's
    failure message tells them apart: an eviction carries the pod's message (memory, or another
    resource such as ephemeral storage), an OOM kill only the containers' exit codes.
    """
    if raw != EVICTED:
        return False
    for task in tasks:
        message = str(task.get("failure_message") or "")
        if task.get("status") == EVICTED and (POD_MESSAGE not in message or LOW_ON_MEMORY in message):
            return True
    return False


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
    tasks = _tasks(data)
    details = {
        "status": raw,
        "overview": data.get("overview"),
        "logs": data.get("logs"),
        "pool": data.get("pool"),
        "tasks": tasks,
    }
    if out_of_memory(raw, tasks):
        details[OUT_OF_MEMORY] = True
    return JobStatus(PLATFORM, job_id, robotrain_state(raw), details)


LIST_COUNT = 1000
"""One page of the service's listing (src/cli/workflow.py asks at most 1000 per request)."""


def list_states(job_ids: Sequence[str]) -> list[JobStatus]:
    """The states of several workflows: one ``osmo workflow list`` (the user's newest workflows, all
    pools), then ``query`` for each one the listing did not hold (older, or another user's).

    The listing has no task details, so a ``FAILED_EVICTED`` one is ``failed`` without telling whether
    it ran out of memory; ``status`` tells.
    """
    for job_id in job_ids:
        check_job_id(job_id)
    listed = _listed_workflows()
    found = []
    for job_id in job_ids:
        entry = listed.get(job_id)
        if entry is None:
            found.append(query(job_id))
            continue
        raw = str(entry.get("status", ""))
        details = {"status": raw, "overview": entry.get("overview"), "pool": entry.get("pool")}
        found.append(JobStatus(PLATFORM, job_id, robotrain_state(raw), details))
    return found


def _listed_workflows() -> dict[str, dict[str, Any]]:
    """``osmo workflow list -t json``: ``{"workflows": [ListEntry...]}``, each ``name`` a workflow id
    (src/service/core/workflow/objects.py ListEntry)."""
    data = runner.run_json(["workflow", "list", "-t", "json", "--count", str(LIST_COUNT), "--order", "desc"])
    entries = data.get("workflows") if isinstance(data, dict) else None
    return {str(entry.get("name")): entry for entry in entries or [] if isinstance(entry, dict)}


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

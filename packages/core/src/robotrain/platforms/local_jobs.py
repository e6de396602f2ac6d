"""Local jobs on disk: ``.robotrain/jobs/<job-id>/`` and the processes that run each.

A job folder holds ``workspace/`` (the unpacked payload, the job's working
directory), ``output.log`` (everything the job printed), ``job.json`` (command,
state, process ids, exit code, times), ``inputs/checkpoint`` (a resolved
checkpoint) and ``outputs/checkpoints`` (``TRAINING_CHECKPOINT_OUTPUT``).

The job's command runs under a small supervisor (``local_runner``) in its own
session, so it outlives a detached ``invoke train``. The command itself runs in
a process group of its own (``group`` in job.json): the supervisor stops that
group on cancel and timeout, and a watcher stops it when the supervisor dies.
A command killed by a signal robotrain did not send (SIGKILL from the kernel or
another user, the machine's analogue of a spot eviction) ends ``preempted``;
one whose log ends with an out-of-memory error ends ``failed`` with
``out_of_memory``. A job whose supervisor died while its group still runs is reported running,
and ``cancel`` stops the group. Writes to job.json hold a file lock, so a
cancel and a supervisor that is starting never miss each other.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from robotrain import job as shared
from robotrain.errors import UserError
from robotrain.job import NODE_VARIABLES, RANK_VARIABLES

STARTING, RUNNING = "starting", "running"
COMPLETED, FAILED, CANCELED = shared.COMPLETED, shared.FAILED, shared.CANCELED
FINISHED = shared.FINISHED_STATES
POLL_SECONDS = 0.1
CANCEL_GRACE_SECONDS = 10.0
STARTING_GRACE_SECONDS = 120.0
"""A job still starting (no supervisor yet) after this long was abandoned by its ``invoke train``."""
TEST_SIGNAL_VARIABLE = "ROBOTRAIN_TEST_SIGNAL_AT"
"""Test-only: ``STEP:SIGNAL`` (e.g. ``store-built:SIGINT``) makes robotrain signal itself at that step."""
_LOCKS: dict[Path, FileLock] = {}
LOOPBACK = "127.0.0.1"
"""``MASTER_ADDR`` of a distributed local job: its processes meet on this machine's loopback."""


def test_hook(step: str) -> None:
    """Test-only: send this process the signal ``ROBOTRAIN_TEST_SIGNAL_AT`` names for ``step``.

    Tests interrupt robotrain at exact points this way instead of racing it with
    sleeps. Unset (always, outside tests) it does nothing.
    """
    wanted, _, name = os.environ.get(TEST_SIGNAL_VARIABLE, "").partition(":")
    if wanted == step:
        os.kill(os.getpid(), signal.Signals[name or "SIGINT"])


def new_job_id() -> str:
    """``local-20250101-120000-1a2b``: sortable by time, unique by the random suffix."""
    return f"local-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def format_duration(seconds: float) -> str:
    """3600 → ``1h``, 5400 → ``1h30m``, 2 → ``2s``."""
    rest, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


def max_processes() -> int:
    """The most processes a local job may start: one per CPU this process may use, at least 2."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(len(usable), 2)


def free_port() -> int:
    """A loopback port free right now (the system picks it), for the processes' rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def process_variables(
    processes: int, launches_processes: bool, port: str, environment: Mapping[str, str]
) -> list[dict[str, str]]:
    """What each copy of the command gets on top of ``environment`` (the job's, with yours).

    ``RANK_VARIABLES`` per process, and ``OMP_NUM_THREADS=1`` unless set (as ``torch.distributed.run``
    does, so the processes do not each take every core); or one copy with ``NODE_VARIABLES`` when the
    command launches its processes itself; or one copy with nothing added for a one-process job.
    """
    if processes <= 1:
        return [{}]
    if launches_processes:
        return [dict(zip(NODE_VARIABLES, ("1", "0", str(processes), LOOPBACK, port), strict=True))]
    threads = {} if "OMP_NUM_THREADS" in environment else {"OMP_NUM_THREADS": "1"}
    size = str(processes)
    return [
        dict(zip(RANK_VARIABLES, (str(rank), str(rank), size, size, "0", LOOPBACK, port), strict=True))
        | threads
        for rank in range(processes)
    ]


def log_prefix(rank: int) -> str:
    """What starts each log line of a process: nothing for rank 0 (or a single copy), ``[rank N] `` else."""
    return f"[rank {rank}] " if rank else ""


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

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the job's lock (re-entrant in one process) while reading and changing job.json."""
        path = self.root / "job.lock"
        lock = _LOCKS.setdefault(path, FileLock(path))
        with lock:
            yield

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise UserError(
                f"local job {self.job_id}: cannot read {self.record_path} ({reason}); "
                f"the record is damaged, delete {self.root} if the job is no longer needed"
            ) from None
        if not isinstance(data, dict):
            raise UserError(
                f"local job {self.job_id}: {self.record_path} is not a job record (a JSON object); "
                f"delete {self.root} if the job is no longer needed"
            )
        return data

    def write(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into job.json under the lock (atomically: readers never see half a file)."""
        with self.locked():
            record = self.read() if self.record_path.exists() else {}
            record.update(changes)
            partial = self.record_path.with_name(f"job.json.{os.getpid()}-{secrets.token_hex(4)}.partial")
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


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name, or None when the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def process_start(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie.

    Comparing start times tells a live job from an unrelated process that
    reused its pid. Without ``/proc`` only existence is checked.
    """
    if not Path("/proc/self/stat").exists():
        return _exists(pid)
    fields = _stat_fields(pid)
    return None if fields is None or fields[0] in ("Z", "X") else fields[19]


def _exists(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"
    return "?"


def group_alive(group: object) -> bool:
    """Whether any live (not zombie) process is in process group ``group``.

    A process group id is not handed to a new process while the group has
    members, so this cannot mistake another program for the job.
    """
    if not isinstance(group, int) or group <= 1:
        return False
    if not Path("/proc/self/stat").exists():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X") and fields[2] == str(group):
                return True
    return False


def supervisor_alive(record: dict[str, Any]) -> bool:
    """Whether the job's supervisor (recorded pid and start time) is still running."""
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    started = process_start(pid)
    return started is not None and started in (record.get("process_start"), "?")


def is_alive(record: dict[str, Any]) -> bool:
    """Whether anything of the job still runs: its supervisor or its command's process group."""
    return supervisor_alive(record) or group_alive(record.get("group"))


ORPHANED = "its supervisor died while the training still runs; `invoke cancel` stops it"


def current_state(job: LocalJob) -> dict[str, Any]:
    """job.json, with a running job whose processes have all died recorded as failed.

    A job whose supervisor died while its training still runs stays running
    (with a reason saying so): ``status`` never says failed while training runs.
    """
    record = job.read()
    if record.get("state") not in (STARTING, RUNNING):
        return record
    if supervisor_alive(record):
        return record
    if group_alive(record.get("group")):
        return record if record.get("reason") == ORPHANED else job.write(reason=ORPHANED)
    with job.locked():
        record = job.read()  # the supervisor may have recorded the end just before it exited
        if record.get("state") in FINISHED:
            return record
        if record.get("state") == STARTING and _age(record) < STARTING_GRACE_SECONDS:
            return record
        return job.write(
            state=FAILED, ended=time.time(), reason="the job's process died without recording an end"
        )


def _age(record: dict[str, Any]) -> float:
    created = record.get("created")
    return time.time() - float(created) if isinstance(created, int | float) else float("inf")


def cancel(job: LocalJob) -> dict[str, Any]:
    """Stop the job: SIGTERM, SIGKILL after a grace period; record canceled.

    A job whose supervisor has not recorded itself yet is marked canceled at
    once, and that supervisor then never starts the command.
    """
    with job.locked():
        record = current_state(job)
        if record.get("state") in FINISHED:
            return record
        if not isinstance(record.get("pid"), int):
            return job.write(state=CANCELED, ended=time.time(), reason="canceled before it started")
    stop(record, CANCEL_GRACE_SECONDS)
    with job.locked():
        record = job.read()
        if record.get("state") in FINISHED:
            return record
        return job.write(state=CANCELED, ended=time.time())


def stop(record: dict[str, Any], grace: float) -> None:
    """SIGTERM the supervisor's and the command's groups; SIGKILL them when still alive after ``grace``."""
    groups = [g for g in (record.get("pid"), record.get("group")) if isinstance(g, int) and g > 1]
    supervisor = supervisor_alive(record)
    for group in groups:
        if group != record.get("pid") or supervisor:
            signal_group(group, signal.SIGTERM)
    if not _wait_until(lambda: not is_alive(record), grace):
        for group in groups:
            if group != record.get("pid") or supervisor_alive(record):
                signal_group(group, signal.SIGKILL)
        _wait_until(lambda: not is_alive(record), grace)


def stop_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a supervisor that has not recorded itself yet)."""
    signal_group(pid, signal.SIGKILL)


def signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


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

"""The supervisor of one local job: ``python -m robotrain.platforms.local_runner JOB_FOLDER``.

It records its pid in job.json, runs the job's command from the workspace in a
process group of its own (its output goes where the supervisor's goes: the
job's log), and records how it ended. SIGTERM (``invoke cancel``, Ctrl-C on a
foreground run) is passed on to the command's group and the job recorded as
canceled. A job with ``timeout_seconds`` is stopped after that long and
recorded as failed ("timed out after ..."). A watcher process forked before
the command starts stops the command's group when the supervisor dies, so a
killed supervisor leaves no training behind.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from robotrain.platforms.local_jobs import (
    CANCEL_GRACE_SECONDS,
    CANCELED,
    COMPLETED,
    FAILED,
    RUNNING,
    STARTING,
    LocalJob,
    format_duration,
    process_start,
    signal_group,
    test_hook,
)

DONE = b"done\n"


def watch(read_end: int) -> None:
    """The watcher: wait for the command's group id, then for the supervisor's end.

    The supervisor holds the pipe's write end; when it dies without writing
    ``done`` the pipe closes and the watcher SIGKILLs the command's group.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received = b""
    while chunk := os.read(read_end, 64):
        received += chunk
    lines = received.decode().split()
    if lines and lines[-1] != "done" and lines[0].isdigit():
        signal_group(int(lines[0]), signal.SIGKILL)


def start_watcher() -> int:
    """Fork the watcher; the returned write end tells it the group id and, at the end, ``done``."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        try:
            watch(read_end)
        finally:
            os._exit(0)
    os.close(read_end)
    return write_end


class Supervisor:
    def __init__(self, job: LocalJob) -> None:
        self.job = job
        self.canceled = False
        self.child: subprocess.Popen[bytes] | None = None

    def on_terminate(self, signum: int, frame: FrameType | None) -> None:
        self.canceled = True
        self._stop_child(signal.SIGTERM)

    def _stop_child(self, signum: signal.Signals) -> None:
        if self.child is not None:
            signal_group(self.child.pid, signum)

    def run(self) -> int:
        with self.job.locked():
            record = self.job.read()
            if record.get("state") != STARTING:  # canceled (or given up on) before it started
                print(f"robotrain: local job {self.job.job_id} {record.get('state')} before it started",
                      flush=True)  # fmt: skip
                return 1
            record = self.job.write(
                state=RUNNING, pid=os.getpid(), process_start=process_start(os.getpid()), started=time.time()
            )
        test_hook("supervisor-recorded")
        command = [str(item) for item in record["command"]]
        timeout = record.get("timeout_seconds")
        watcher = start_watcher()
        try:
            return self._run(command, timeout if isinstance(timeout, int | float) else None, watcher)
        finally:
            with contextlib.suppress(OSError):
                os.write(watcher, DONE)

    def _run(self, command: list[str], timeout: float | None, watcher: int) -> int:
        if self.canceled:
            return self._finish(CANCELED, None)
        print(f"robotrain: local job {self.job.job_id}: {shlex.join(command)}", flush=True)
        try:
            self.child = subprocess.Popen(command, cwd=self.job.workspace, process_group=0)
        except OSError as error:
            print(f"robotrain: cannot start the job: {error}", flush=True)
            return self._finish(FAILED, None, reason=str(error))
        os.write(watcher, f"{self.child.pid}\n".encode())
        self.job.write(group=self.child.pid)
        if self.canceled:  # SIGTERM arrived while the command was being started
            self._stop_child(signal.SIGTERM)
        try:
            code = self.child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self._time_out(timeout or 0)
        self._stop_child(signal.SIGKILL)  # whatever the command left running in its group
        return self._finish(CANCELED if self.canceled else COMPLETED if code == 0 else FAILED, code)

    def _time_out(self, timeout: float) -> int:
        assert self.child is not None
        reason = f"timed out after {format_duration(timeout)}"
        print(f"robotrain: local job {self.job.job_id} {reason}; stopping it", flush=True)
        self._stop_child(signal.SIGTERM)
        try:
            self.child.wait(timeout=CANCEL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._stop_child(signal.SIGKILL)
        code = self.child.wait()
        self._stop_child(signal.SIGKILL)
        return self._finish(FAILED, code, reason=reason)

    def _finish(self, state: str, code: int | None, reason: str | None = None) -> int:
        print(f"robotrain: local job {self.job.job_id} {state} (exit code {code})", flush=True)
        changes = {"state": state, "exit_code": code, "ended": time.time()}
        self.job.write(**changes, **({"reason": reason} if reason else {}))
        return 0 if state == COMPLETED else 1


def main(argv: list[str]) -> int:
    supervisor = Supervisor(LocalJob(Path(argv[0])))
    signal.signal(signal.SIGTERM, supervisor.on_terminate)
    signal.signal(signal.SIGINT, supervisor.on_terminate)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

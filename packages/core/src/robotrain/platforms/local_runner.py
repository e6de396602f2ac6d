"""The supervisor of one local job: ``python -m robotrain.platforms.local_runner JOB_FOLDER``.

It records its pid in job.json, runs the job's command from the workspace in a
process group of its own (its output goes where the supervisor's goes: the
job's log), and records how it ended. A distributed job's copies of the command
(one per process, each with its rank variables, or one launcher with the node
variables) all run in that group: the job completes when every copy completed
and fails as soon as one fails, the others then stopped. Lines of ranks above 0
reach the log prefixed ``[rank N] ``. SIGTERM (``invoke cancel``, Ctrl-C on a
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
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO, Any

from robotrain.job import PREEMPTED
from robotrain.platforms.local_jobs import (
    CANCEL_GRACE_SECONDS,
    CANCELED,
    COMPLETED,
    FAILED,
    LOOPBACK,
    POLL_SECONDS,
    RUNNING,
    STARTING,
    LocalJob,
    format_duration,
    free_port,
    log_prefix,
    process_start,
    process_variables,
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
        self.group: int | None = None
        """The process group of the command's copies: the first copy's pid."""
        self.processes: list[subprocess.Popen[bytes]] = []
        self.relays: list[threading.Thread] = []

    def on_terminate(self, signum: int, frame: FrameType | None) -> None:
        self.canceled = True
        self._signal(signal.SIGTERM)

    def _signal(self, signum: signal.Signals) -> None:
        if self.group is not None:
            signal_group(self.group, signum)

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
        copies = self._copies(record)
        watcher = start_watcher()
        try:
            return self._run(command, copies, timeout if isinstance(timeout, int | float) else None, watcher)
        finally:
            with contextlib.suppress(OSError):
                os.write(watcher, DONE)

    def _copies(self, record: dict[str, Any]) -> list[dict[str, str]]:
        """Each copy's variables, with a loopback port free now for a job of several processes."""
        processes = int(record.get("processes", 1))
        if processes <= 1:
            return [{}]
        port = free_port()
        self.job.write(master_port=port)
        return process_variables(processes, bool(record.get("launches_processes")), str(port), os.environ)

    def _run(
        self, command: list[str], copies: list[dict[str, str]], timeout: float | None, watcher: int
    ) -> int:
        if self.canceled:
            return self._finish(CANCELED, None)
        print(f"robotrain: local job {self.job.job_id}: {shlex.join(command)}", flush=True)
        if len(copies) > 1:
            print(f"robotrain: {len(copies)} processes (RANK 0-{len(copies) - 1}) on this machine, "
                  f"meeting at {LOOPBACK}:{copies[0]['MASTER_PORT']}", flush=True)  # fmt: skip
        elif copies[0]:
            print(f"robotrain: one launcher for {copies[0]['NPROC_PER_NODE']} processes, "
                  f"meeting at {LOOPBACK}:{copies[0]['MASTER_PORT']}", flush=True)  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for rank, variables in enumerate(copies):
                if not self.canceled:
                    self._start(command, rank, variables, watcher)
        except OSError as error:
            print(f"robotrain: cannot start the job: {error}", flush=True)
            self._stop_all()
            self._end()
            return self._finish(FAILED, None, reason=str(error))
        if self.canceled:  # SIGTERM arrived while the processes were being started
            self._signal(signal.SIGTERM)
        return self._wait(deadline, timeout)

    def _start(self, command: list[str], rank: int, variables: dict[str, str], watcher: int) -> None:
        """Start one copy in the job's group; the output of ranks > 0 reaches the log prefixed."""
        relayed = bool(log_prefix(rank))
        process = subprocess.Popen(
            command, cwd=self.job.workspace, env=os.environ | variables if variables else None,
            process_group=self.group or 0, stdout=subprocess.PIPE if relayed else None,
            stderr=subprocess.STDOUT if relayed else None,
        )  # fmt: skip
        self.processes.append(process)
        if self.group is None:
            self.group = process.pid
            os.write(watcher, f"{self.group}\n".encode())
            self.job.write(group=self.group)
        if relayed:
            assert process.stdout is not None
            relay = threading.Thread(target=relay_lines, args=(process.stdout, log_prefix(rank)), daemon=True)
            relay.start()
            self.relays.append(relay)

    def _wait(self, deadline: float | None, timeout: float | None) -> int:
        """Until every process completed, one failed (the others are then stopped) or time is up."""
        while True:
            codes = [process.poll() for process in self.processes]
            failed = next(((rank, code) for rank, code in enumerate(codes) if code not in (None, 0)), None)
            if failed is not None or None not in codes:
                break
            if deadline is not None and time.monotonic() >= deadline:
                return self._time_out(timeout or 0)
            time.sleep(POLL_SECONDS)
        others_running = None in codes
        if others_running:
            self._stop_all()
        self._end()
        if self.canceled:
            return self._finish(CANCELED, failed[1] if failed else 0)
        if failed is None:
            return self._finish(COMPLETED, 0)
        rank, code = failed
        reason = None
        if len(self.processes) > 1:
            reason = f"rank {rank} exited with code {code}" + ("; the other processes were stopped"
                                                               if others_running else "")  # fmt: skip
        if code is not None and code < 0:
            killer = signal_name(-code)
            where = f"rank {rank} " if len(self.processes) > 1 else ""
            return self._finish(PREEMPTED, code, reason=f"{where}killed by {killer}, not by robotrain")
        if out_of_memory(self.job.log):
            return self._finish(FAILED, code, reason="out of memory", out_of_memory=True)
        return self._finish(FAILED, code, reason=reason)

    def _stop_all(self) -> None:
        """SIGTERM the job's group; SIGKILL it when processes remain after the grace period."""
        self._signal(signal.SIGTERM)
        grace = time.monotonic() + CANCEL_GRACE_SECONDS
        while any(process.poll() is None for process in self.processes) and time.monotonic() < grace:
            time.sleep(POLL_SECONDS)

    def _end(self) -> None:
        """Kill whatever the command left running in its group; reap every copy; relay the last lines."""
        self._signal(signal.SIGKILL)
        for process in self.processes:
            process.wait()
        for relay in self.relays:
            relay.join(timeout=CANCEL_GRACE_SECONDS)

    def _time_out(self, timeout: float) -> int:
        reason = f"timed out after {format_duration(timeout)}"
        print(f"robotrain: local job {self.job.job_id} {reason}; stopping it", flush=True)
        self._stop_all()
        self._end()
        codes = [process.returncode for process in self.processes]
        return self._finish(FAILED, next((code for code in codes if code != 0), 0), reason=reason)

    def _finish(self, state: str, code: int | None, reason: str | None = None, **facts: Any) -> int:
        said = f": {reason}" if state == PREEMPTED and reason else ""
        print(f"robotrain: local job {self.job.job_id} {state} (exit code {code}){said}", flush=True)
        changes = {"state": state, "exit_code": code, "ended": time.time(), **facts}
        self.job.write(**changes, **({"reason": reason} if reason else {}))
        return 0 if state == COMPLETED else 1


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; ``signal 34`` for one without a name (a real-time signal)."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


OUT_OF_MEMORY_SIGNS = (b"MemoryError", b"OutOfMemoryError", b"CUDA out of memory", b"Cannot allocate memory")
"""What Python, PyTorch and the C library print when an allocation fails."""
LOG_TAIL_BYTES = 64 * 1024


def out_of_memory(log: Path) -> bool:
    """Whether the end of the job's log says a process ran out of memory."""
    try:
        with log.open("rb") as stream:
            stream.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            tail = stream.read()
    except OSError:
        return False
    return any(sign in tail for sign in OUT_OF_MEMORY_SIGNS)


def relay_lines(stream: IO[bytes], prefix: str) -> None:
    """Copy a process's output to the log, ``prefix`` before each line, one write per line
    (the log is opened for appending, so lines of different processes never mix)."""
    with stream:
        for line in stream:
            data = prefix.encode() + (line if line.endswith(b"\n") else line + b"\n")
            while data:
                data = data[os.write(sys.stdout.fileno(), data) :]


def main(argv: list[str]) -> int:
    supervisor = Supervisor(LocalJob(Path(argv[0])))
    signal.signal(signal.SIGTERM, supervisor.on_terminate)
    signal.signal(signal.SIGINT, supervisor.on_terminate)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

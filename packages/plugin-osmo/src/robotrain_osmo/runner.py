"""Running the ``osmo`` executable, with its exit codes turned into one-line messages."""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from robotrain import UserError

EXECUTABLE = "osmo"
RETRY_BASE_ENV = "ROBOTRAIN_OSMO_RETRY_BASE_SECONDS"
RATE_LIMIT_TRIES = 4
EXIT_SUBMISSION, EXIT_USER, EXIT_INTERRUPTED, EXIT_SERVER, EXIT_RATE_LIMITED = 1, 2, 3, 10, 75
MESSAGE_LIMIT = 300
QUIET_PERIODS_AT_MOST = 5
ERROR_MESSAGE, ERROR_CODE = "Error message:", "Error code:"


def run(args: Sequence[str], retries: int = RATE_LIMIT_TRIES, show_progress: bool = False) -> str:
    """Run ``osmo ARGS`` and return its stdout; rate limiting (75) is retried with backoff.

    ``show_progress`` leaves osmo's stderr on the user's terminal: its data commands draw their tqdm
    progress bar there (src/lib/data/storage/core/progress.py); errors still come on stdout.
    """
    base = float(os.environ.get(RETRY_BASE_ENV, "2"))
    for attempt in range(retries):
        result = _execute(args, show_progress)
        if result.returncode != EXIT_RATE_LIMITED:
            break
        if attempt < retries - 1:
            time.sleep(base * 2**attempt)
    else:
        raise UserError(f"rate limited by OSMO after {retries} tries; wait a minute and try again")
    if result.returncode != 0:
        raise _error(args, result)
    return result.stdout


def run_json(args: Sequence[str]) -> Any:
    """Run ``osmo ARGS`` (which include ``-t json``) and parse its output."""
    output = run(args)
    try:
        return json.loads(output)
    except ValueError:
        raise UserError(f"`osmo {_what(args)}` printed no JSON: {_one_line(output)}") from None


def _execute(args: Sequence[str], show_progress: bool = False) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [EXECUTABLE, *args], stdout=subprocess.PIPE, stderr=None if show_progress else subprocess.PIPE,
            text=True, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        raise _not_installed() from None


def _not_installed() -> UserError:
    return UserError(
        "osmo CLI not found on PATH; install it from your OSMO service (its web UI links the "
        "installer) and run `osmo login <URL>`"
    )


def _error(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> UserError:
    message = _message(result)
    code = result.returncode
    if code == EXIT_USER and "must login" in (result.stdout + (result.stderr or "")).lower():
        return UserError("not logged in to OSMO; run `osmo login <URL>` and try again")
    if code == EXIT_SERVER:
        return UserError(f"OSMO server or connection error ({message}); check the service and your network")
    if code == EXIT_USER:
        return UserError(f"OSMO refused `osmo {_what(args)}`: {message}")
    if code == EXIT_SUBMISSION:
        return UserError(f"OSMO could not run `osmo {_what(args)}`: {message}")
    if code == EXIT_INTERRUPTED:
        return UserError(f"`osmo {_what(args)}` was interrupted; run it again")
    return UserError(f"`osmo {_what(args)}` failed with exit code {code}: {message}")


def _message(result: subprocess.CompletedProcess[str]) -> str:
    """OSMO's own message: ``{"message": ...}`` on stdout with ``-t json``, the ``Error message:`` text
    on stdout in text mode (src/cli/cli.py), else the last line it printed."""
    try:
        data = json.loads(result.stdout)
        if isinstance(data, dict) and data.get("message"):
            return _one_line(str(data["message"]))
    except ValueError:
        pass
    return error_text(result.stdout.splitlines()) or _last_line((result.stderr or "") + "\n" + result.stdout)


def error_text(lines: Sequence[str]) -> str | None:
    """The message of ``Error message: ...`` (possibly over several lines) up to ``Error code: N``."""
    for start, line in enumerate(lines):
        if line.startswith(ERROR_MESSAGE):
            body = [line[len(ERROR_MESSAGE) :]]
            for following in lines[start + 1 :]:
                if following.startswith(ERROR_CODE):
                    break
                body.append(following)
            return _one_line("\n".join(body)) or None
    return None


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else "no message"


def stream(args: Sequence[str], write: Callable[[str], None], quiet_seconds: float | None = None) -> None:
    """Run ``osmo ARGS`` and pass each stdout line to ``write`` as it arrives.

    It ends when osmo exits or, with ``quiet_seconds``, when nothing has arrived for that long (osmo is
    then stopped). An error osmo reports is raised as one line and its ``Error ...`` lines not written.
    """
    process = _start(args)
    assert process.stdout is not None
    held: list[str] = []
    stopped = False
    try:
        for line in _lines(process.stdout.fileno(), quiet_seconds):
            if line is None:
                stopped = True
            elif held or line.startswith(ERROR_MESSAGE):
                held.append(line)
            else:
                write(line)
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait()
    if not stopped and process.returncode != 0:
        stderr = process.stderr.read() if process.stderr else ""
        failed = subprocess.CompletedProcess(list(args), process.returncode, "".join(held), stderr)
        raise _error(args, failed)


def _start(args: Sequence[str]) -> subprocess.Popen[str]:
    try:
        return subprocess.Popen(
            [EXECUTABLE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
    except FileNotFoundError:
        raise _not_installed() from None


def _lines(fd: int, quiet_seconds: float | None) -> Iterator[str | None]:
    """Lines read from ``fd`` as soon as each is complete, until EOF. With ``quiet_seconds``, counted from
    osmo's first output (it prints once its stream is open): None once nothing has arrived for that long
    (or, when lines keep coming, after ``QUIET_PERIODS_AT_MOST`` of it)."""
    pending = b""
    deadline: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if quiet_seconds is not None and deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(min(quiet_seconds, left)):
                    yield None
                    break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            if quiet_seconds is not None and deadline is None:
                deadline = time.monotonic() + quiet_seconds * QUIET_PERIODS_AT_MOST
            *complete, pending = (pending + chunk).split(b"\n")
            yield from (line.decode("utf-8", "replace") + "\n" for line in complete)
    if pending:
        yield pending.decode("utf-8", "replace") + "\n"


def _what(args: Sequence[str]) -> str:
    return " ".join(args[:2])


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"

"""Running the ``osmo`` executable, with its exit codes turned into one-line messages."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from robotrain import UserError

EXECUTABLE = "osmo"
RETRY_BASE_ENV = "ROBOTRAIN_OSMO_RETRY_BASE_SECONDS"
RATE_LIMIT_TRIES = 4
EXIT_SUBMISSION, EXIT_USER, EXIT_INTERRUPTED, EXIT_SERVER, EXIT_RATE_LIMITED = 1, 2, 3, 10, 75
MESSAGE_LIMIT = 300


def run(args: Sequence[str], retries: int = RATE_LIMIT_TRIES) -> str:
    """Run ``osmo ARGS`` and return its stdout; rate limiting (75) is retried with backoff."""
    base = float(os.environ.get(RETRY_BASE_ENV, "2"))
    for attempt in range(retries):
        result = _execute(args)
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


def _execute(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [EXECUTABLE, *args], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise UserError(
            "osmo CLI not found on PATH; install it from your OSMO service (its web UI links the "
            "installer) and run `osmo login <URL>`"
        ) from None


def _error(args: Sequence[str], result: subprocess.CompletedProcess[str]) -> UserError:
    message = _message(result)
    code = result.returncode
    if code == EXIT_USER and "must login" in (result.stdout + result.stderr).lower():
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
    """OSMO's own message: ``{"message": ...}`` on stdout with ``-t json``, else the last line it printed."""
    try:
        data = json.loads(result.stdout)
        if isinstance(data, dict) and data.get("message"):
            return _one_line(str(data["message"]))
    except ValueError:
        pass
    lines = [line for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    return _one_line(lines[-1]) if lines else "no message"


def _what(args: Sequence[str]) -> str:
    return " ".join(args[:2])


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"

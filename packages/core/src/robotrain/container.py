"""A simulated container root: run a job's own command the way an image would, without a container engine.

Tests use it to show that a rendered job *starts*: the entry script, the payload unpacking and the
interpreter look-up all run for real, with only the tools an image has on its ``PATH``. The Isaac Lab
image's quirk is copied: no ``python`` on ``PATH`` for a non-interactive ``bash`` (there it is a
``.bashrc`` alias), and ``/workspace/isaaclab/isaaclab.sh -p`` is the interpreter, here a recording
stand-in. Needs Linux, root, ``unshare`` and ``chroot`` (a private mount namespace bind-mounts the
host's libraries read-only; nothing outside the root folder is changed).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a non-interactive shell has in the image."""
TOOLS = (
    "bash", "sh", "env", "tar", "gzip", "base64", "mkdir", "cp", "ls", "cat", "dirname", "basename",
    "rm", "mv", "find", "sed", "grep", "head", "tail", "printf", "echo", "true", "false", "test",
    "chmod", "ln", "pwd", "readlink", "wc", "tr", "cut", "sort", "xargs", "id", "mktemp", "touch",
    "realpath", "stat", "sleep", "uname",
)  # fmt: skip
"""Commands the simulated image has; deliberately no ``python`` or ``python3``."""
LIBRARY_DIRS = ("lib", "lib64", "usr/lib", "usr/lib64")
ISAACLAB_SH = "/workspace/isaaclab/isaaclab.sh"
ISAACLAB_CALLS = "/workspace/isaaclab/calls.log"
_RECORDER = f"""#!/bin/bash
# Recording stand-in for Isaac Lab's launcher: one block per call, one argument per line.
{{ echo "--- call cwd=$(pwd)"; printf '%s\\n' "$@"; }} >> {ISAACLAB_CALLS}
"""


def available() -> bool:
    """Whether this machine can build a simulated root (Linux, root, unshare, chroot)."""
    return (
        sys.platform == "linux"
        and os.geteuid() == 0
        and shutil.which("unshare") is not None
        and shutil.which("chroot") is not None
    )


class ContainerRoot:
    """A folder laid out as an image's file system, and a way to run commands inside it."""

    def __init__(self, root: Path, isaaclab: bool = True) -> None:
        self.root = root
        bin_dir = root / "usr" / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/bin")):
            if not (root / link).exists():
                (root / link).symlink_to(target)
        for tool in TOOLS:
            found = shutil.which(tool)
            if found and not (bin_dir / tool).exists():
                shutil.copy2(os.path.realpath(found), bin_dir / tool)
        for folder in LIBRARY_DIRS:
            host, inside = Path("/", folder), root / folder
            if host.is_symlink() and not inside.exists():
                inside.symlink_to(os.readlink(host))  # merged /usr: /lib -> usr/lib
            elif host.is_dir():
                inside.mkdir(parents=True, exist_ok=True)
        for folder in ("dev", "tmp", "proc"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        if isaaclab:
            self.write(ISAACLAB_SH, _RECORDER, mode=0o755)

    def path(self, inside: str) -> Path:
        """The host path of ``inside`` (an absolute path in the container)."""
        return self.root / inside.lstrip("/")

    def write(self, inside: str, data: str | bytes, mode: int = 0o644) -> Path:
        target = self.path(inside)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            target.write_text(data, encoding="utf-8")
        else:
            target.write_bytes(data)
        target.chmod(mode)
        return target

    def run(
        self,
        command: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str = "/",
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the root with exactly ``env`` (plus the image's PATH and HOME)."""
        environment = {"PATH": IMAGE_PATH, "HOME": "/root", **(env or {})}
        mounts = [
            f"mount --bind -o ro /{folder} {shlex.quote(str(self.path(folder)))}"
            for folder in LIBRARY_DIRS
            if Path("/", folder).is_dir() and not Path("/", folder).is_symlink()
        ]
        mounts.append(f"mount --rbind /dev {shlex.quote(str(self.path('dev')))}")
        inner = shlex.join(
            ["chroot", str(self.root), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in environment.items()),
             "/bin/bash", "-c", 'cd "$0" && exec "$@"', cwd, *command]
        )  # fmt: skip
        script = " && ".join(["mount --make-rprivate /", *mounts, "exec " + inner])
        return subprocess.run(
            ["unshare", "--mount", "sh", "-c", script],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def isaaclab_calls(self) -> list[list[str]]:
        """The arguments of each call of the Isaac Lab launcher stand-in, in order."""
        log = self.path(ISAACLAB_CALLS)
        if not log.exists():
            return []
        calls: list[list[str]] = []
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.startswith("--- call "):
                calls.append([])
            elif calls:
                calls[-1].append(line)
        return calls

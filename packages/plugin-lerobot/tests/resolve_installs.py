"""Resolve every install set the lerobot plugin generates with a real resolver: ``nox -s lerobot-installs``.

Each set is compiled with ``uv pip compile`` against the package index for the job's Python
and platform (the one network use of the test suite). Any set that does not resolve fails
the session, with uv's explanation.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from robotrain_lerobot.installs import PLATFORM_TAG, InstallSet, every_install_set


def resolve(install: InstallSet, folder: Path) -> subprocess.CompletedProcess[str]:
    requirements = folder / "requirements.in"
    requirements.write_text("\n".join(install.requirements) + "\n")
    command = ["uv", "pip", "compile", "--quiet", "--no-header", str(requirements),
               "--python-version", install.python, "--python-platform", PLATFORM_TAG]  # fmt: skip
    if install.constraints:
        constraints = folder / "constraints.txt"
        constraints.write_text("\n".join(install.constraints) + "\n")
        command += ["-c", str(constraints)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def resolve_in_own_folder(install: InstallSet) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as folder:
        return resolve(install, Path(folder))


def describe(install: InstallSet) -> str:
    described = f"python {install.python}: {' '.join(install.requirements)}"
    if install.constraints:
        described += f" (constraints {' '.join(install.constraints)})"
    return described


def main() -> int:
    """Resolve the sets four at a time (the resolver mostly waits on the index)."""
    sets = every_install_set()
    failed = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(resolve_in_own_folder, sets)
        for number, (install, result) in enumerate(zip(sets, results, strict=True), 1):
            verdict = "ok" if result.returncode == 0 else "FAILED"
            print(f"[{number}/{len(sets)}] {verdict} {describe(install)}", flush=True)
            if result.returncode != 0:
                failed += 1
                print(result.stderr, flush=True)
    print(f"{len(sets) - failed} of {len(sets)} install sets resolve")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

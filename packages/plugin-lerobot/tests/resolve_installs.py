"""Resolve every install set the lerobot plugin generates with a real resolver: ``nox -s lerobot-installs``.

Each set is compiled with ``uv pip compile`` against the package index for the job's Python
and platform (the one network use of the test suite). Any set that does not resolve fails
the session, with uv's explanation.

Only the largest sets are sent to the resolver: a set whose requirements are all in a larger set
with the same Python and constraints resolves whenever the larger one does (the larger set's
solution, cut down to what the smaller one needs, is a solution for it).
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


def covering_sets(sets: list[InstallSet]) -> list[InstallSet]:
    """The sets not contained in another set of the same Python and constraints."""

    def within(small: InstallSet, large: InstallSet) -> bool:
        same_target = (small.python, small.constraints) == (large.python, large.constraints)
        return small != large and same_target and set(small.requirements) <= set(large.requirements)

    return [s for s in sets if not any(within(s, other) for other in sets)]


def main() -> int:
    """Resolve the covering sets four at a time (the resolver mostly waits on the index)."""
    every = every_install_set()
    sets = covering_sets(every)
    print(f"{len(every)} install sets, covered by {len(sets)} largest sets", flush=True)
    failed = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(resolve_in_own_folder, sets)
        for number, (install, result) in enumerate(zip(sets, results, strict=True), 1):
            verdict = "ok" if result.returncode == 0 else "FAILED"
            print(f"[{number}/{len(sets)}] {verdict} {describe(install)}", flush=True)
            if result.returncode != 0:
                failed += 1
                print(result.stderr, flush=True)
    print(f"{len(sets) - failed} of {len(sets)} covering sets resolve, so all {len(every)} install sets do")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

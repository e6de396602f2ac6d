"""Start-up and submit overhead against their references, side by side in one run (issue 14's table).

    uv run python benchmarks/startup.py            # medians of 15 alternating runs
    uv run python benchmarks/startup.py --check    # exit 1 when a target is missed
    nox -s bench                                   # with the payload rows, in a fresh venv

Rows: ``invoke --list`` and ``invoke train --help`` in this repository against the same
commands with a one-task tasks.py; ``invoke train --platform osmo`` (a stand-in ``osmo`` that
answers at once) against a shell script doing what the OSMO submit script does (pack the
training folder, base64 it into ``--set-string encoded_archive=...``, ``osmo workflow submit``)
with the same stand-in, on the same training folder (60 sources, like the scripts' src/training).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"list": 1.2, "help": 1.2, "submit": 1.0}
OLD = 1_600_000_000
ONE_TASK = '''from invoke import task


@task
def hello(c):
    """Say hello."""
    print("hello")
'''
STAND_IN_OSMO = """#!/bin/bash
case "$1 $2" in
  "version "*) echo '{"client": {"major": "6", "minor": "3", "revision": "1", "hash": ""}}' ;;
  "credential "*) echo '[]' ;;
  "workflow submit") echo '{"name": "isaaclab-training-1", "overview": "https://osmo.example/workflows/isaaclab-training-1", "logs": "https://osmo.example/api/workflow/isaaclab-training-1/logs", "spec": null, "dashboard_url": null, "warnings": []}' ;;
esac
"""  # noqa: E501
REFERENCE_SUBMIT = """#!/bin/bash
# What the current OSMO submit script does with an inline payload (shared/reference/scripts.md).
set -euo pipefail
training=$1
archive=$(tar -czf - -C "$training/.." "$(basename "$training")" | base64 -w0)
cat > "$TMPDIR/train.yaml" <<'YAML'
version: 2
workflow:
  name: isaaclab-training
  tasks:
  - name: train
    image: nvcr.io/nvidia/isaac-lab:2.3.2
    command: [bash, -c, 'echo "$ENCODED_ARCHIVE" | base64 -d | tar -xz && bash training/scripts/train.sh']
    environment:
      ENCODED_ARCHIVE: "{{encoded_archive}}"
YAML
osmo workflow submit "$TMPDIR/train.yaml" -t json --set-string "encoded_archive=$archive" \\
  --set-string task=Isaac-Velocity-Rough-Anymal-C-v0 --set-string num_envs=2048 > /dev/null
"""


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def compare(
    ours: tuple[list[str], Path], reference: tuple[list[str], Path], env: dict[str, str], repeat: int
) -> tuple[float, float]:
    """Median wall times of the two commands, run alternately after one warm-up run each."""
    for command, cwd in (ours, reference):
        timed(command, cwd, env)
    times: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeat):
        for index, (command, cwd) in enumerate((ours, reference)):
            times[index].append(timed(command, cwd, env))
    return statistics.median(times[0]), statistics.median(times[1])


def training_folder(root: Path) -> Path:
    """A training folder the size of the scripts' src/training: 60 sources and train.sh."""
    training = root / "src" / "training"
    (training / "scripts").mkdir(parents=True)
    (training / "scripts" / "train.sh").write_text("#!/bin/bash\necho train\n")
    for number in range(60):
        lines = [f"def step_{number}_{i}(value: float) -> float:\n    return value * {i} + {number}\n"
                 for i in range(40)]  # fmt: skip
        (training / f"module_{number:02d}.py").write_text("\n".join(lines))
    for path in training.rglob("*"):
        os.utime(path, (OLD, OLD))  # a folder not just edited: its files' checks are cached after one run
    return training


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio misses its target")
    args = parser.parse_args()
    invoke = shutil.which("invoke") or str(Path(sys.executable).with_name("invoke"))
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        one_task = work / "one-task"
        one_task.mkdir()
        (one_task / "tasks.py").write_text(ONE_TASK)
        tools = work / "bin"
        tools.mkdir()
        for name, text in (("osmo", STAND_IN_OSMO), ("reference-submit", REFERENCE_SUBMIT)):
            (tools / name).write_text(text)
            (tools / name).chmod(0o755)
        project = work / "project"
        training = training_folder(project)
        (project / "tasks.py").write_text((REPO / "tasks.py").read_text())
        env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(work),
               "XDG_CACHE_HOME": str(work / "cache")}  # fmt: skip
        rows = {
            "list": compare(([invoke, "--list"], REPO), ([invoke, "--list"], one_task), env, args.repeat),
            "help": compare(
                ([invoke, "train", "--help"], REPO), ([invoke, "hello", "--help"], one_task), env, args.repeat
            ),
            "submit": compare(
                ([invoke, "train", "--platform", "osmo", "--payload", "inline"], project),
                ([str(tools / "reference-submit"), str(training)], project),
                env,
                args.repeat,
            ),
        }
    labels = {
        "list": ("invoke --list", "one-task tasks.py"),
        "help": ("invoke train --help", "one-task --help"),
        "submit": ("OSMO submit (stand-in osmo)", "the scripts' way, same stand-in"),
    }
    missed = []
    print("| what | robotrain | reference | ratio | target |\n|---|---|---|---|---|")
    for key, (ours, reference) in rows.items():
        ratio = ours / reference
        print(f"| {labels[key][0]} | {ours * 1000:.0f} ms | {labels[key][1]}: {reference * 1000:.0f} ms "
              f"| {ratio:.2f}× | ≤ {TARGETS[key]}× |")  # fmt: skip
        if ratio > TARGETS[key]:
            missed.append(key)
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

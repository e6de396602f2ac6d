"""Packing and staging against their references, side by side in one run (issue 14's table).

    uv run python benchmarks/payload.py            # the 5,001-file, 212 MB tree, median of 3
    uv run python benchmarks/payload.py --check    # exit 1 when a target is missed
    nox -s bench                                   # the same in a fresh venv

Rows: packing a cold tree (fresh stat cache) against ``zip -qr`` (wall time of the
whole process, peak resident memory), staging the same tree again unchanged against
its first staging (local platform, in-process), and packing again unchanged against
the first packing. The tree: 4,950 small sources, 50 incompressible 4 MB assets and
``scripts/train.sh``, all with an mtime in the past (a tree that was not just edited).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORDS = ("model", "train", "env", "reward", "policy", "step", "action", "obs", "batch", "loss", "value",
         "agent", "buffer", "config", "robot", "joint")  # fmt: skip
OLD = 1_600_000_000
TARGETS = {"pack": 1.0, "restage": 0.05, "repack": 0.05}
PACK_LIMIT_MB = 64
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""Children import from bytecode, as an installed robotrain does."""

PACK = """
import sys, time
from pathlib import Path
from robotrain.payload import pack
pack({"training": Path(sys.argv[1])}, Path(sys.argv[2]), cache_dir=Path(sys.argv[3]))
"""
AGAIN = """
import json, sys, time
from pathlib import Path
from robotrain.payload import pack
from robotrain.platforms.local_datasets import stage_dataset
tree, work = Path(sys.argv[1]), Path(sys.argv[2])
times = {}
for key, run in (
    ("pack", lambda: pack({"training": tree}, work / "out", cache_dir=work / "cache")),
    ("stage", lambda: stage_dataset(work / "state", tree, "bench")),
):
    for attempt in ("first", "again"):
        start = time.perf_counter()
        run()
        times[f"{key}_{attempt}"] = time.perf_counter() - start
print(json.dumps(times))
"""


@dataclass
class Run:
    seconds: float
    peak_mb: float


def make_tree(root: Path, sources: int, assets: int, asset_bytes: int) -> int:
    """The benchmark tree; returns its size in bytes."""
    rng = random.Random(1)
    for i in range(sources):
        path = root / f"pkg{i % 50}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines: list[str] = []
        while sum(map(len, lines)) < 2400:
            a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
            lines.append(f"def {a}_{b}_{i}(x, {c}):\n    return x * {rng.randint(0, 999)} + {c}.{a}()\n")
        path.write_text("".join(lines)[:2400])
    (root / "assets").mkdir(parents=True, exist_ok=True)
    for i in range(assets):
        (root / "assets" / f"asset{i}.bin").write_bytes(rng.randbytes(asset_bytes))
    (root / "scripts").mkdir(exist_ok=True)
    (root / "scripts" / "train.sh").write_text("#!/bin/bash\npython -m pkg0.mod0\n")
    size = 0
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))
            size += path.stat().st_size
    return size


def timed(argv: list[str], cwd: Path) -> Run:
    """Wall time and peak resident memory (by GNU time; NaN without it) of one command.

    Not ``wait4``'s ru_maxrss: a child forked from this process starts with this
    process's pages, and Linux keeps that peak across exec.
    """
    gnu_time = shutil.which("time")
    command = [gnu_time, "-f", "%M", *argv] if gnu_time else argv
    start = time.perf_counter()
    child = subprocess.run(command, cwd=cwd, env=CHILD_ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"{argv[0]} failed: {child.stderr}")
    peak = int(child.stderr.strip().splitlines()[-1]) / 1024 if gnu_time else float("nan")
    return Run(seconds, peak)


def median(runs: list[Run]) -> Run:
    return Run(statistics.median(r.seconds for r in runs), max(r.peak_mb for r in runs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sources", type=int, default=4950)
    parser.add_argument("--assets", type=int, default=50)
    parser.add_argument("--asset-bytes", type=int, default=4_000_000)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="robotrain-bench-") as scratch:
        work = Path(scratch)
        tree = work / "training"
        size = make_tree(tree, args.sources, args.assets, args.asset_bytes)
        files = sum(1 for p in tree.rglob("*") if p.is_file())
        print(f"tree: {files:,} files, {size / 1e6:.0f} MB ({os.cpu_count()} cores)")
        subprocess.run([sys.executable, "-c", "import robotrain.payload_secrets as s; s.content_scanner()"],
                       env=CHILD_ENV, check=True)  # fmt: skip  # writes bytecode once
        zips, packs, again = [], [], []
        for attempt in range(args.repeat):
            if shutil.which("zip"):
                zips.append(timed(["zip", "-qr", str(work / f"z{attempt}.zip"), "training"], work))
            out, cache = work / f"out{attempt}", work / f"cache{attempt}"
            packs.append(timed([sys.executable, "-c", PACK, str(tree), str(out), str(cache)], work))
            shutil.rmtree(out)
            child = subprocess.run(
                [sys.executable, "-c", AGAIN, str(tree), str(work / f"again{attempt}")],
                env=CHILD_ENV, capture_output=True, text=True, check=True,
            )  # fmt: skip
            again.append(json.loads(child.stdout))
            shutil.rmtree(work / f"again{attempt}")
    return report(median(packs), median(zips) if zips else None, again, args.check)


def report(pack: Run, zipped: Run | None, again: list[dict[str, float]], check: bool) -> int:
    times = {key: statistics.median(run[key] for run in again) for key in again[0]}
    ratios = {
        "pack": pack.seconds / zipped.seconds if zipped else float("nan"),
        "restage": times["stage_again"] / times["stage_first"],
        "repack": times["pack_again"] / times["pack_first"],
    }
    reference = f"zip -qr: {zipped.seconds:.2f} s, {zipped.peak_mb:.0f} MB" if zipped else "zip not installed"
    rows = [
        ("pack the tree (cold cache)", f"{pack.seconds:.2f} s, {pack.peak_mb:.0f} MB peak", reference,
         f"{ratios['pack']:.2f}x"),
        ("stage it again, unchanged (local)", f"{times['stage_again'] * 1000:.0f} ms",
         f"first staging: {times['stage_first']:.2f} s", f"{ratios['restage']:.1%}"),
        ("pack it again, unchanged", f"{times['pack_again'] * 1000:.0f} ms",
         f"first packing (in-process): {times['pack_first']:.2f} s", f"{ratios['repack']:.1%}"),
    ]  # fmt: skip
    print("| what | robotrain | reference | ratio |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    missed = [name for name, ratio in ratios.items() if not ratio <= TARGETS[name]]
    if not pack.peak_mb <= PACK_LIMIT_MB:
        missed.append(f"pack memory ({pack.peak_mb:.0f} MB > {PACK_LIMIT_MB} MB)")
    print("targets: " + ("all met" if not missed else "missed: " + ", ".join(missed)))
    return 1 if check and missed else 0


if __name__ == "__main__":
    sys.exit(main())

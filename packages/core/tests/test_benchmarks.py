"""Benchmarks of the fast paths: plugin discovery and building the CLI namespace.

Run with ``pytest packages/core/tests/test_benchmarks.py --benchmark-only`` to compare;
in the normal test run they execute once each as a smoke test.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from robotrain.cli import build_namespace
from robotrain.plugins import ENTRY_POINT_GROUP, Plugins


def discover() -> Plugins:
    plugins = Plugins(lambda message: None)
    plugins.load(metadata.entry_points(group=ENTRY_POINT_GROUP))
    return plugins


def test_discovery(benchmark: BenchmarkFixture) -> None:
    plugins = benchmark(discover)
    assert "local" in plugins.platforms.items


def test_namespace(benchmark: BenchmarkFixture) -> None:
    namespace = benchmark(build_namespace)
    assert "train" in namespace.task_names


def test_payload_benchmark_runs_on_a_small_tree() -> None:
    """The packing/staging benchmark (``nox -s bench``) on a tiny tree, so it cannot rot unnoticed."""
    script = Path(__file__).resolve().parents[3] / "benchmarks" / "payload.py"
    small = ["--repeat", "1", "--sources", "30", "--assets", "2", "--asset-bytes", "300000"]
    result = subprocess.run(
        [sys.executable, str(script), *small], capture_output=True, text=True, check=True, timeout=300
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == [
        "| pack the tree (cold cache)",
        "| stage it again, unchanged (local)",
        "| pack it again, unchanged",
    ]
    assert "tree: 33 files" in result.stdout

"""Benchmarks of the fast paths: plugin discovery and building the CLI namespace.

Run with ``pytest packages/core/tests/test_benchmarks.py --benchmark-only`` to compare;
in the normal test run they execute once each as a smoke test.
"""

from __future__ import annotations

from importlib import metadata

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

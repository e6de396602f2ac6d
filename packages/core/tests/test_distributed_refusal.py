"""A platform that does not declare ``distributed`` refuses jobs of more than one process, in one line."""

from __future__ import annotations

import os
from pathlib import Path

from robotrain.testing import assert_one_line_error, make_project, run_cli

PLATFORM = """
from robotrain import Platform, hookimpl

@hookimpl
def robotrain_register_platforms(register):
    register(Platform("toy", "a platform of one process"))

@hookimpl
def robotrain_render_job(platform, job, settings):
    return f"toy job of {job.world_size} process(es)" if platform == "toy" else None
"""


def toy_site(root: Path) -> Path:
    """A single-module plugin distribution found through PYTHONPATH."""
    info = root / "toyplatform-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplatform\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[robotrain]\ntoy = toyplatform\n")
    (root / "toyplatform.py").write_text(PLATFORM)
    return root


def test_a_platform_without_distributed_support_refuses_several_processes(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    env = {"PYTHONPATH": str(toy_site(tmp_path / "site")), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PATH": os.environ["PATH"]}  # fmt: skip
    single = run_cli(["train", "--platform", "toy", "--dry-run"], project, env)
    assert single.returncode == 0, single.stderr
    assert single.stdout.strip() == "toy job of 1 process(es)"
    for flags in (["--gpus", "2"], ["--nodes", "2"], ["--gpu", "4"]):
        refused = run_cli(["train", "--platform", "toy", "--dry-run", *flags], project, env)
        assert_one_line_error(refused, "platform 'toy' cannot run a distributed job")

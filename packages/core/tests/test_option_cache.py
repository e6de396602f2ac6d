"""The command line is built from cached options while nothing they came from has changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys
from robotrain.cli import build_namespace
namespace = build_namespace()
flags = sorted(n for a in namespace["train"].get_arguments() for n in a.names)
print("loaded" if "robotrain.plugins" in sys.modules else "cached", " ".join(flags))
"""

PLUGIN = """
from robotrain import Option, hookimpl

@hookimpl
def robotrain_add_options(options):
    for name in {names!r}:
        options.add(Option(name, "an option of a plugin under test"))
"""


def write_plugin(site: Path, names: tuple[str, ...]) -> None:
    """A single-module plugin distribution in ``site`` (found through PYTHONPATH)."""
    info = site / "cacheprobe-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cacheprobe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[robotrain]\ncacheprobe = cacheprobe\n")
    module = site / "cacheprobe.py"
    module.write_text(PLUGIN.format(names=names))
    later = module.stat().st_mtime + 10  # an edit: a later modification time, whatever the clock's step
    os.utime(module, (later, later))


def probe(tmp_path: Path, site: Path) -> tuple[str, set[str]]:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    how, _, flags = result.stdout.strip().partition(" ")
    return how, set(flags.split())


def test_second_listing_loads_no_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    first = probe(tmp_path, site)
    second = probe(tmp_path, site)
    assert first[0] == "loaded" and second[0] == "cached"
    assert "probe-one" in first[1] and first[1] == second[1]
    assert {"task", "platform", "dry-run", "gpus", "gpu"} <= second[1]


def test_an_edited_plugin_is_loaded_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    probe(tmp_path, site)
    write_plugin(site, ("probe_one", "probe_two"))
    how, flags = probe(tmp_path, site)
    assert how == "loaded" and "probe-two" in flags


def test_an_uninstalled_plugin_leaves_the_command_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    probe(tmp_path, site)
    shutil.rmtree(site / "cacheprobe-0.1.dist-info")
    (site / "cacheprobe.py").unlink()
    how, flags = probe(tmp_path, site)
    assert how == "loaded" and "probe-one" not in flags


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    assert probe(tmp_path, site) == probe(tmp_path, site)
    assert probe(tmp_path, site)[0] == "loaded"


RUN_PROBE = """
from robotrain.cli import build_namespace, load_plugins
build_namespace()
plugins = load_plugins()
print(sorted((i.name, i.distribution, i.version, tuple(i.options)) for i in plugins.infos.values()))
"""


def run_probe(tmp_path: Path, site: Path) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", RUN_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def test_a_command_finds_the_same_plugins_through_the_cache(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    scanned = run_probe(tmp_path, site)
    assert "('cacheprobe', 'cacheprobe', '0.1', ('probe_one',))" in scanned
    assert run_probe(tmp_path, site) == scanned


def test_an_entry_point_edited_in_place_is_found_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_plugin(site, ("probe_one",))
    (site / "otherprobe.py").write_text(PLUGIN.format(names=("probe_other",)))
    run_probe(tmp_path, site)
    declared = site / "cacheprobe-0.1.dist-info" / "entry_points.txt"
    declared.write_text("[robotrain]\ncacheprobe = otherprobe\n")
    later = declared.stat().st_mtime + 10
    os.utime(declared, (later, later))
    assert "('cacheprobe', 'cacheprobe', '0.1', ('probe_other',))" in run_probe(tmp_path, site)

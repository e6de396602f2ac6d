"""Discovery loads each entry point on its own and names the plugin behind every problem."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from robotrain.errors import UserError
from robotrain.plugins import Plugins


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("rt_test_")]:
        del sys.modules[name]


def plugin(folder: Path, name: str, source: str) -> EntryPoint:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return EntryPoint(name=name.removeprefix("rt_test_"), value=name, group="robotrain")


def load(*entry_points: EntryPoint) -> tuple[Plugins, list[str]]:
    warnings: list[str] = []
    plugins = Plugins(warnings.append)
    plugins.load(entry_points)
    return plugins, warnings


PLATFORM = """
from robotrain import Platform, hookimpl

@hookimpl
def robotrain_register_platforms(register):
    register(Platform("{name}", "test platform"))
"""


def test_builtins_are_plugins_like_any_other() -> None:
    plugins, warnings = load()
    assert warnings == []
    assert set(plugins.infos) == {"robotrain", "isaaclab", "local"}
    assert plugins.platforms.owners["local"] == "local"
    assert plugins.workloads.owners["isaaclab"] == "isaaclab"
    assert plugins.infos["isaaclab"].distribution == "robotrain-core"


def test_unknown_hook_is_reported_and_skipped(modules: Path) -> None:
    typo = plugin(modules, "rt_test_typo", """
        from robotrain import hookimpl

        @hookimpl
        def robotrain_sumbit(platform, job, settings):
            return None
    """)  # fmt: skip
    good = plugin(modules, "rt_test_good", PLATFORM.format(name="good"))
    plugins, warnings = load(typo, good)
    assert len(warnings) == 1
    assert "'typo'" in warnings[0] and "robotrain_sumbit" in warnings[0]
    assert "typo" not in plugins.infos
    assert "good" in plugins.platforms.items


def test_wrong_hook_arguments_are_reported_and_skipped(modules: Path) -> None:
    wrong = plugin(modules, "rt_test_wrong", """
        from robotrain import hookimpl

        @hookimpl
        def robotrain_submit(platfrom, job, settings):
            return None
    """)  # fmt: skip
    plugins, warnings = load(wrong)
    assert len(warnings) == 1 and "'wrong'" in warnings[0]
    assert plugins.manager.get_plugin("wrong") is None


def test_import_error_is_reported_and_skipped(modules: Path) -> None:
    broken = plugin(modules, "rt_test_broken", "raise ImportError('needs libfoo')\n")
    plugins, warnings = load(broken)
    assert warnings == ["plugin 'broken' (? ?) is skipped: ImportError: needs libfoo"]
    assert "broken" not in plugins.infos


def test_two_plugins_claiming_one_platform_is_an_error_naming_both(modules: Path) -> None:
    first = plugin(modules, "rt_test_first", PLATFORM.format(name="shared"))
    second = plugin(modules, "rt_test_second", PLATFORM.format(name="shared"))
    with pytest.raises(UserError, match="plugins 'first' and 'second' both provide platform 'shared'"):
        load(first, second)


def test_plugin_claiming_a_builtin_workload_is_an_error(modules: Path) -> None:
    clash = plugin(modules, "rt_test_clash", """
        from robotrain import Workload, hookimpl

        @hookimpl
        def robotrain_register_workloads(register):
            register(Workload("isaaclab", "mine"))
    """)  # fmt: skip
    with pytest.raises(UserError, match="'isaaclab' and 'clash' both provide workload 'isaaclab'"):
        load(clash)


def test_two_plugins_adding_one_option_is_an_error_naming_both(modules: Path) -> None:
    source = """
        from robotrain import Option, hookimpl

        @hookimpl
        def robotrain_add_options(options):
            options.add(Option("queue", "a queue"))
    """
    one = plugin(modules, "rt_test_one", source)
    two = plugin(modules, "rt_test_two", source)
    with pytest.raises(UserError, match="plugins 'one' and 'two' both define option --queue"):
        load(one, two)


def test_option_clashing_with_core_is_an_error(modules: Path) -> None:
    clash = plugin(modules, "rt_test_opt", """
        from robotrain import Option, hookimpl

        @hookimpl
        def robotrain_add_options(options):
            options.add(Option("num_envs", "mine"))
    """)  # fmt: skip
    with pytest.raises(UserError, match="'isaaclab' and 'opt' both define option --num-envs"):
        load(clash)

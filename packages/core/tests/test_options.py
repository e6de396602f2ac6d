"""Option aliases and value spellings, as plugins declare them."""

from __future__ import annotations

import pytest

from robotrain.errors import UserError
from robotrain.options import Option, OptionRegistry


def registry_with(*options: tuple[str, Option]) -> OptionRegistry:
    registry = OptionRegistry()
    for plugin, option in options:
        registry.current_plugin = plugin
        registry.add(option)
    return registry


def test_flags_include_the_aliases() -> None:
    option = Option("dataset_repo_id", "dataset", aliases=("d", "dataset"))
    assert option.flags == ("--dataset-repo-id", "-d", "--dataset")


@pytest.mark.parametrize(
    ("second", "shown"),
    [
        (Option("other", "x", aliases=("t",)), "-t"),
        (Option("task", "x"), "--task"),
        (Option("other", "x", aliases=("old-task",)), "--old-task"),
        (Option("old_task", "x"), "--old-task"),
    ],
)
def test_an_alias_is_claimed_like_a_name(second: Option, shown: str) -> None:
    first = Option("task", "task", aliases=("t", "old-task"))
    with pytest.raises(UserError, match=f"plugins 'one' and 'two' both define option {shown};"):
        registry_with(("one", first), ("two", second))


def test_a_refused_option_claims_nothing() -> None:
    registry = registry_with(("one", Option("task", "task", aliases=("t",))))
    registry.current_plugin = "two"
    with pytest.raises(UserError):
        registry.add(Option("other", "x", aliases=("o", "t")))
    registry.add(Option("output_dir", "x", aliases=("o",)))
    assert registry.owner("output_dir") == "two"


def test_normalize_runs_before_choices() -> None:
    option = Option("mode", "mode", choices=("a-b", "c"), normalize=str.lower)
    assert option.convert("A-B", "command line") == "a-b"
    with pytest.raises(UserError, match="'D' is not one of a-b, c"):
        option.convert("D", "command line")


def test_normalize_leaves_other_kinds_alone() -> None:
    option = Option("count", "count", kind=int, normalize=str.lower)
    assert option.convert("12", "env COUNT") == 12

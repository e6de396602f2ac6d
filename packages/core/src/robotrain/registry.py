"""What plugins declare: workloads and platforms, each owned by one plugin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from robotrain.errors import UserError


@dataclass(frozen=True)
class Workload:
    """A kind of training job (what runs)."""

    name: str
    help: str


@dataclass(frozen=True)
class Platform:
    """A place jobs run (where)."""

    name: str
    help: str
    passthrough: str | None = None
    """The platform's own submit command that arguments after ``--`` go to (``osmo workflow submit``);
    ``None``: the platform has none, and such arguments are refused."""
    distributed: bool = False
    """Whether it runs jobs of more than one process (``--nodes``, ``--gpus``); others are refused."""


T = TypeVar("T", "Workload", "Platform")


class Catalog(Generic[T]):
    """Names claimed by plugins; a second claim on one name is an error naming both."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.items: dict[str, T] = {}
        self.owners: dict[str, str] = {}
        self.current_plugin = "robotrain"

    def register(self, item: T) -> None:
        owner = self.owners.get(item.name)
        if owner is not None:
            raise UserError(
                f"plugins {owner!r} and {self.current_plugin!r} both provide {self.kind} "
                f"{item.name!r}; uninstall one of them"
            )
        self.items[item.name] = item
        self.owners[item.name] = self.current_plugin

    def require(self, name: str) -> T:
        if name not in self.items:
            known = ", ".join(sorted(self.items)) or "none"
            raise UserError(
                f"unknown {self.kind} {name!r} (installed: {known}); "
                f"install the plugin that provides it or pick one of these"
            )
        return self.items[name]

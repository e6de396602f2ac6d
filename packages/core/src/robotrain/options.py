"""Options that plugins contribute to the command line and to settings resolution."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from robotrain.errors import UserError

TRAIN = "train"
COMMANDS = ("train", "stage-dataset", "register-model", "status", "logs", "cancel", "config")
"""Commands an option can be attached to; ``config`` shows every option regardless."""
SAME_OPTIONS_AS = {"rerun": TRAIN, "jobs": "status", "download": "status"}
"""Commands that take the options of another: ``rerun`` overrides what ``train`` takes; ``jobs`` and
``download`` reach platforms as ``status`` does."""

TerraformLookup = Callable[["TerraformOutputs"], Any]


class TerraformOutputs:
    """Terraform outputs by name, with dotted look-ups into their values."""

    def __init__(self, values: Mapping[str, Any], sensitive: Iterable[str] = (), source: str = "") -> None:
        self.values = dict(values)
        self.sensitive = frozenset(sensitive)
        self.source = source
        """Where the outputs were read (``deploy/001-iac/terraform.tfstate``); empty when nowhere."""

    def get(self, path: str) -> Any:
        """``get("aks_cluster.name")`` is ``outputs.aks_cluster.value["name"]``; None when absent."""
        head, _, rest = path.partition(".")
        value: Any = self.values.get(head)
        for part in rest.split(".") if rest else ():
            value = value.get(part) if isinstance(value, Mapping) else None
        return value

    def is_sensitive(self, path: str) -> bool:
        return path.partition(".")[0] in self.sensitive


@dataclass(frozen=True)
class Option:
    """One setting, shown as ``--flag`` and resolved CLI > env > config > Terraform > default.

    ``name`` is the setting's snake_case name (``num_envs``, flag ``--num-envs``).
    ``kind`` is ``str``, ``int``, ``float``, ``bool`` or ``list`` (a repeatable flag).
    ``terraform`` is a dotted output path (``"aks_cluster.name"``) or a function of
    the outputs. ``sensitive`` values are masked wherever settings are shown.
    """

    name: str
    help: str
    kind: type = str
    default: Any = None
    env: str | None = None
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    terraform: str | TerraformLookup | None = None
    sensitive: bool = False
    commands: frozenset[str] = field(default_factory=lambda: frozenset({TRAIN}))
    fallback: tuple[str, Callable[[], Any]] | None = None
    """After Terraform, before the default: a (source label, look-up) pair, e.g. the Azure CLI's profile."""
    negation: str | None = None
    """For a bool option that defaults to true: the flag that turns it off (``gui`` for ``headless``)."""
    aliases: tuple[str, ...] = ()
    """Other names of the flag: one letter for a short flag (``"t"``: ``-t``), or a long name
    (``"azure-subscription-id"``: ``--azure-subscription-id``), e.g. the names older scripts used."""
    normalize: Callable[[str], str] | None = None
    """Turns a text value into its stored spelling before ``choices`` are checked
    (``str.lower`` makes the choices case-insensitive)."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> tuple[str, ...]:
        """The flag and its aliases as typed: ``("--task", "-t")``."""
        return (self.flag, *(("-" if len(a) == 1 else "--") + a for a in self.aliases))

    def convert(self, raw: Any, origin: str) -> Any:
        """Turn a raw value (string from CLI/env, or config value) into this option's type."""
        where = f"{self.flag}" if origin == "command line" else f"{self.flag} (from {origin})"
        value = _convert(self, raw, where)
        if self.normalize is not None and isinstance(value, str):
            value = self.normalize(value)
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{where}: {raw!r} is not one of {', '.join(self.choices)}")
        if self.minimum is not None and isinstance(value, int | float) and value < self.minimum:
            raise UserError(f"{where}: {raw!r} is below the minimum of {self.minimum:g}")
        return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _convert(option: Option, raw: Any, where: str) -> Any:
    kind = option.kind
    if kind is list:
        if isinstance(raw, str):
            return [item for item in (part.strip() for part in raw.split(",")) if item]
        return [str(item) for item in raw]
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise UserError(f"{where}: {raw!r} is not a boolean (use true or false)")
    if isinstance(raw, bool):
        raise UserError(f"{where}: expected {kind.__name__}, got a boolean")
    try:
        return kind(raw)
    except (TypeError, ValueError):
        noun = {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
        raise UserError(f"{where}: {raw!r} is not {noun}") from None


class OptionRegistry:
    """Collects the options plugins add, refusing two plugins that claim one name."""

    def __init__(self) -> None:
        self._options: dict[str, Option] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin = "robotrain"

    def add(self, option: Option) -> None:
        """Add an option; a second plugin adding the same name or flag is an error naming both."""
        names = [option.name, *([option.negation] if option.negation else []), *option.aliases]
        for key in names:
            owner = self._owners.get(key.replace("-", "_"))
            if owner is not None:
                dashes = "-" if len(key) == 1 else "--"
                raise UserError(
                    f"plugins {owner!r} and {self.current_plugin!r} both define option "
                    f"{dashes}{key.replace('_', '-')}; uninstall one of them"
                )
        for key in names:
            self._owners[key.replace("-", "_")] = self.current_plugin
        self._options[option.name] = option

    def owner(self, name: str) -> str:
        return self._owners[name]

    def for_command(self, command: str) -> list[Option]:
        command = SAME_OPTIONS_AS.get(command, command)
        return [o for o in self._options.values() if command in o.commands]

    def __iter__(self) -> Any:
        return iter(self._options.values())

    def __getitem__(self, name: str) -> Option:
        return self._options[name]

    def __contains__(self, name: object) -> bool:
        return name in self._options

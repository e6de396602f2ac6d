"""The command line's options, cached per environment, so listing and ``--help`` import no plugin.

Building the command line needs only each option's flag, type and help. They are computed once by
loading every plugin, then kept in ``$XDG_CACHE_HOME/robotrain/`` (default ``~/.cache/robotrain``)
keyed by the interpreter and its import path. The cache is used while nothing it was made from has
changed: the import-path folders (installing or removing a distribution changes them) and every source
file of every plugin package (editing an editable plugin), and the metadata file declaring each
plugin's entry point. Commands that run still load the plugins themselves, but take the entry points
and core's version from the cache instead of scanning every installed distribution's metadata.
"""

from __future__ import annotations

import binascii
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from robotrain.options import Option, OptionRegistry

FORMAT = 3
DISCOVERED_FIELDS = ("name", "value", "distribution", "version", "declared_in")
KINDS: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "list": list}
FIELDS = ("name", "help", "env", "choices", "negation", "aliases")


def cache_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = binascii.crc32(f"{sys.executable}\0{sys.version}\0{os.pathsep.join(_import_path())}".encode())
    return base / "robotrain" / f"options-{key:08x}.json"


def _import_path() -> list[str]:
    """The import-path folders that can hold distributions (not the current folder)."""
    return [entry for entry in sys.path if entry and os.path.isdir(entry)]


def _stamp(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _sources(packages: list[str]) -> Iterator[str]:
    for package in packages:
        if os.path.isfile(package):  # a single-module plugin
            yield package
        for folder, _, names in os.walk(package):
            yield from (os.path.join(folder, name) for name in names if name.endswith(".py"))


def _stamps(packages: list[str]) -> dict[str, int | None]:
    paths = [*_import_path(), *_sources(packages)]
    return {path: _stamp(path) for path in paths}


def _current() -> dict[str, Any] | None:
    """The cache recorded for this environment, if nothing it was made from has changed."""
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or _stamps(data["packages"]) != data["stamps"]:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return data if isinstance(data, dict) else None


def cached_options() -> tuple[OptionRegistry, list[str]] | None:
    """The options and discovery warnings recorded for this environment, if still current."""
    data = _current()
    if data is None:
        return None
    try:
        registry = OptionRegistry()
        for entry in data["options"]:
            registry.add(_option(entry))
        return registry, list(data["warnings"])
    except (ValueError, KeyError, TypeError):
        return None


Declared = tuple[str, str, str, str, str | None]
"""An entry point as recorded: name, value, distribution, version, the metadata file declaring it."""


def cached_discovery() -> tuple[list[Declared], str] | None:
    """The entry points (``robotrain.plugins.Discovered`` fields, in order) and core's version recorded
    for this environment, if still current."""
    data = _current()
    if data is None:
        return None
    entries, version = data.get("entry_points"), data.get("core_version")
    if not isinstance(entries, list) or not isinstance(version, str) or not version:
        return None
    found: list[Declared] = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != set(DISCOVERED_FIELDS):
            return None
        name, value, distribution, dist_version, declared_in = (entry[field] for field in DISCOVERED_FIELDS)
        if not all(isinstance(part, str) for part in (name, value, distribution, dist_version)):
            return None
        found.append(
            (name, value, distribution, dist_version, declared_in if isinstance(declared_in, str) else None)
        )
    return found, version


def store_options(
    registry: OptionRegistry,
    warnings: list[str],
    modules: Iterable[Any],
    discovered: Iterable[Any] = (),
    core_version: str = "",
) -> None:
    """Record the options and entry points of a full plugin load; failures to write are ignored (it is
    only a cache). ``discovered`` holds ``robotrain.plugins.Discovered`` records."""
    entry_points = [{field: getattr(found, field) for field in DISCOVERED_FIELDS} for found in discovered]
    declarations = {entry["declared_in"] for entry in entry_points if entry["declared_in"]}
    packages = sorted({folder for module in modules if (folder := _package_folder(module))} | declarations)
    data = {
        "format": FORMAT,
        "packages": packages,
        "stamps": _stamps(packages),
        "options": [_entry(option) for option in registry],
        "warnings": warnings,
        "entry_points": entry_points,
        "core_version": core_version,
    }
    import tempfile

    target = cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp") as handle:
            json.dump(data, handle)
        os.replace(handle.name, target)
    except OSError:
        return


def _package_folder(module: Any) -> str | None:
    """The folder of the top-level package a plugin module belongs to."""
    name = getattr(module, "__name__", "")
    top = sys.modules.get(str(name).partition(".")[0])
    file = getattr(top, "__file__", None)
    if not isinstance(file, str):
        return None
    return os.path.dirname(file) if os.path.basename(file) == "__init__.py" else file


def _entry(option: Option) -> dict[str, Any]:
    entry = {field: getattr(option, field) for field in FIELDS}
    default = option.default
    entry["default"] = default if isinstance(default, str | int | float | bool | list) else None
    entry["kind"] = option.kind.__name__
    entry["commands"] = sorted(option.commands)
    return entry


def _option(entry: dict[str, Any]) -> Option:
    choices = entry["choices"]
    return Option(
        **{field: entry[field] for field in FIELDS if field not in ("choices", "aliases")},
        kind=KINDS[entry["kind"]],
        default=entry["default"],
        choices=None if choices is None else tuple(choices),
        aliases=tuple(entry["aliases"]),
        commands=frozenset(entry["commands"]),
    )


_printed: set[str] = set()


def warn(message: str) -> None:
    """Print a discovery warning once per process (the parser and the command both discover)."""
    if message not in _printed:
        _printed.add(message)
        print(f"robotrain: warning: {message}", file=sys.stderr)


def parser_options() -> OptionRegistry:
    """The options to build the command line with: cached when current, else loaded (and cached)."""
    cached = cached_options()
    if cached is not None:
        registry, warnings = cached
        for message in warnings:
            warn(message)
        return registry
    from robotrain.plugins import load_plugins

    plugins = load_plugins()
    store_options(
        plugins.options,
        plugins.warnings,
        plugins.manager.get_plugins(),
        plugins.discovered,
        plugins.core_version,
    )
    return plugins.options

"""The command line's options, cached per environment, so listing and ``--help`` import no plugin.

Building the command line needs only each option's flag, type and help. They are computed once by
loading every plugin, then kept in ``$XDG_CACHE_HOME/robotrain/`` (default ``~/.cache/robotrain``)
keyed by the interpreter and its import path. The cache is used while nothing it was made from has
changed: the import-path folders (installing or removing a distribution changes them) and every source
file of every plugin package (editing an editable plugin). Commands that run still load the plugins
themselves; only the parser is built from the cache.
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

FORMAT = 2
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


def cached_options() -> tuple[OptionRegistry, list[str]] | None:
    """The options and discovery warnings recorded for this environment, if still current."""
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or _stamps(data["packages"]) != data["stamps"]:
            return None
        registry = OptionRegistry()
        for entry in data["options"]:
            registry.add(_option(entry))
        return registry, list(data["warnings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def store_options(registry: OptionRegistry, warnings: list[str], modules: Iterable[Any]) -> None:
    """Record the options of a full plugin load; failures to write are ignored (it is only a cache)."""
    packages = sorted({folder for module in modules if (folder := _package_folder(module))})
    data = {
        "format": FORMAT,
        "packages": packages,
        "stamps": _stamps(packages),
        "options": [_entry(option) for option in registry],
        "warnings": warnings,
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
    store_options(plugins.options, plugins.warnings, plugins.manager.get_plugins())
    return plugins.options

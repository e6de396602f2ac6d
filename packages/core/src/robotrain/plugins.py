"""Plugin discovery: built-ins first, then each ``robotrain`` entry point on its own.

The entry points (and core's version) come from the environment's option cache while it is current
(robotrain.option_cache), else from scanning the installed distributions' metadata.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any

import pluggy

from robotrain import hookspecs
from robotrain.errors import UserError
from robotrain.option_cache import cached_discovery, warn
from robotrain.options import OptionRegistry
from robotrain.registry import Catalog, Platform, Workload
from robotrain.settings import CLI, ProjectConfig, Settings

ENTRY_POINT_GROUP = "robotrain"
CORE = "robotrain"
BUILTINS = {
    CORE: "robotrain.builtin",
    "isaaclab": "robotrain.workloads.isaaclab",
    "local": "robotrain.platforms.local",
}


@dataclass(frozen=True)
class Discovered:
    """One ``robotrain`` entry point: its name, ``module[:attribute]``, distribution and version, and the
    metadata file that declares it (None when unknown)."""

    name: str
    value: str
    distribution: str
    version: str
    declared_in: str | None = None

    @classmethod
    def of(cls, entry_point: metadata.EntryPoint) -> Discovered:
        dist = entry_point.dist
        folder = getattr(dist, "_path", None)  # PathDistribution's dist-info folder
        return cls(
            entry_point.name,
            entry_point.value,
            dist.name if dist else "?",
            dist.version if dist else "?",
            str(folder / "entry_points.txt") if folder is not None else None,
        )

    def load(self) -> Any:
        """The plugin object, found as ``EntryPoint.load`` finds it."""
        match = metadata.EntryPoint.pattern.match(self.value)
        if match is None:
            raise ValueError(f"entry point value {self.value!r} is not module[:attribute]")
        found = import_module(match.group("module"))
        for part in filter(None, (match.group("attr") or "").split(".")):
            found = getattr(found, part)
        return found


@dataclass
class PluginInfo:
    """What ``invoke plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    platforms: list[str] = field(default_factory=list)
    workloads: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)

    def provides(self) -> str:
        parts = [f"platform {p}" for p in self.platforms] + [f"workload {w}" for w in self.workloads]
        if self.options:
            parts.append(f"{len(self.options)} options")
        return ", ".join(parts) or ", ".join(self.hooks) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Plugins:
    """The loaded plugins: their hooks, options, workloads and platforms."""

    def __init__(self, warn: Callable[[str], None]) -> None:
        self.manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.manager.add_hookspecs(hookspecs)
        self.options = OptionRegistry()
        self.workloads: Catalog[Workload] = Catalog("workload")
        self.platforms: Catalog[Platform] = Catalog("platform")
        self.infos: dict[str, PluginInfo] = {}
        self.warnings: list[str] = []
        self.discovered: list[Discovered] = []
        self.core_version = ""
        self._warn_line = warn

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        self._warn_line(message)

    @property
    def hook(self) -> Any:
        return self.manager.hook

    def load(
        self, entry_points: Iterable[metadata.EntryPoint | Discovered], core_version: str | None = None
    ) -> None:
        self.core_version = core_version or metadata.version("robotrain-core")
        for name, module in BUILTINS.items():
            self._register(name, import_module(module), "robotrain-core", self.core_version)
        for entry_point in entry_points:
            found = entry_point if isinstance(entry_point, Discovered) else Discovered.of(entry_point)
            self.discovered.append(found)
            self._load_entry_point(found)
        self._collect()

    def _load_entry_point(self, entry_point: Discovered) -> None:
        dist_name, version = entry_point.distribution, entry_point.version
        if entry_point.name in self.infos:
            self._warn(f"plugin {entry_point.name!r} from {dist_name} is skipped: the name is taken")
            return
        try:
            plugin = entry_point.load()
            self._register(entry_point.name, plugin, dist_name, version)
        except Exception as error:  # a broken plugin must not take the others down
            reason = str(error).splitlines()[0] if str(error) else ""
            self._warn(
                f"plugin {entry_point.name!r} ({dist_name} {version}) is skipped: "
                f"{type(error).__name__}: {reason}"
            )

    def _register(self, name: str, plugin: object, dist: str, version: str) -> None:
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            if self.manager.get_plugin(name) is not None:
                self.manager.unregister(name=name)
            raise ImportError(str(error).splitlines()[0]) from None
        hooks = sorted(c.name for c in self.manager.get_hookcallers(plugin) or [])
        self.infos[name] = PluginInfo(name, dist, version, hooks=hooks)

    def _collect(self) -> None:
        """Let every plugin add its options, workloads and platforms, remembering who added what."""
        registrations: list[tuple[str, Any, Callable[..., None]]] = [
            ("robotrain_add_options", self.options, lambda f: f(options=self.options)),
            ("robotrain_register_workloads", self.workloads, lambda f: f(register=self.workloads.register)),
            ("robotrain_register_platforms", self.platforms, lambda f: f(register=self.platforms.register)),
        ]
        for hook_name, target, call in registrations:
            for impl in getattr(self.hook, hook_name).get_hookimpls():
                target.current_plugin = impl.plugin_name
                call(impl.function)
        for option in self.options:
            self.infos[self.options.owner(option.name)].options.append(option.name)
        for name, owner in self.workloads.owners.items():
            self.infos[owner].workloads.append(name)
        for name, owner in self.platforms.owners.items():
            self.infos[owner].platforms.append(name)

    def settings(
        self, cli: Mapping[str, Any], extra_args: tuple[str, ...] = (), start: Any = None
    ) -> Settings:
        """Resolve settings for one command run from ``start`` (default: the current folder)."""
        import os
        from pathlib import Path

        profile = cli.get("profile") or os.environ.get("ROBOTRAIN_PROFILE") or None
        config = ProjectConfig.find(Path(start or Path.cwd()).resolve(), profile)
        return Settings(self.options, cli, config, extra_args=extra_args)

    def check_applicable(self, settings: Settings, *, workload: str | None, platform: str) -> None:
        """Refuse an option given on the command line whose plugin takes no part in this run."""
        active = {CORE, self.platforms.owners[platform]}
        if workload is not None:
            active.add(self.workloads.owners[workload])
        for option in self.options:
            owner = self.options.owner(option.name)
            if settings.given_on_command_line(option.name) and owner not in active:
                used = f"--platform {platform}" + (f" --workload {workload}" if workload else "")
                raise UserError(
                    f"{option.flag} belongs to plugin {owner!r} and has no effect with {used}; remove it"
                )


@functools.cache
def load_plugins() -> Plugins:
    """The process-wide plugin set (built-ins plus installed entry points)."""
    plugins = Plugins(warn)
    recorded = cached_discovery()
    if recorded is not None:
        entry_points, core_version = recorded
        plugins.load([Discovered(*entry) for entry in entry_points], core_version)
    else:
        plugins.load(metadata.entry_points(group=ENTRY_POINT_GROUP))
    return plugins


__all__ = ["CLI", "Discovered", "PluginInfo", "Plugins", "load_plugins"]

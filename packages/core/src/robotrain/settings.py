"""Settings resolution: command line > environment > project config > Terraform > default."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robotrain.errors import UserError
from robotrain.options import Option, OptionRegistry, TerraformOutputs
from robotrain.terraform import load_outputs

CLI = "command line"
DEFAULT = "default"
MASK = "********"
NOT_OPTIONS = frozenset({"profile", "allow_secrets"})
"""Config keys that are not options: the profile to apply, and allow-secrets (robotrain.payload_secrets)."""


@dataclass(frozen=True)
class Resolved:
    """One setting's value and where it came from."""

    option: Option
    value: Any
    source: str
    sensitive: bool

    @property
    def shown(self) -> Any:
        return MASK if self.sensitive and self.value not in (None, "") else self.value


@dataclass(frozen=True)
class ProjectConfig:
    """The ``[tool.robotrain]`` table of pyproject.toml, or robotrain.toml, with one profile applied."""

    root: Path
    path: Path | None
    values: Mapping[str, Any]
    profile: str | None

    @property
    def label(self) -> str:
        if self.path is None:
            return "config"
        name = self.path.name + (f" [profile {self.profile}]" if self.profile else "")
        return name

    @classmethod
    def find(cls, start: Path, profile: str | None) -> ProjectConfig:
        """Walk up from ``start`` to the first robotrain.toml or pyproject.toml with ``[tool.robotrain]``."""
        for folder in (start, *start.parents):
            table = _config_table(folder)
            if table is not None:
                path, data = table
                return cls(folder, path, _apply_profile(data, profile, path), profile)
        if profile:
            raise UserError(f"profile {profile!r} given but no robotrain.toml or [tool.robotrain] found")
        return cls(start, None, {}, None)


def _config_table(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    own = folder / "robotrain.toml"
    if own.is_file():
        return own, _load_toml(own)
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        table = _load_toml(pyproject).get("tool", {}).get("robotrain")
        if isinstance(table, dict):
            return pyproject, table
    return None


def _load_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when the project has a config file

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise UserError(f"{path}: invalid TOML ({error})") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    except OSError as error:
        raise UserError(f"cannot read {path} ({error.strerror}); check its permissions") from None


def _normalise(table: Mapping[str, Any]) -> dict[str, Any]:
    return {key.replace("-", "_"): value for key, value in table.items()}


def _apply_profile(data: dict[str, Any], profile: str | None, path: Path) -> dict[str, Any]:
    profiles = data.get("profiles", {})
    values = _normalise({k: v for k, v in data.items() if k != "profiles"})
    chosen = profile or values.pop("profile", None)
    values.pop("profile", None)
    if not isinstance(profiles, dict) or not all(isinstance(table, dict) for table in profiles.values()):
        raise UserError(
            f"{path}: profiles must be a table of tables ([profiles.NAME] sections), "
            f"not {_toml_type(profiles)}"
        )
    if chosen is None:
        return values
    if not isinstance(chosen, str):
        raise UserError(
            f"{path}: profile must be a string (a name under [profiles]), not {_toml_type(chosen)}"
        )
    if chosen not in profiles:
        known = ", ".join(sorted(profiles)) or "none defined"
        raise UserError(f"profile {chosen!r} is not in {path} (profiles: {known})")
    return values | _normalise(profiles[chosen])


def _toml_type(value: Any) -> str:
    """How TOML calls a parsed value's type, for messages."""
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", dict: "a table",
             list: "an array"}  # fmt: skip
    return next((noun for kind, noun in kinds.items() if isinstance(value, kind)), "a date or time")


CONFIG_TYPES: dict[type, tuple[tuple[type, ...], str]] = {
    str: ((str,), "a string (in quotes)"),
    int: ((int, str), "a whole number"),
    float: ((int, float, str), "a number"),
    bool: ((bool, str), "true or false"),
}


def _check_config_type(option: Option, raw: Any, label: str) -> Any:
    """A config value of the wrong TOML type (``num-envs = 3.7``, ``label = 5``) is one line, not a guess."""
    if option.kind is list:
        items = raw if isinstance(raw, list) else [raw]
        if all(isinstance(item, str) for item in items):
            return raw
        expected = "a string or an array of strings"
    else:
        allowed, expected = CONFIG_TYPES.get(option.kind, ((str,), "a string"))
        if isinstance(raw, str) and option.kind is str and not raw.strip():
            expected = "a value (an empty string is not one; leave the key out for the default)"
        elif isinstance(raw, allowed) and not (isinstance(raw, bool) and bool not in allowed):
            return raw
    key = option.name.replace("_", "-")
    raise UserError(f"{key} in {label}: expected {expected}, got {_toml_type(raw)} ({raw!r}); fix the value")


def terraform_source(outputs: TerraformOutputs) -> str:
    """The source label of a value found in Terraform: ``terraform (deploy/001-iac/terraform.tfstate)``."""
    return f"terraform ({outputs.source})" if outputs.source else "terraform"


class Settings:
    """Resolved settings for one command, looked up lazily by option name.

    ``settings["num_envs"]`` gives the value; ``settings.resolve("num_envs")``
    also says where it came from. Terraform is read only when a setting falls
    through to it.
    """

    def __init__(
        self,
        options: OptionRegistry,
        cli: Mapping[str, Any],
        config: ProjectConfig,
        environ: Mapping[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.options = options
        self.config = config
        self.extra_args = extra_args
        """Arguments given after ``--``, for the platform's own submit command."""
        self._cli = {k: v for k, v in cli.items() if v is not None and v != []}
        self._environ = os.environ if environ is None else environ
        self._cache: dict[str, Resolved] = {}
        self._terraform: TerraformOutputs | None = None

    @property
    def project_root(self) -> Path:
        return self.config.root

    @property
    def state_dir(self) -> Path:
        """The project's ``.robotrain/`` folder, where local state and runs live."""
        return self.project_root / ".robotrain"

    def given_on_command_line(self, name: str) -> bool:
        return name in self._cli

    def with_values(self, values: Mapping[str, Any]) -> Settings:
        """These settings with ``values`` given as if on the command line (a retry's changes)."""
        return Settings(self.options, {**self._cli, **values}, self.config, self._environ, self.extra_args)

    def __getitem__(self, name: str) -> Any:
        return self.resolve(name).value

    def get(self, name: str, default: Any = None) -> Any:
        """The value, or ``default`` when no installed plugin defines the option or it is unset."""
        if name not in self.options:
            return default
        value = self[name]
        return default if value is None else value

    def resolve(self, name: str) -> Resolved:
        if name not in self._cache:
            self._cache[name] = self._resolve(self.options[name])
        return self._cache[name]

    def resolve_all(self) -> list[Resolved]:
        return [self.resolve(option.name) for option in self.options]

    def check_config_types(self) -> None:
        """Refuse a config value of the wrong type for its option, whether or not this command reads it."""
        for key, raw in self.config.values.items():
            if key in self.options:
                _check_config_type(self.options[key], raw, self.config.label)

    def unknown_config_keys(self) -> list[str]:
        return sorted(key for key in self.config.values if key not in self.options and key not in NOT_OPTIONS)

    def _resolve(self, option: Option) -> Resolved:
        if option.name in self._cli:
            return self._found(option, self._cli[option.name], CLI)
        if option.env and self._environ.get(option.env, "") != "":
            return self._found(option, self._environ[option.env], f"env {option.env}")
        if option.name in self.config.values:
            raw = _check_config_type(option, self.config.values[option.name], self.config.label)
            return self._found(option, raw, self.config.label)
        if option.terraform is not None:
            found = self._from_terraform(option)
            if found is not None:
                return found
        if option.fallback is not None:
            label, lookup = option.fallback
            value = lookup()
            if value is not None:
                return self._found(option, value, label)
        return Resolved(option, option.default, DEFAULT, option.sensitive)

    def _found(self, option: Option, raw: Any, source: str, sensitive: bool = False) -> Resolved:
        return Resolved(option, option.convert(raw, source), source, option.sensitive or sensitive)

    def _from_terraform(self, option: Option) -> Resolved | None:
        outputs = self.terraform_outputs()
        lookup = option.terraform
        if isinstance(lookup, str):
            value, sensitive = outputs.get(lookup), outputs.is_sensitive(lookup)
        else:
            assert lookup is not None
            value, sensitive = lookup(outputs), False
        if value is None:
            return None
        return self._found(option, value, terraform_source(outputs), sensitive)

    def terraform_outputs(self) -> TerraformOutputs:
        """The Terraform outputs (read once): ``--terraform-outputs``, else ``--terraform-dir``, whose
        default is the conventional ``deploy/001-iac`` when the project has it."""
        if self._terraform is None and not self.get("terraform", True):
            self._terraform = TerraformOutputs({})
        if self._terraform is None:
            directory = self.get("terraform_dir") if "terraform_dir" in self.options else None
            saved = self.get("terraform_outputs")
            explicit = directory is not None and self.resolve("terraform_dir").source != DEFAULT
            self._terraform = load_outputs(
                self._path(directory) if directory else None,
                self._path(saved) if saved else None,
                explicit=explicit,
                root=self.project_root.resolve(),
            )
        return self._terraform

    def path(self, name: str) -> Path | None:
        """A path setting, relative to the project root."""
        value = self.get(name)
        return None if value is None else self._path(value)

    def _path(self, value: str) -> Path:
        return (self.project_root / Path(value).expanduser()).resolve()

"""The command line: one invoke namespace, used by ``tasks.py`` and the ``robotrain`` script."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shlex
import sys
from collections.abc import Callable
from inspect import Signature
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.parser.argument import Argument
from invoke.program import Program
from invoke.tasks import Task

from robotrain.errors import UserError

if TYPE_CHECKING:
    from robotrain.options import Option
    from robotrain.plugins import Plugins
    from robotrain.settings import Settings

OUTPUTS = ("text", "json")


def load_plugins() -> Plugins:
    """The plugins, imported only when a command runs: listing and help are built from the option cache."""
    from robotrain.plugins import load_plugins as load

    return load()


class PluginOptionsTask(Task[Callable[..., Any]]):
    """An invoke task whose flags also include the options plugins contributed."""

    def __init__(self, body: Callable[..., Any], options: list[Option], **kwargs: Any) -> None:
        self.plugin_options = options
        super().__init__(body, **kwargs)

    def argspec(self, body: Callable[..., Any]) -> Signature:
        signature = super().argspec(body)
        return signature.replace(
            parameters=[p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        )

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict[str, Any]:
        """The task's own flags keep their first-letter short flag only when no option claims it."""
        claimed = {alias for option in self.plugin_options for alias in option.aliases}
        opts: dict[str, Any] = super().arg_opts(name, default, taken_names | claimed)
        opts["names"] = [n for n in opts["names"] if len(n) > 1 or n == name[0]]
        return opts

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments: list[Argument] = super().get_arguments(ignore_unknown_help)
        for option in self.plugin_options:
            arguments.append(_argument(option.name, option.kind, _help(option), option.aliases))
            if option.negation:
                arguments.append(_argument(option.negation, bool, f"turn off --{option.flag[2:]}"))
        return arguments


def _argument(name: str, kind: type, help: str, aliases: tuple[str, ...] = ()) -> Argument:
    flag = name.replace("_", "-")
    kind = kind if kind in (bool, list) else str
    return Argument(
        names=(flag, *aliases), attr_name=name if "_" in name else None, kind=kind, help=help,
        default=[] if kind is list else None,
    )  # fmt: skip


def _help(option: Option) -> str:
    facts = []
    if option.choices:
        facts.append("|".join(option.choices))
    if option.default not in (None, False, []):
        facts.append(f"default {option.default}")
    if option.env:
        facts.append(f"env {option.env}")
    return option.help + (f" [{'; '.join(facts)}]" if facts else "")


INTERRUPTED = 130
BROKEN_PIPE = 141
"""Exit statuses of a command stopped by SIGINT (Ctrl-C) and SIGPIPE (its reader went away), as shells use."""


def user_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a UserError into one line on stderr and exit status 2.

    Ctrl-C is one line too (each step undoes or records what it started), a
    file the user cannot read or write is one line naming it, and output piped
    into a reader that stops early (``| head``) ends quietly.
    """

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = body(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's final flush
            return result
        except UserError as error:
            raise Exit(f"robotrain: error: {error}", code=2) from None
        except KeyboardInterrupt:
            raise Exit("robotrain: interrupted (Ctrl-C)", code=INTERRUPTED) from None
        except BrokenPipeError:
            _silence_stdout()
            raise Exit(code=BROKEN_PIPE) from None
        except OSError as error:
            if error.filename is None:
                raise
            raise Exit(f"robotrain: error: {file_error(error)}", code=2) from None

    return run


def file_error(error: OSError) -> str:
    """One line for a file-system error: which path, what is wrong, what to do."""
    path = error.filename
    if isinstance(error, PermissionError):
        return f"permission denied: {path}; make it readable (and writable, for .robotrain/) by you"
    if isinstance(error, IsADirectoryError):
        return f"{path} is a folder, expected a file"
    if isinstance(error, NotADirectoryError):
        return f"{path} is a file, expected a folder"
    if getattr(error, "errno", None) == errno.EROFS:
        return f"{path} is on a read-only file system; run from a project you can write to"
    return f"{path}: {error.strerror or error}; check that it exists and that you can read and write it"


def _silence_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush does not complain."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):
        os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _settings(
    plugins: Plugins, values: dict[str, Any], context: Context | None = None, warn_unknown: bool = True
) -> Settings:
    for option in plugins.options:
        if option.kind is bool and not values.get(option.name):
            values[option.name] = None  # an absent flag says nothing; lower sources decide
        if option.negation and values.pop(option.negation, None):
            values[option.name] = False
        if (
            option.kind is str
            and isinstance(values.get(option.name), str)
            and not values[option.name].strip()
        ):
            raise UserError(f"{option.flag} is empty; give a value or leave the flag out")
    remainder = getattr(context, "remainder", "") if context is not None else ""
    settings = plugins.settings(values, extra_args=tuple(shlex.split(remainder)))
    settings.check_config_types()
    if warn_unknown:
        _warn_unknown_keys(settings)
    return settings


def _warn_unknown_keys(settings: Settings) -> None:
    for key in settings.unknown_config_keys():
        print(
            f"robotrain: warning: {settings.config.path}: unknown key {key.replace('_', '-')!r} "
            f"(no installed plugin defines it); remove it or install the plugin that does",
            file=sys.stderr,
        )


def _check_model_name(name: str | None) -> None:
    """Refuse, before training, a model name MLflow refuses at registration.

    The rule is MLflow's ``_validate_model_name`` (mlflow/utils/validation.py):
    not blank, no ``/`` or ``:``, and not a path that normalises to another name.
    """
    if name is None:
        return
    if (
        not name.strip()
        or "/" in name
        or ":" in name
        or os.path.normpath(name) != name
        or name.startswith("..")
    ):
        raise UserError(
            f"model name {name!r} would be refused by MLflow when the checkpoint is registered; "
            f"use letters, digits, '.', '_' and '-' (--register-checkpoint NAME)"
        )


def _require_folder(path: Path, what: str, fix: str) -> None:
    """A folder setting or argument must name a folder: say so when it is a file or missing."""
    if path.is_file():
        raise UserError(f"{what} {path} is a file, expected a folder; {fix}")


def _check_output(output: str) -> None:
    if output not in OUTPUTS:
        raise UserError(f"--output: {output!r} is not one of {', '.join(OUTPUTS)}")


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _platform(plugins: Plugins, settings: Settings) -> str:
    name = str(settings["platform"])
    plugins.platforms.require(name)
    return name


def _no_result(what: str, platform: str) -> UserError:
    return UserError(f"platform {platform!r} does not support {what}")


@user_errors
def train(c: Context, dry_run: bool = False, output: str = "text", **values: Any) -> None:
    """Build a training job and submit it (or, with --dry-run, print the platform's job spec)."""
    from robotrain.common_options import apply_common_options, check_distributed, check_passthrough
    from robotrain.history import record_submission

    _check_output(output)
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _platform(plugins, settings)
    workload = str(settings["workload"])
    plugins.workloads.require(workload)
    plugins.check_applicable(settings, workload=workload, platform=platform)
    check_passthrough(plugins.platforms.items[platform], settings)
    training_dir = settings.path("training_dir")
    if training_dir is not None:
        _require_folder(
            training_dir, "training folder", "set --training-dir to the folder with scripts/train.sh"
        )
    job = plugins.hook.robotrain_build_job(workload=workload, settings=settings)
    job = apply_common_options(job, settings)
    _check_model_name(job.checkpoint.register_as)
    check_distributed(plugins.platforms.items[platform], job)
    if dry_run:
        spec = plugins.hook.robotrain_render_job(platform=platform, job=job, settings=settings)
        if spec is None:
            raise _no_result("--dry-run", platform)
        if output == "json":
            _print_json({"platform": platform, "job": job.to_dict(), "spec": spec})
        else:
            print(spec, end="" if spec.endswith("\n") else "\n")
        return
    submission = plugins.hook.robotrain_submit(platform=platform, job=job, settings=settings)
    if submission is None:
        raise _no_result("submit", platform)
    record_submission(settings.state_dir, submission)
    if output == "json":
        _print_json(vars(submission))
    else:
        print(
            f"{submission.platform} job {submission.job_id}"
            + (f"  {submission.url}" if submission.url else "")
        )
        if submission.details.get("checkpoints"):
            print(f"checkpoints are kept in {submission.details['checkpoints']}")


@user_errors
def stage_dataset(c: Context, source: str, name: str = "", output: str = "text", **values: Any) -> None:
    """Stage a local folder as a named, versioned dataset on the platform."""
    _check_output(output)
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _platform(plugins, settings)
    folder = (settings.project_root / source).resolve() if not Path(source).is_absolute() else Path(source)
    _require_folder(folder, "dataset source", "give the folder that holds the dataset's files")
    if not folder.is_dir():
        raise UserError(f"dataset folder {source} not found; give an existing folder")
    dataset = plugins.hook.robotrain_stage_dataset(
        platform=platform, source=folder, name=name or folder.name, settings=settings
    )
    if dataset is None:
        raise _no_result("stage-dataset", platform)
    if output == "json":
        _print_json(vars(dataset))
    else:
        state = "uploaded" if dataset.uploaded else "unchanged, not uploaded again"
        print(f"dataset {dataset.name}:{dataset.version} ({state})  {dataset.uri}")


@user_errors
def register_model(c: Context, source: str, name: str = "", output: str = "text", **values: Any) -> None:
    """Register a checkpoint (folder, job output or runs:/ URI) as a model version."""
    _check_output(output)
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _platform(plugins, settings)
    model_name = name or settings.get("register_checkpoint")
    if not model_name:
        raise UserError("give the model a name with --name")
    model = plugins.hook.robotrain_register_model(
        platform=platform, source=source, name=model_name, settings=settings
    )
    if model is None:
        raise _no_result("register-model", platform)
    if output == "json":
        _print_json(vars(model))
    else:
        state = "registered" if model.created else "already registered, no new version"
        print(f"model {model.name} version {model.version} ({state})  {model.uri}")


def _job_platform(plugins: Plugins, settings: Settings, job_id: str) -> str:
    if not settings.given_on_command_line("platform"):
        from robotrain.history import find_platform

        recorded = find_platform(settings.state_dir, job_id)
        if recorded:
            settings = plugins.settings({"platform": recorded})
    return _platform(plugins, settings)


@user_errors
def status(c: Context, job_id: str, output: str = "text", **values: Any) -> None:
    """Show a job's state."""
    _check_output(output)
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _job_platform(plugins, settings, job_id)
    result = plugins.hook.robotrain_status(platform=platform, job_id=job_id, settings=settings)
    if result is None:
        raise _no_result("status", platform)
    if output == "json":
        _print_json(vars(result))
    else:
        print(f"{result.platform} job {result.job_id}: {result.state}")


@user_errors
def logs(c: Context, job_id: str, follow: bool = False, **values: Any) -> None:
    """Print a job's logs (with --follow, until it ends)."""
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _job_platform(plugins, settings, job_id)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    handled = plugins.hook.robotrain_logs(
        platform=platform, job_id=job_id, follow=follow, write=write, settings=settings
    )
    if handled is None:
        raise _no_result("logs", platform)


@user_errors
def cancel(c: Context, job_id: str, **values: Any) -> None:
    """Cancel a job."""
    plugins = load_plugins()
    settings = _settings(plugins, values, c)
    platform = _job_platform(plugins, settings, job_id)
    result = plugins.hook.robotrain_cancel(platform=platform, job_id=job_id, settings=settings)
    if result is None:
        raise _no_result("cancel", platform)
    print(f"{result.platform} job {result.job_id}: {result.state}")


@user_errors
def plugins(c: Context, output: str = "text") -> None:
    """List installed plugins: name, distribution, version, what each provides."""
    _check_output(output)
    infos = list(load_plugins().infos.values())
    if output == "json":
        _print_json([info.to_dict() for info in infos])
        return
    rows = [(i.name, i.distribution, i.version, i.provides()) for i in infos]
    widths = [max(len(row[col]) for row in rows) for col in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])


@user_errors
def config(c: Context, output: str = "text", **values: Any) -> None:
    """Show every setting, its value and where it came from (sensitive values masked)."""
    _check_output(output)
    plugins = load_plugins()
    settings = _settings(plugins, values, c, warn_unknown=False)
    rows = [(r.option.name.replace("_", "-"), r.shown, r.source) for r in settings.resolve_all()]
    unknown = settings.unknown_config_keys()
    if output == "json":
        _print_json({
            "config_file": str(settings.config.path) if settings.config.path else None,
            "settings": [{"name": n, "value": v, "source": s} for n, v, s in rows],
            "unknown_config_keys": unknown,
        })  # fmt: skip
        return
    print(f"config file: {settings.config.path or 'none'}")
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        shown = "" if value is None else value
        print(f"  {name.ljust(width)}  {str(shown)!s:<40}  ({source})")
    for key in unknown:
        print(f"  {key.replace('_', '-')}: in the config file but no installed plugin defines it")


def build_namespace() -> Collection:
    """The task namespace, with each plugin's options attached to the commands they serve."""
    from robotrain.option_cache import parser_options

    try:
        registry = parser_options()
    except UserError as error:
        print(f"robotrain: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    output_help = {"output": "text or json"}
    job_help = {"job_id": "the id train printed"}
    tasks = [
        (train, "train", (), {"dry_run": "print the platform's job spec and submit nothing", **output_help}),
        (stage_dataset, "stage-dataset", ("source",),
         {"source": "local folder", "name": "dataset name (default: the folder's)", **output_help}),
        (register_model, "register-model", ("source",),
         {"source": "folder, job output or runs:/ URI", "name": "model name", **output_help}),
        (status, "status", ("job_id",), {**job_help, **output_help}),
        (logs, "logs", ("job_id",), {**job_help, "follow": "keep printing until the job ends"}),
        (cancel, "cancel", ("job_id",), job_help),
    ]  # fmt: skip
    namespace = Collection()
    for body, name, positional, help in tasks:
        namespace.add_task(
            PluginOptionsTask(body, registry.for_command(name), name=name, positional=positional, help=help)
        )
    namespace.add_task(Task(plugins, name="plugins", help=output_help))
    namespace.add_task(PluginOptionsTask(config, list(registry), name="config", help=output_help))
    return namespace


def main() -> None:
    """The ``robotrain`` console script: the same namespace as ``invoke``."""
    from robotrain import __version__

    program = Program(namespace=build_namespace(), name="robotrain", binary="robotrain", version=__version__)
    try:
        program.run()
        sys.stdout.flush()
    except BrokenPipeError:  # --help or --list piped into a reader that stopped early
        _silence_stdout()
        raise SystemExit(BROKEN_PIPE) from None
    except KeyboardInterrupt:  # before or between the commands' own handling
        print("robotrain: interrupted (Ctrl-C)", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None

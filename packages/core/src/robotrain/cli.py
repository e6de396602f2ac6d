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
    from robotrain.history import JobRecord
    from robotrain.job import JobSpec, Submission
    from robotrain.lifecycle import Refreshed
    from robotrain.options import Option
    from robotrain.plugins import Plugins
    from robotrain.recovery import Policy
    from robotrain.settings import Settings

OUTPUTS = ("text", "json")


def load_plugins() -> Plugins:
    """The plugins, imported only when a command runs: listing and help are built from the option cache.

    The ``robotrain`` script's Program turns bytecode caching off after robotrain was imported (as
    ``robotrain/__init__`` undoes for invoke's): undone here too, before the plugins are imported.
    """
    sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)
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
    plugins: Plugins,
    values: dict[str, Any],
    context: Context | None = None,
    warn_unknown: bool = True,
    extra_args: tuple[str, ...] | None = None,
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
    if extra_args is None:
        remainder = getattr(context, "remainder", "") if context is not None else ""
        extra_args = tuple(shlex.split(remainder))
    settings = plugins.settings(values, extra_args=extra_args)
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


def _command(
    c: Context, values: dict[str, Any], output: str | None = None, warn_unknown: bool = True
) -> tuple[Plugins, Settings]:
    """What every command starts with: its --output checked, the plugins, the resolved settings."""
    if output is not None:
        _check_output(output)
    plugins = load_plugins()
    return plugins, _settings(plugins, values, c, warn_unknown)


def _build_job(plugins: Plugins, settings: Settings) -> tuple[str, JobSpec]:
    """The platform and the job the settings describe, every check done; nothing is sent."""
    from robotrain.common_options import apply_common_options, check_distributed, check_passthrough

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
    return platform, job


def _render(plugins: Plugins, platform: str, job: JobSpec, settings: Settings) -> str:
    spec: str | None = plugins.hook.robotrain_render_job(platform=platform, job=job, settings=settings)
    if spec is None:
        raise _no_result("--dry-run", platform)
    return spec


def _print_spec(spec: str) -> None:
    print(spec, end="" if spec.endswith("\n") else "\n")


@user_errors
def train(c: Context, dry_run: bool = False, output: str = "text", **values: Any) -> None:
    """Build a training job and submit it (or, with --dry-run, print the platform's job spec)."""
    plugins, settings = _command(c, values, output)
    platform, job = _build_job(plugins, settings)
    if dry_run:
        spec = _render(plugins, platform, job, settings)
        if output == "json":
            _print_json({"platform": platform, "job": job.to_dict(), "spec": spec})
        else:
            _print_spec(spec)
        return
    _submit_and_report(plugins, platform, job, settings, output, {})


def _submit_and_report(
    plugins: Plugins, platform: str, job: JobSpec, settings: Settings, output: str, fields: dict[str, Any]
) -> None:
    from robotrain import lifecycle, recovery

    policy = recovery.policy(settings, lifecycle.workload_options(plugins, job.workload))
    if policy.watching and not lifecycle.implements(plugins, "robotrain_status", platform):
        raise UserError(
            f"--retries: platform {platform!r} does not report job states, so train cannot watch its "
            f"jobs; leave out --retries"
        )
    with contextlib.redirect_stdout(sys.stderr) if output == "json" else contextlib.nullcontext():
        submission = _attempts(plugins, platform, job, settings, policy, fields)  # its prints: not the JSON
    if output == "json":
        _print_json(vars(submission))
    else:
        print(
            f"{submission.platform} job {submission.job_id}"
            + (f"  {submission.url}" if submission.url else "")
        )
        if submission.details.get("checkpoints"):
            print(f"checkpoints are kept in {submission.details['checkpoints']}")


def _attempts(
    plugins: Plugins, platform: str, job: JobSpec, settings: Settings, policy: Policy, fields: dict[str, Any]
) -> Submission:
    """Submit the job; with --retries, watch it and submit it again as the recovery policy says."""
    from robotrain import lifecycle, recovery
    from robotrain.history import describe
    from robotrain.job import COMPLETED

    attempt, first = 1, None
    while True:
        built_from = lifecycle.settings_record(plugins, settings, platform, job.workload)
        recorded = describe(job, built_from, settings.extra_args) | fields
        submission, failure = _submit_once(
            plugins, platform, job, settings, recorded | {"attempt": attempt, "first_attempt": first}
        )
        if not policy.watching:
            if failure is not None:
                raise failure
            return submission
        try:
            status = lifecycle.wait_for_end(plugins, platform, submission.job_id, settings, _say)
        except KeyboardInterrupt:
            raise Exit(
                f"robotrain: stopped watching {platform} job {submission.job_id} (Ctrl-C); it keeps "
                f"running, and is not submitted again if it stops",
                code=INTERRUPTED,
            ) from None
        if status.state == COMPLETED:
            return submission
        step = policy.next_step(status) if attempt <= policy.retries else None
        checkpoint = None
        if step == "resume":
            checkpoint = plugins.hook.robotrain_latest_checkpoint(
                platform=platform, job_id=submission.job_id, settings=settings
            )
        changes = recovery.overrides(step or "", checkpoint, settings)
        if step is None or (step == "halve-envs" and not changes):
            raise failure or UserError(
                f"{platform} job {submission.job_id} {status.state}"
                + (f" after {attempt} attempts" if attempt > 1 else "")
                + f"; see `invoke logs {submission.job_id}`"
            )
        _say(
            f"robotrain: {platform} job {submission.job_id} {status.state}; attempt {attempt + 1} of "
            f"{policy.retries + 1}, {recovery.describe(step, checkpoint, changes)}"
        )
        settings = settings.with_values(changes)
        _, job = _build_job(plugins, settings)
        first, attempt = first or submission.job_id, attempt + 1


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _submit_once(
    plugins: Plugins, platform: str, job: JobSpec, settings: Settings, recorded: dict[str, Any]
) -> tuple[Submission, UserError | None]:
    """Submit the job, its record holding ``recorded``. A job that was recorded and then failed (a
    foreground run, a stream) comes back with its error, for the recovery policy to judge."""
    from robotrain.history import record_submission, recording

    with recording(**recorded) as current:
        try:
            submission = plugins.hook.robotrain_submit(platform=platform, job=job, settings=settings)
        except UserError as error:
            if not current.recorded:
                raise
            return current.recorded[-1], error
        if submission is None:
            raise _no_result("submit", platform)
        record_submission(settings.state_dir, submission)
    state = submission.details.get("state")
    if isinstance(state, str) and state:
        from robotrain.history import record_state

        record_state(settings.state_dir, platform, submission.job_id, state)
    return submission, None


@user_errors
def rerun(
    c: Context, job_id: str, dry_run: bool = False, use_current_code: bool = False, output: str = "text",
    **values: Any,
) -> None:  # fmt: skip
    """Submit a recorded job again: its settings, its code; options given here override."""
    from robotrain import history, lifecycle

    plugins, settings = _command(c, dict(values), output, warn_unknown=False)
    record = history.find(settings.state_dir, job_id)
    if record is None:
        raise UserError(f"no job {job_id!r} is recorded in this project; `invoke jobs` lists them")
    if not record.settings:
        raise UserError(
            f"job {job_id} was recorded without its settings (by an older robotrain); submit it with train"
        )
    recorded_values = _recorded_values(plugins, record, values)
    settings = _settings(plugins, recorded_values, c, extra_args=_rerun_args(c, record))
    platform, job = _build_job(plugins, settings)
    _check_same_code(record, job, use_current_code)
    if dry_run:
        recorded = lifecycle.settings_record(plugins, settings, platform, job.workload)
        changes = lifecycle.differences({"settings": record.settings, "job": record.job},
                                        {"settings": recorded, "job": job.to_dict()})  # fmt: skip
        spec = _render(plugins, platform, job, settings)
        if output == "json":
            shown = {key: {"original": old, "rerun": new} for key, (old, new) in changes.items()}
            _print_json({"platform": platform, "rerun_of": job_id, "changes": shown, "job": job.to_dict(),
                         "spec": spec})  # fmt: skip
            return
        _print_changes(job_id, changes)
        _print_spec(spec)
        return
    _submit_and_report(plugins, platform, job, settings, output, {"rerun_of": job_id})


def _recorded_values(plugins: Plugins, record: JobRecord, given: dict[str, Any]) -> dict[str, Any]:
    """The recorded option values, with those given on this command line in their place."""
    values = dict(given)
    for name, value in record.settings.items():
        if name not in plugins.options:
            raise UserError(
                f"job {record.job_id} was built with option --{name.replace('_', '-')}, which no installed "
                f"plugin defines; install the plugin that does"
            )
        if values.get(name) in (None, [], False):
            values[name] = value
    return values


def _rerun_args(c: Context, record: JobRecord) -> tuple[str, ...]:
    remainder = getattr(c, "remainder", "")
    return tuple(shlex.split(remainder)) if remainder else record.extra_args


def _check_same_code(record: JobRecord, job: JobSpec, use_current_code: bool) -> None:
    current = None if job.payload is None else job.payload.sha256
    if use_current_code or record.payload_sha256 in (None, current):
        return
    now = current[:12] if current else "none"
    raise UserError(
        f"the training code changed since job {record.job_id} (payload {record.payload_sha256[:12]}, now "
        f"{now}); restore it, or pass --use-current-code to run it with the code as it is now"
    )


def _print_changes(job_id: str, changes: dict[str, tuple[Any, Any]]) -> None:
    if not changes:
        print(f"# rerun of {job_id}: the same settings and job description as the original")
        return
    print(f"# rerun of {job_id}: differences from the original")
    for key, (old, new) in changes.items():
        print(f"#   {key}: {old!r} -> {new!r}")


@user_errors
def stage_dataset(c: Context, source: str, name: str = "", output: str = "text", **values: Any) -> None:
    """Stage a local folder as a named, versioned dataset on the platform."""
    plugins, settings = _command(c, values, output)
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
    plugins, settings = _command(c, values, output)
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
    plugins, settings = _command(c, values, output)
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
    plugins, settings = _command(c, values)
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
    plugins, settings = _command(c, values)
    platform = _job_platform(plugins, settings, job_id)
    result = plugins.hook.robotrain_cancel(platform=platform, job_id=job_id, settings=settings)
    if result is None:
        raise _no_result("cancel", platform)
    print(f"{result.platform} job {result.job_id}: {result.state}")


@user_errors
def jobs(
    c: Context, state: str = "", limit: int = 20, refresh: bool = True, output: str = "text", **values: Any
) -> None:
    """List the jobs submitted from this project, newest first, with their current states."""
    from robotrain import history, lifecycle

    if limit < 1:
        raise UserError(f"--limit {limit}: give a number of jobs, 1 or more")
    plugins, settings = _command(c, values, output)
    records = history.load(settings.state_dir)
    if settings.given_on_command_line("platform"):
        records = [r for r in records if r.platform == settings["platform"]]
    if not state:
        records = records[:limit]  # only the jobs shown are asked about
    if refresh:
        rows = lifecycle.refresh(plugins, records, settings, lifecycle.REFRESH_SECONDS)
    else:
        rows = [lifecycle.Refreshed(r, r.state, stale=not r.finished, reason="--no-refresh") for r in records]
    if state:
        rows = [row for row in rows if row.state == state.lower()]
    rows = rows[:limit]
    if output == "json":
        _print_json([row.to_dict() for row in rows])
        return
    _print_jobs(rows)


def _print_jobs(rows: list[Refreshed]) -> None:
    import time

    if not rows:
        print("no jobs recorded in this project yet; `invoke train` submits one")
        return
    table = [("JOB", "PLATFORM", "WORKLOAD", "NAME", "ATTEMPT", "STATE", "SUBMITTED", "URL")]
    for row in rows:
        record = row.record
        state = (row.state or "unknown") + (" (stale)" if row.stale else "")
        submitted = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.time))
        table.append((record.job_id, record.platform, record.workload or "", record.name or "",
                      str(record.attempt), state, submitted, record.url or ""))  # fmt: skip
    widths = [max(len(line[col]) for line in table) for col in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    reasons = sorted({f"{row.record.platform}: {row.reason}" for row in rows if row.stale and row.reason})
    for reason in reasons:
        print(f"stale = last known state ({reason})")


@user_errors
def download(c: Context, job_id: str, to: str = "", output: str = "text", **values: Any) -> None:
    """Fetch a job's outputs (checkpoints, logs); run it again to finish a stopped download."""
    plugins, settings = _command(c, values, output)
    platform = _job_platform(plugins, settings, job_id)
    destination = Path(to).expanduser() if to else settings.project_root / "downloads" / job_id
    _require_folder(destination, "--to", "give a folder to download into")
    written = plugins.hook.robotrain_download(
        platform=platform, job_id=job_id, destination=destination.resolve(), settings=settings
    )
    if written is None:
        raise UserError(f"download is not supported by platform {platform!r} (its plugin has no such hook)")
    if output == "json":
        _print_json({"platform": platform, "job_id": job_id, "destination": str(destination),
                     "paths": [str(path) for path in written]})  # fmt: skip
        return
    print(f"{platform} job {job_id}: outputs in {destination}")
    for path in written:
        print(f"  {path}")


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
    _, settings = _command(c, values, output, warn_unknown=False)
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
        (jobs, "jobs", (), {"state": "only jobs in this state (e.g. running)", "limit": "at most this many",
                            "refresh": "ask the platforms for current states (default)", **output_help}),
        (rerun, "rerun", ("job_id",),
         {**job_help, "dry_run": "print the differences from the original and the spec; submit nothing",
          "use_current_code": "run the training code as it is now, not as it was", **output_help}),
        (download, "download", ("job_id",),
         {**job_help, "to": "folder to download into (default: downloads/JOB_ID)", **output_help}),
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

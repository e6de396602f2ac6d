"""After ``train``: watching a job to its end, refreshing recorded states, comparing a rerun."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from robotrain.errors import UserError
from robotrain.history import JobRecord, record_state
from robotrain.job import JobStatus
from robotrain.options import TRAIN
from robotrain.settings import DEFAULT

if TYPE_CHECKING:
    from robotrain.plugins import Plugins
    from robotrain.settings import Settings

REFRESH_SECONDS = 10.0
"""How long ``invoke jobs`` waits for the platforms' answers before showing last known states."""


def active_plugins(plugins: Plugins, platform: str, workload: str) -> set[str]:
    from robotrain.plugins import CORE

    return {CORE, plugins.platforms.owners[platform], plugins.workloads.owners[workload]}


def settings_record(plugins: Plugins, settings: Settings, platform: str, workload: str) -> dict[str, Any]:
    """The values of the options this job was built with, for ``rerun``. Defaults and sensitive
    values are left out: a rerun takes them again from where they came from."""
    active = active_plugins(plugins, platform, workload)
    recorded = {}
    for option in plugins.options.for_command(TRAIN):
        if plugins.options.owner(option.name) not in active:
            continue
        resolved = settings.resolve(option.name)
        if not resolved.sensitive and resolved.value is not None and resolved.source != DEFAULT:
            recorded[option.name] = resolved.value
    return recorded


def implements(plugins: Plugins, hook: str, platform: str) -> bool:
    """Whether the plugin that provides ``platform`` implements ``hook``."""
    owner = plugins.platforms.owners[platform]
    return any(impl.plugin_name == owner for impl in getattr(plugins.hook, hook).get_hookimpls())


def workload_options(plugins: Plugins, workload: str) -> set[str]:
    owner = plugins.workloads.owners[workload]
    return {option.name for option in plugins.options if plugins.options.owner(option.name) == owner}


WATCH_FAILURES = 10
"""Failed state checks in a row (a network blip, an expired sign-in) before train stops watching."""


def wait_for_end(
    plugins: Plugins, platform: str, job_id: str, settings: Settings, say: Callable[[str], None]
) -> JobStatus:
    """Poll the job's state until it is finished, saying each new state once.

    A check that fails is said and tried again at the next poll; only ``WATCH_FAILURES`` failures
    in a row stop the watching (the job itself goes on).
    """
    interval = float(settings.get("poll_interval", 10.0))
    last, failures = None, 0
    while True:
        try:
            status = _status(plugins, platform, job_id, settings)
            failures = 0
        except (UserError, OSError) as error:
            failures += 1
            if failures >= WATCH_FAILURES:
                raise UserError(
                    f"stopped watching {platform} job {job_id} after {failures} failed state checks "
                    f"({_first_line(error)}); it may still run: `invoke status {job_id}`"
                ) from None
            say(f"robotrain: could not read the state of {platform} job {job_id} ({_first_line(error)}); "
                f"trying again")  # fmt: skip
            time.sleep(interval)
            continue
        if status.state != last:
            say(f"robotrain: {platform} job {job_id}: {status.state}")
            last = status.state
        if status.finished:
            record_state(settings.state_dir, platform, job_id, status.state)
            return status
        time.sleep(interval)


def _status(plugins: Plugins, platform: str, job_id: str, settings: Settings) -> JobStatus:
    status: JobStatus | None = plugins.hook.robotrain_status(
        platform=platform, job_id=job_id, settings=settings
    )
    if status is None:
        raise UserError(f"status is not supported by platform {platform!r}; train cannot watch {job_id}")
    return status


@dataclass
class Refreshed:
    """A recorded job with the state the platform gave now, or its last known one marked stale."""

    record: JobRecord
    state: str | None
    stale: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.record.to_dict() | {"state": self.state, "stale": self.stale, "stale_reason": self.reason}


def refresh(plugins: Plugins, records: list[JobRecord], settings: Settings, wait: float) -> list[Refreshed]:
    """Ask each platform, in parallel, for the states of its unfinished jobs; wait at most ``wait`` s."""
    answers: dict[tuple[str, str], str] = {}
    problems: dict[str, str] = {}
    lock = threading.Lock()
    pending: dict[str, list[str]] = {}
    for record in records:
        if not record.finished:
            pending.setdefault(record.platform, []).append(record.job_id)

    def ask(platform: str, job_ids: list[str]) -> None:
        try:
            for status in _states(plugins, platform, job_ids, settings):
                with lock:
                    answers[(platform, status.job_id)] = status.state
        except Exception as error:  # any failure of one platform leaves its jobs stale, never the listing
            with lock:
                problems[platform] = _first_line(error)

    threads = [threading.Thread(target=ask, args=item, daemon=True) for item in pending.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + wait
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        found, failed = dict(answers), dict(problems)
    return [_refreshed(record, found, failed, wait, settings) for record in records]


def _states(plugins: Plugins, platform: str, job_ids: list[str], settings: Settings) -> Iterable[JobStatus]:
    listed = plugins.hook.robotrain_list_jobs(platform=platform, job_ids=job_ids, settings=settings)
    if listed is not None:
        yield from listed
        return
    if platform not in plugins.platforms.items:
        raise UserError(f"platform {platform!r} is not installed")
    for job_id in job_ids:
        status: JobStatus | None = plugins.hook.robotrain_status(
            platform=platform, job_id=job_id, settings=settings
        )
        if status is None:
            raise UserError(f"listing jobs is not supported by platform {platform!r}")
        yield status


def _refreshed(
    record: JobRecord, found: Mapping[tuple[str, str], str], failed: Mapping[str, str], wait: float,
    settings: Settings,
) -> Refreshed:  # fmt: skip
    if record.finished:
        return Refreshed(record, record.state, stale=False)
    state = found.get((record.platform, record.job_id))
    if state is not None:
        if state != record.state:
            record_state(settings.state_dir, record.platform, record.job_id, state)
        return Refreshed(record, state, stale=False)
    reason = failed.get(record.platform) or f"no answer within {wait:g} s"
    return Refreshed(record, record.state, stale=True, reason=reason)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists stay whole."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def differences(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Every key whose value differs: ``{key: (before, after)}`` (``None`` where a side lacks it)."""
    old, new = flatten(before), flatten(after)
    keys = sorted(old.keys() | new.keys())
    return {key: (old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)}

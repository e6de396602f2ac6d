"""Hook specifications: the public API for robotrain plugins.

A plugin is a module (or object) registered under the entry-point group
``robotrain`` whose functions carry the ``@hookimpl`` marker and one of the
names below. Operation hooks take the ``platform`` name and return ``None``
when it is not theirs, so the first plugin that owns the platform answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from robotrain.job import DatasetRef, JobSpec, JobStatus, ModelRef, Submission
    from robotrain.options import OptionRegistry
    from robotrain.registry import Platform, Workload
    from robotrain.settings import Settings

hookspec = pluggy.HookspecMarker("robotrain")
hookimpl = pluggy.HookimplMarker("robotrain")


@hookspec
def robotrain_add_options(options: OptionRegistry) -> None:
    """Add command-line options (each also a setting) with ``options.add(Option(...))``.

    Options of an installed plugin appear in ``invoke train --help``. Keep this
    hook free of heavy imports: it runs for ``invoke --list`` and ``--help``.
    """


@hookspec
def robotrain_register_workloads(register: Callable[[Workload], None]) -> None:
    """Declare the workloads (what runs) this plugin builds jobs for."""


@hookspec
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    """Declare the platforms (where jobs run) this plugin submits to."""


@hookspec(firstresult=True)
def robotrain_build_job(workload: str, settings: Settings) -> JobSpec | None:
    """Build the platform-neutral job for ``workload`` from the resolved settings.

    Validate every option here and raise ``UserError`` for bad values: nothing
    has been sent anywhere yet. Return ``None`` for workloads of other plugins.
    """


@hookspec(firstresult=True)
def robotrain_render_job(platform: str, job: JobSpec, settings: Settings) -> str | None:
    """Return the exact platform-native spec ``submit`` would send, contacting nothing.

    This is what ``invoke train --dry-run`` prints.
    """


@hookspec(firstresult=True)
def robotrain_submit(platform: str, job: JobSpec, settings: Settings) -> Submission | None:
    """Submit ``job`` and return once the platform has accepted it (or, for
    foreground platforms, once it has finished)."""


@hookspec(firstresult=True)
def robotrain_stage_dataset(platform: str, source: Path, name: str, settings: Settings) -> DatasetRef | None:
    """Make a local folder a named, versioned dataset on the platform.

    Unchanged content must not be uploaded again: return the existing version
    with ``uploaded=False``.
    """


@hookspec(firstresult=True)
def robotrain_register_model(platform: str, source: str, name: str, settings: Settings) -> ModelRef | None:
    """Register a checkpoint (local folder, job output or ``runs:/`` URI) as a model version.

    The same content registered twice must not create a second version.
    """


@hookspec(firstresult=True)
def robotrain_status(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    """Report the state of a submitted job."""


@hookspec(firstresult=True)
def robotrain_logs(
    platform: str, job_id: str, follow: bool, write: Callable[[str], None], settings: Settings
) -> bool | None:
    """Pass a job's log text to ``write``; with ``follow``, until the job ends. Return True."""


@hookspec(firstresult=True)
def robotrain_cancel(platform: str, job_id: str, settings: Settings) -> JobStatus | None:
    """Cancel a submitted job and report its state afterwards."""


@hookspec(firstresult=True)
def robotrain_list_jobs(platform: str, job_ids: Sequence[str], settings: Settings) -> list[JobStatus] | None:
    """Report the states of several jobs at once (``invoke jobs``), e.g. with one listing request.

    Optional: without it, ``invoke jobs`` asks ``robotrain_status`` once per job. Leave out jobs the
    platform does not know; they keep their last known state.
    """


@hookspec(firstresult=True)
def robotrain_download(
    platform: str, job_id: str, destination: Path, settings: Settings
) -> list[Path] | None:
    """Fetch a job's outputs into ``destination``: its checkpoint output under ``checkpoints/``
    and its log under ``logs/``; return the paths written.

    A download stopped part-way and started again must not fetch complete files twice:
    ``robotrain.transfer.fetch`` does that (and shows progress) for files the plugin can read
    by byte offset.
    """


@hookspec(firstresult=True)
def robotrain_latest_checkpoint(platform: str, job_id: str, settings: Settings) -> str | None:
    """The checkpoint URI a new attempt of this finished job resumes from: the newest checkpoint
    the job wrote to its checkpoint output, in a form ``--checkpoint-uri`` takes on this platform.

    Return ``""`` when the job wrote none (the next attempt starts over), ``None`` for other platforms.
    """

"""The built-in ``local`` platform: run the job in a subprocess on this machine."""

from __future__ import annotations

import json
from collections.abc import Callable

from robotrain.hookspecs import hookimpl
from robotrain.job import JobSpec
from robotrain.registry import Platform
from robotrain.settings import Settings

NAME = "local"


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(Platform(NAME, "this machine: a subprocess, tracked in MLflow on a local SQLite store"))


@hookimpl
def robotrain_render_job(platform: str, job: JobSpec, settings: Settings) -> str | None:
    if platform != NAME:
        return None
    return json.dumps(job.to_dict(), indent=2) + "\n"

"""The ``osmo`` platform."""

from __future__ import annotations

from collections.abc import Callable

from robotrain import Platform, hookimpl


@hookimpl
def robotrain_register_platforms(register: Callable[[Platform], None]) -> None:
    register(Platform("osmo", "NVIDIA OSMO workflows"))

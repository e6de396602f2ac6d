"""The ``lerobot`` workload."""

from __future__ import annotations

from collections.abc import Callable

from robotrain import Workload, hookimpl


@hookimpl
def robotrain_register_workloads(register: Callable[[Workload], None]) -> None:
    register(Workload("lerobot", "LeRobot behavioral cloning (lerobot-train)"))

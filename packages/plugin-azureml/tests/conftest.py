"""Fixtures: a fake Azure (local HTTPS) and a project whose CLI runs may reach only loopback."""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_azure import Cli, FakeAzure, start

from robotrain.plugins import load_plugins
from robotrain.settings import Settings
from robotrain.testing import make_project


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection from the test process beyond 127.0.0.1 fails at once."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"network blocked in tests: {address[0]}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="session")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeAzure, Path]]:
    fake, ca, server = start(tmp_path_factory.mktemp("fake-azure"))
    yield fake, ca
    server.shutdown()


@pytest.fixture
def cli(azure: tuple[FakeAzure, Path], tmp_path: Path) -> Iterator[Cli]:
    fake, ca = azure
    fake.reset()
    yield Cli(fake, ca, make_project(tmp_path))


@pytest.fixture
def in_process(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """This process talks to the fake too (for jobs built in the test through core's API)."""
    for name, value in cli.env().items():
        if name != "PYTHONPATH":
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "RobotrainFake")  # restored after; the SDK sets it
    return cli


def settings_for(project: Path, **values: Any) -> Settings:
    """Settings resolved as the CLI would, from ``project`` and the process environment."""
    return load_plugins().settings(values, start=project)


def substitute(command: str, values: dict[str, str]) -> str:
    """What Azure ML does to a command before running it: each ``${{inputs.x}}``/``${{outputs.x}}``
    replaced by the input's value or mount path (in the command only, never in the environment)."""
    return re.sub(r"\$\{\{\s*((?:inputs|outputs)\.\w+)\s*\}\}", lambda m: values[m[1]], command)

"""Fixtures: a fake Azure (local HTTPS) and a project whose CLI runs may reach only loopback."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fake_azure import Cli, FakeAzure, start

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

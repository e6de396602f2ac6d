"""Loaded by CLI subprocesses in tests: loopback only, and ``*.fake.test`` resolves to 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.endswith(".fake.test"):
        return _real_getaddrinfo("127.0.0.1", *args, **kwargs)
    if name is not None and name not in _LOOPBACK:
        raise OSError(f"network blocked in tests: {name}")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
        raise OSError(f"network blocked in tests: {address[0]}")
    return _real_connect(self, address)


socket.getaddrinfo = _guarded_getaddrinfo
socket.socket.connect = _guarded_connect  # type: ignore[method-assign]

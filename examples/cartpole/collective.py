"""A tiny process group for data-parallel training without torch: rank 0 averages, the others follow.

Reads the variables every robotrain platform (and ``torch.distributed.run``) gives each process:
``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``. With ``WORLD_SIZE`` unset or 1 every
operation is the identity, so the same training code runs alone or distributed.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

import numpy as np

CONNECT_SECONDS = 60.0
AUTHKEY = b"robotrain-cartpole"


class ProcessGroup:
    """Rank 0 listens on MASTER_ADDR:MASTER_PORT; every other rank connects to it."""

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self._peers: list[Connection] = []
        self._leader: Connection | None = None
        if self.world_size > 1:
            address = (os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ["MASTER_PORT"]))
            if self.rank == 0:
                self._accept(address)
            else:
                self._leader = _connect(address)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    def _accept(self, address: tuple[str, int]) -> None:
        with Listener(address, authkey=AUTHKEY) as listener:
            peers = {}
            while len(peers) < self.world_size - 1:
                connection = listener.accept()
                peers[int(connection.recv())] = connection
        self._peers = [peers[rank] for rank in sorted(peers)]

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self._leader is not None:
            return self._leader.recv()
        for peer in self._peers:
            peer.send(value)
        return value

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on rank 0 (an empty list elsewhere)."""
        if self._leader is not None:
            self._leader.send(value)
            return []
        return [value, *(peer.recv() for peer in self._peers)]

    def mean(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The element-wise mean of each array over all ranks, on every rank."""
        gathered = self.gather(arrays)
        averaged = (
            {name: np.mean([g[name] for g in gathered], axis=0) for name in arrays} if gathered else arrays
        )
        return self.broadcast(averaged) if self.world_size > 1 else averaged

    def close(self) -> None:
        for connection in [*self._peers, *([self._leader] if self._leader else [])]:
            connection.close()


def _connect(address: tuple[str, int]) -> Connection:
    """Connect to rank 0, which may not be listening yet."""
    deadline = time.monotonic() + CONNECT_SECONDS
    while True:
        try:
            connection = Client(address, authkey=AUTHKEY)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        connection.send(os.environ.get("RANK", "0"))
        return connection

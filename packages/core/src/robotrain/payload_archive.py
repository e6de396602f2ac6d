"""A reproducible .tar.gz written as a stream, compressed on every core, pigz-style.

The tar stream is cut into 256 KiB blocks at fixed offsets. Each block is deflated
on its own (in a thread: zlib releases the GIL) with the 32 KiB before it as the
preset dictionary and ends on a sync flush, so the concatenation is one ordinary
deflate stream in one gzip member: ``tar -xzf``, ``gzip -d`` and Python's
tarfile read it as any other. A block whose samples do not compress is stored
rather than deflated. Every choice depends only on the bytes, so the same files
always give the same archive. Memory stays at a few blocks in flight.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tarfile
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from robotrain.payload_cache import stat_key

BLOCK = 256 * 1024
WINDOW = 32 * 1024
CHUNK = 256 * 1024
"""Files are read this many bytes at a time."""
MAX_LEVEL_BYTES = 4 * BLOCK
"""The first 4 MiB of the stream (all of any archive small enough to travel inline in a spec) get level 9."""
MAX_LEVEL, LEVEL = 9, 6
SAMPLES, SAMPLE = 4, 4096
INCOMPRESSIBLE = 0.95
"""A block is stored when level 1 cannot shrink its samples below 95 %."""
IN_FLIGHT = 4
FIXED_MTIME = 315532800  # 1980-01-01, the earliest time zip-based tools accept
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, mtime 0, OS unknown


@dataclass(frozen=True)
class Member:
    """One file of the archive: its name inside, where to read it, its size and exec bit."""

    name: str
    path: Path
    size: int
    executable: bool
    signature: list[int]
    """The stat the file was checked with (``payload_cache.stat_key``): any other means it changed since."""


class ChangedWhilePacking(Exception):
    """A file changed between checking and packing it."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def write_archive(members: list[Member], out: BinaryIO, progress: Callable[[int], None]) -> tuple[str, int]:
    """Write the members as a tar.gz to ``out``; return its sha256 and size."""
    with _GzipStream(out) as stream:
        for member in members:
            stream.write(_header(member))
            _copy(member, stream, progress)
            if member.size % tarfile.BLOCKSIZE:
                stream.write(tarfile.NUL * (tarfile.BLOCKSIZE - member.size % tarfile.BLOCKSIZE))
        stream.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        if stream.size % tarfile.RECORDSIZE:
            stream.write(tarfile.NUL * (tarfile.RECORDSIZE - stream.size % tarfile.RECORDSIZE))
    return stream.sha256.hexdigest(), stream.written


def _header(member: Member) -> bytes:
    info = tarfile.TarInfo(member.name)
    info.size = member.size
    info.mtime = FIXED_MTIME
    info.mode = 0o755 if member.executable else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _copy(member: Member, stream: _GzipStream, progress: Callable[[int], None]) -> None:
    left = member.size
    with member.path.open("rb") as source:
        while left > 0:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise ChangedWhilePacking(member.path)
            stream.write(chunk)
            progress(len(chunk))
            left -= len(chunk)
        if source.read(1) or stat_key(os.fstat(source.fileno())) != member.signature:
            raise ChangedWhilePacking(member.path)


class _GzipStream:
    """A gzip member whose deflate blocks are compressed in parallel; ``write`` takes the raw stream."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pending = bytearray()
        self._previous = b""
        self._jobs: deque[Future[bytes]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(os.cpu_count() or 1, 4)))
        self.crc = 0
        self.size = 0
        self.written = 0
        self.sha256 = hashlib.sha256()
        self._emit(GZIP_HEADER)

    def __enter__(self) -> _GzipStream:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            if kind is None:
                self._finish()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def write(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)
        self._pending += data
        while len(self._pending) >= BLOCK:
            self._submit(bytes(self._pending[:BLOCK]), last=False)
            del self._pending[:BLOCK]

    def _submit(self, block: bytes, last: bool) -> None:
        offset = self.size - len(self._pending)
        level = MAX_LEVEL if offset < MAX_LEVEL_BYTES else LEVEL
        self._jobs.append(self._pool.submit(_deflate, block, self._previous, level, last))
        self._previous = block[-WINDOW:]
        while len(self._jobs) > IN_FLIGHT:
            self._emit(self._jobs.popleft().result())

    def _finish(self) -> None:
        self._submit(bytes(self._pending), last=True)
        self._pending.clear()
        while self._jobs:
            self._emit(self._jobs.popleft().result())
        self._emit(struct.pack("<II", self.crc & 0xFFFFFFFF, self.size & 0xFFFFFFFF))

    def _emit(self, data: bytes) -> None:
        self._out.write(data)
        self.sha256.update(data)
        self.written += len(data)


def _deflate(block: bytes, dictionary: bytes, level: int, last: bool) -> bytes:
    """Raw deflate of one block, byte-aligned at its end (final when ``last``)."""
    if _incompressible(block):
        compressor = zlib.compressobj(0, zlib.DEFLATED, -zlib.MAX_WBITS)
    elif dictionary:
        compressor = zlib.compressobj(
            level, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(block) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def _incompressible(block: bytes) -> bool:
    if len(block) < SAMPLES * SAMPLE * 4:
        return False
    step = (len(block) - SAMPLE) // (SAMPLES - 1)
    sample = b"".join(block[i * step : i * step + SAMPLE] for i in range(SAMPLES))
    return len(zlib.compress(sample, 1)) >= INCOMPRESSIBLE * len(sample)

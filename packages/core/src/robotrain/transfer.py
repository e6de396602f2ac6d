"""Downloads that show progress and pick up where a stopped one ended.

A platform's ``robotrain_download`` lists the files of a job's outputs as
``RemoteFile``s (a relative path, a size and a way to read from a byte offset);
``fetch`` writes each to ``<destination>/<path>`` through ``<path>.part``: a
complete file is never fetched again, a partial one continues from its last
byte, and a file appears under its own name only once it is whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from robotrain.errors import UserError

CHUNK = 1 << 20
PART = ".part"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a job's outputs."""

    path: str
    """Where it goes, relative to the destination (``checkpoints/model.pt``)."""
    size: int
    open: Callable[[int], BinaryIO]
    """Opens the file for reading from a byte offset."""


def local_file(path: Path, relative: str) -> RemoteFile:
    """A file on this machine as a ``RemoteFile`` placed at ``relative``."""
    return RemoteFile(relative, path.stat().st_size, lambda offset: _open_at(path, offset))


def local_files(folder: Path, prefix: str) -> list[RemoteFile]:
    """The files under a local folder (none when it does not exist), placed under ``prefix``."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    return [local_file(p, f"{prefix}/{p.relative_to(folder).as_posix()}") for p in files]


def _open_at(path: Path, offset: int) -> BinaryIO:
    stream = path.open("rb")
    stream.seek(offset)
    return stream


def fetch(files: Sequence[RemoteFile], destination: Path, label: str) -> list[Path]:
    """Download ``files`` into ``destination`` with one progress bar; the top-level paths written."""
    from robotrain.payload import progress_bar

    targets = [(remote, _target(destination, remote.path)) for remote in files]
    with progress_bar(sum(remote.size for remote in files), label) as advance:
        advance(sum(_present(target, remote.size) for remote, target in targets))
        for remote, target in targets:
            if not _complete(target, remote.size):
                _fetch_one(remote, target, advance)
    return sorted({destination / PurePosixPath(remote.path).parts[0] for remote in files})


def _target(destination: Path, relative: str) -> Path:
    path = PurePosixPath(relative)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UserError(f"the platform listed an output file outside the download folder: {relative!r}")
    return destination.joinpath(*path.parts)


def _complete(target: Path, size: int) -> bool:
    return target.is_file() and target.stat().st_size == size


def _present(target: Path, size: int) -> int:
    """Bytes of this file already here: all of them when it is complete, else its ``.part``'s."""
    if _complete(target, size):
        return size
    part = target.with_name(target.name + PART)
    return min(part.stat().st_size, size) if part.is_file() else 0


def _fetch_one(remote: RemoteFile, target: Path, advance: Callable[[int], None]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + PART)
    offset = part.stat().st_size if part.is_file() else 0
    if offset > remote.size:
        part.unlink()
        offset = 0
    with remote.open(offset) as source, part.open("ab") as out:
        while chunk := source.read(CHUNK):
            out.write(chunk)
            advance(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if part.stat().st_size != remote.size:
        raise UserError(
            f"download of {remote.path} ended early ({part.stat().st_size} of {remote.size} bytes); "
            f"run the same command again to continue"
        )
    os.replace(part, target)

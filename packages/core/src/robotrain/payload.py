"""Deterministic packing of the training code into a content-addressed archive."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

from robotrain.errors import UserError
from robotrain.job import Payload

ALWAYS_EXCLUDED = (
    # caches and build output
    "__pycache__/", "*.py[cod]", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/",
    ".ipynb_checkpoints/", "*.egg-info/", ".DS_Store",
    # virtualenvs and tool folders
    ".venv/", "venv/", ".tox/", ".nox/", "node_modules/", ".robotrain/", "mlruns/",
    # version control
    ".git/", ".hg/", ".svn/",
    # secret-bearing files
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_ed25519*", "id_ecdsa*",
    ".netrc", ".pypirc", ".git-credentials", "credentials", "credentials.json", "*.credentials",
    ".aws/", ".azure/", ".docker/config.json", "*.tfstate", "*.tfstate.*",
)  # fmt: skip
IGNORE_FILES = (".amlignore", ".gitignore")
FIXED_MTIME = 315532800  # 1980-01-01, the earliest time zip-based tools accept


def _ignore_spec(folder: Path) -> object:
    import pathspec

    lines = list(ALWAYS_EXCLUDED)
    for name in IGNORE_FILES:
        rules = folder / name
        if rules.is_file():
            lines += rules.read_text(encoding="utf-8").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def iter_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every file packing keeps, in sorted order."""
    spec = _ignore_spec(folder)
    for directory, dirnames, filenames in os.walk(folder, followlinks=False):
        relative_dir = Path(directory).relative_to(folder)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not spec.match_file(f"{(relative_dir / d).as_posix()}/")  # type: ignore[attr-defined]
        )
        for name in sorted(filenames):
            relative = (relative_dir / name).as_posix()
            path = Path(directory, name)
            if path.is_file() and not spec.match_file(relative):  # type: ignore[attr-defined]
                yield relative, path


def pack(sources: dict[str, Path], out_dir: Path) -> Payload:
    """Pack each source folder under its prefix (``{"training": path}``) into ``out_dir/<sha256>.tar.gz``.

    The same files give byte-identical archives: sorted entries, fixed time,
    owner and modes, and a gzip header without a timestamp.
    """
    members = sorted(
        (f"{prefix}/{relative}", path)
        for prefix, folder in sources.items()
        for relative, path in iter_files(folder)
    )
    if not members:
        raise UserError(f"nothing to pack in {', '.join(str(p) for p in sources.values())}")
    data = _archive_bytes(members)
    digest = hashlib.sha256(data).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{digest}.tar.gz"
    if not archive.exists():
        partial = archive.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(archive)
    return Payload(archive, digest, len(data), tuple(name for name, _ in members))


def _archive_bytes(members: list[tuple[str, Path]]) -> bytes:
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, path in members:
            content = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = FIXED_MTIME
            info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def unpack(payload: Payload, destination: Path) -> Path:
    """Extract the archive into ``destination`` (refusing paths that escape it)."""
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(payload.archive, "r:gz") as tar:
        tar.extractall(destination, filter="data")
    return destination


def code_sources(training_dir: Path) -> dict[str, Path]:
    """The folders a workload packs: the training folder, plus ``common`` beside it when present."""
    if not training_dir.is_dir():
        raise UserError(
            f"training folder {training_dir} not found; create it or set --training-dir "
            f"(or training-dir in robotrain.toml)"
        )
    sources = {"training": training_dir}
    common = training_dir.parent / "common"
    if common.is_dir():
        sources["common"] = common
    return sources

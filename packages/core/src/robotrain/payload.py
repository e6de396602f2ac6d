"""Packing the training code into a content-addressed archive, with the checks staging shares.

``checked_files`` walks the folders (ignore rules, no symlink out of them), reads
each file whose stat changed since the last run in 256 KiB chunks to hash it, scans
it for secrets (robotrain.payload_secrets) unless its content is the one checked last
time, and refuses secrets in one line.
``pack`` then reuses the archive of an identical tree, or streams a new one to a
unique temporary file (robotrain.payload_archive) and renames it to its sha256.
"""

from __future__ import annotations

import gc
import hashlib
import os
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from robotrain.errors import UserError
from robotrain.job import Payload
from robotrain.payload_archive import CHUNK, FIXED_MTIME, ChangedWhilePacking, Member, write_archive
from robotrain.payload_cache import Known, StatCache, stat_key
from robotrain.payload_secrets import (
    NAME_KIND,
    SYMLINK_KIND,
    AllowedSecret,
    ContentScanner,
    Finding,
    content_scanner,
    has_secret_name,
    is_allowed,
    refusal,
    rules_version,
)

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
"""Always left out, silently; other credential-like names (payload_secrets.SECRET_FILE_NAMES) are refused."""
IGNORE_FILES = (".amlignore", ".gitignore")
TREE_FORMAT = 1
PROGRESS_DELAY = 2.0
"""Seconds before a progress bar appears: quick steps never show one."""
READERS = 2
T = TypeVar("T")
R = TypeVar("R")
__all__ = ["ALWAYS_EXCLUDED", "FIXED_MTIME", "Entry", "checked_files", "iter_files", "pack", "unpack"]


class Entry(NamedTuple):
    """A file that passed the checks: its name in the archive or staged folder, and its content hash."""

    name: str
    location: str
    stat: os.stat_result
    sha256: str

    @property
    def path(self) -> Path:
        return Path(self.location)

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def executable(self) -> bool:
        return bool(self.stat.st_mode & 0o111)


def _ignore_lines(folder: Path) -> list[str]:
    lines = list(ALWAYS_EXCLUDED)
    for name in IGNORE_FILES:
        rules = folder / name
        if rules.is_file():
            try:
                lines += rules.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise UserError(f"{rules} is not UTF-8 text; save it as UTF-8") from None
            except OSError as error:
                raise UserError(f"cannot read {rules}: {error.strerror}; fix its permissions") from None
    return lines


class IgnoreRules:
    """A folder's ignore rules (``.gitignore`` syntax, pathspec), answering for paths relative to it.

    ``known`` holds answers recorded by an earlier walk under the same rules (``key`` names them): they
    are a pure function of rules and path, so an unchanged tree is walked without compiling the rules.
    ``answers`` collects every answer given, for the next walk.
    """

    def __init__(self, folder: Path) -> None:
        self._lines = _ignore_lines(folder)
        self.key = hashlib.sha256("\n".join(self._lines).encode()).hexdigest()[:16]
        self.known: Mapping[str, bool] = {}
        self.answers: dict[str, bool] = {}
        self._spec: Any = None

    def ignores(self, path: str) -> bool:
        """Whether ``path`` (posix, relative; a folder ends with ``/``) is left out."""
        answer = self.known.get(path)
        if answer is None:
            if self._spec is None:
                import pathspec

                self._spec = pathspec.GitIgnoreSpec.from_lines(self._lines)
            answer = bool(self._spec.match_file(path))
        self.answers[path] = answer
        return answer


def _walk(
    folder: Path, rules: IgnoreRules | None = None
) -> tuple[list[tuple[str, str, os.stat_result]], list[Finding]]:
    """The files packing keeps (relative posix path, path, stat) and the symlinks that leave the folder."""
    rules = rules or IgnoreRules(folder)
    root = Path(os.path.realpath(folder))
    files: list[tuple[str, str, os.stat_result]] = []
    outside: list[Finding] = []
    folders = [("", str(folder))]
    while folders:
        prefix, directory = folders.pop()
        for entry in _entries(directory):
            relative = prefix + entry.name
            if rules.ignores(relative + "/" if entry.is_dir() else relative):
                continue
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))
                if target != root and root not in target.parents:
                    outside.append(Finding(Path(entry.path), None, f"{SYMLINK_KIND}, to {target}"))
                    continue
            if entry.is_dir(follow_symlinks=False):
                folders.append((relative + "/", entry.path))
            elif entry.is_file():
                files.append((relative, entry.path, _stat(entry)))
    return sorted(files, key=lambda item: item[0]), outside


def _stat(entry: os.DirEntry[str]) -> os.stat_result:
    try:
        return entry.stat()
    except OSError as error:
        raise UserError(
            f"cannot read {entry.path}: {error.strerror}; fix its permissions or add it to .amlignore"
        ) from None


def _entries(directory: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return list(entries)
    except OSError as error:
        raise UserError(
            f"cannot read folder {directory}: {error.strerror}; fix its permissions or add it to .amlignore"
        ) from None


def iter_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, path) of every file packing keeps, sorted; refuses symlinks out of the folder."""
    files, outside = _walk(folder)
    if outside:
        raise refusal(outside, f"read {folder}")
    for relative, location, _ in files:
        yield relative, Path(location)


def checked_files(
    sources: Mapping[str, Path],
    action: str,
    allow: Sequence[AllowedSecret] = (),
    cache_dir: Path | None = None,
) -> list[Entry]:
    """Every kept file of each source folder, named ``prefix/relative`` (``relative`` for prefix ""), hashed.

    Refuses, in one line naming each, files named like credentials, secrets in
    any file's content and symlinks out of a folder, except what ``allow`` covers
    (never a symlink). ``action`` completes "refusing to ...". With a
    ``cache_dir``, files whose stat is unchanged are not read at all.
    """
    entries: list[Entry] = []
    findings: list[Finding] = []
    for prefix, folder in sources.items():
        with _no_collection():
            cache = StatCache(cache_dir, Path(os.path.realpath(folder)), rules_version())
            rules = IgnoreRules(folder)
            rules.known = cache.ignore_answers(rules.key)
            files, outside = _walk(folder, rules)
            recorded = {relative: cache.get(relative, stat) for relative, _, stat in files}
        findings += outside
        known = _known(files, recorded, cache)
        cache.record_ignore_answers(rules.key, rules.answers)
        cache.save()
        for relative, location, stat in files:
            result = known[relative]
            if result.secrets:
                findings += [Finding(Path(location), line or None, kind) for line, kind in result.secrets]
            entries.append(
                Entry(f"{prefix}/{relative}" if prefix else relative, location, stat, result.sha256)
            )
    refused = [f for f in findings if f.kind.startswith(SYMLINK_KIND) or not is_allowed(f.path, allow)]
    if refused:
        raise refusal(refused, action)
    return sorted(entries, key=lambda entry: entry.name)


@contextmanager
def _no_collection() -> Iterator[None]:
    """Walking thousands of files makes no reference cycles: a collection would only rescan every object."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _known(
    files: list[tuple[str, str, os.stat_result]], known: dict[str, Known | None], cache: StatCache
) -> dict[str, Known]:
    """Each file's hash and secrets: as recorded when its stat is unchanged or, after a stat change, its
    content is what was checked last time; else read and scanned now."""
    unread = [(relative, path, stat) for relative, path, stat in files if known[relative] is None]
    unread = _changed_content(unread, known, cache)
    if not unread:
        return {relative: found for relative, found in known.items() if found is not None}
    scanner = content_scanner()
    with (
        progress_bar(sum(stat.st_size for _, _, stat in unread), "checking") as advance,
        ThreadPoolExecutor(max_workers=READERS) as pool,
    ):
        results = _in_order(pool, lambda item: _check(item[0], Path(item[1]), scanner), unread)
        for (relative, _, stat), result in zip(unread, results, strict=True):
            cache.put(relative, stat, result)
            known[relative] = result
            advance(stat.st_size)
    return {relative: found for relative, found in known.items() if found is not None}


def _changed_content(
    files: list[tuple[str, str, os.stat_result]], known: dict[str, Known | None], cache: StatCache
) -> list[tuple[str, str, os.stat_result]]:
    """The files to scan: new ones, and those whose content hash differs from the one checked last time.

    A file touched or checked out again keeps its recorded verdict (the rules are the same: the cache
    records their version), so scanning, and importing detect-secrets, is left to changed content.
    """
    recorded = [(item, before) for item in files if (before := cache.recorded(item[0])) is not None]
    if not recorded:
        return files
    changed = [item for item in files if cache.recorded(item[0]) is None]
    with (
        progress_bar(sum(stat.st_size for (_, _, stat), _ in recorded), "hashing") as advance,
        ThreadPoolExecutor(max_workers=READERS) as pool,
    ):
        digests = _in_order(pool, lambda pair: _sha256(Path(pair[0][1])), recorded)
        for ((relative, path, stat), before), digest in zip(recorded, digests, strict=True):
            if digest == before.sha256:
                cache.put(relative, stat, before)
                known[relative] = before
            else:
                changed.append((relative, path, stat))
            advance(stat.st_size)
    return changed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise UserError(
            f"cannot read {path}: {error.strerror}; fix its permissions or add it to .amlignore"
        ) from None
    return digest.hexdigest()


def _in_order(pool: ThreadPoolExecutor, work: Callable[[T], R], items: list[T]) -> Iterator[R]:
    """``pool.map`` with only a few items in flight: thousands of pending futures cost megabytes."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(work, item))
        if len(pending) > 2 * READERS:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _check(relative: str, path: Path, scanner: ContentScanner) -> Known:
    """Hash and scan one file, reading it once in chunks, and check its name."""
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                yield chunk

    try:
        stream = chunks()
        secrets = scanner.scan_file(path, stream)
        for _ in stream:  # the scanner stops early on binary files: finish the hash
            pass
    except OSError as error:
        raise UserError(
            f"cannot read {path}: {error.strerror}; fix its permissions or add it to .amlignore"
        ) from None
    named = [(0, NAME_KIND)] if has_secret_name(relative) else []
    return Known(digest.hexdigest(), tuple(named + secrets))


def tree_sha256(entries: Iterable[Entry]) -> str:
    """A hash of the names, exec bits and content hashes: equal trees, equal values."""
    lines = "".join(f"{entry.name}\0{int(entry.executable)}\0{entry.sha256}\n" for entry in entries)
    return hashlib.sha256(f"robotrain tree {TREE_FORMAT}\n{lines}".encode()).hexdigest()


def pack(
    sources: dict[str, Path],
    out_dir: Path,
    allow: Sequence[AllowedSecret] = (),
    cache_dir: Path | None = None,
) -> Payload:
    """Pack each source folder under its prefix (``{"training": path}``) into ``out_dir/<sha256>.tar.gz``.

    The same files give byte-identical archives: sorted entries, fixed time,
    owner and modes, and a gzip header without a timestamp. Secrets are refused
    (see ``checked_files``); with a ``cache_dir`` an unchanged tree is not read.
    """
    entries = checked_files(sources, "pack", allow, cache_dir)
    if not entries:
        raise UserError(f"nothing to pack in {', '.join(str(p) for p in sources.values())}")
    names = tuple(entry.name for entry in entries)
    tree = tree_sha256(entries)
    archive = _recorded_archive(out_dir, tree)
    if archive is None:
        archive = _write(entries, out_dir)
        with suppress(OSError):  # only a shortcut for the next run
            _write_atomically(out_dir / "trees" / tree, archive.name.removesuffix(".tar.gz").encode())
    return Payload(archive, archive.name.removesuffix(".tar.gz"), archive.stat().st_size, names)


def _recorded_archive(out_dir: Path, tree: str) -> Path | None:
    try:
        digest = (out_dir / "trees" / tree).read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None
    archive = out_dir / f"{digest}.tar.gz"
    return archive if len(digest) == 64 and archive.is_file() else None


def _write(entries: list[Entry], out_dir: Path) -> Path:
    """Stream the archive to a unique temporary file, then rename it to its hash."""
    members = [Member(e.name, e.path, e.size, e.executable, stat_key(e.stat)) for e in entries]
    out_dir.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=".pack-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out, progress_bar(sum(e.size for e in entries), "packing") as advance:
            digest, _ = write_archive(members, out, advance)
        archive = out_dir / f"{digest}.tar.gz"
        os.replace(temporary, archive)
    except ChangedWhilePacking as changed:
        raise UserError(f"{changed.path} changed while it was being packed; run the command again") from None
    except OSError as error:
        raise UserError(f"cannot write the code archive in {out_dir}: {error.strerror}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)
    return archive


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


@contextmanager
def progress_bar(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """``advance(bytes)`` for a tqdm bar on a terminal's stderr, shown only once a step takes seconds."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from tqdm import tqdm  # type: ignore[import-untyped]  # stubs are a separate package

    with tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        delay=PROGRESS_DELAY,
        leave=False,
    ) as bar:
        yield bar.update


def unpack(payload: Payload, destination: Path) -> Path:
    """Extract the archive into ``destination`` (refusing paths that escape it)."""
    import tarfile

    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(payload.archive, "r:gz") as tar:
        tar.extractall(destination, filter="data")
    return destination


def code_sources(training_dir: Path) -> dict[str, Path]:
    """The folders a workload packs: the training folder, plus ``common`` beside it when present."""
    if training_dir.is_file():
        raise UserError(
            f"training folder {training_dir} is a file, expected a folder; set --training-dir "
            f"(or training-dir in robotrain.toml) to the folder with the training code"
        )
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

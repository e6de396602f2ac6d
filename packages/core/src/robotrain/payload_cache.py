"""A stat cache like git's index: a file whose stat is unchanged is not read again.

One JSON file per packed or staged folder under ``.robotrain/cache/`` maps each
file's relative path and stat (size, mtime_ns, ctime_ns, inode) to its content
hash and the secrets found in it (line and kind, never the value; line 0 for its
name). Any stat change means the file is read and hashed again, and scanned again unless its
content hash is the recorded one; a change of the rules (``rules`` names their version) means all
are scanned again. A file modified
within ``RACY_SECONDS`` of the cache being written is recorded without its stat, so it
is hashed again next time: a filesystem with coarse timestamps could otherwise hide an
edit made right after reading it.

It also keeps the answers of the folder's ignore rules for every path the last walk met, under the
rules' key: a tree walked again under the same rules needs no pattern matching (robotrain.payload).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

FORMAT = 1
RACY_SECONDS = 2
UNTRUSTED_STAT = [-1, -1, -1, -1]
"""Recorded instead of the stat of a file modified too recently to trust: it matches no real stat."""


class Known(NamedTuple):
    """What checking a file found: its content hash and its secrets as (line, kind), line 0 for the name."""

    sha256: str
    secrets: tuple[tuple[int, str], ...] = ()


def stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


class StatCache:
    """The cache of one folder under the given rules; ``StatCache(None, ...)`` remembers nothing."""

    def __init__(self, cache_dir: Path | None, root: Path, rules: str) -> None:
        name = hashlib.sha256(str(root).encode()).hexdigest()[:24]
        self.path = None if cache_dir is None else cache_dir / f"files-{name}.json"
        self.format = f"{FORMAT} {rules}"
        data = self._load()
        files, ignored = data.get("files"), data.get("ignored")
        self._old: dict[str, list[Any]] = files if isinstance(files, dict) else {}
        self._new: dict[str, list[Any]] = {}
        self._old_ignored: dict[str, Any] = ignored if isinstance(ignored, dict) else {}
        self._new_ignored: dict[str, Any] = {}

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("format") == self.format else {}

    def ignore_answers(self, rules: str) -> dict[str, bool]:
        """The ignore rules' answers recorded by the last walk, when its rules had this key."""
        paths = self._old_ignored.get("paths") if self._old_ignored.get("rules") == rules else None
        if not isinstance(paths, dict):
            return {}
        return {path: answer for path, answer in paths.items() if isinstance(answer, bool)}

    def record_ignore_answers(self, rules: str, answers: dict[str, bool]) -> None:
        self._new_ignored = {"rules": rules, "paths": answers}

    def get(self, relative: str, stat: os.stat_result) -> Known | None:
        """The recorded result for this file when its stat is exactly as recorded."""
        entry = self._old.get(relative)
        if not isinstance(entry, list) or len(entry) != 6 or entry[:4] != stat_key(stat):
            return None
        known = self.recorded(relative)
        if known is not None:
            self._new[relative] = entry
        return known

    def recorded(self, relative: str) -> Known | None:
        """What the last run found in this file, whatever its stat is now (for comparing content hashes)."""
        entry = self._old.get(relative)
        if not isinstance(entry, list) or len(entry) != 6:
            return None
        try:
            secrets = tuple((int(line), str(kind)) for line, kind in entry[5]) if entry[5] else ()
        except (TypeError, ValueError):
            return None
        return Known(str(entry[4]), secrets)

    def put(self, relative: str, stat: os.stat_result, known: Known) -> None:
        self._new[relative] = [*stat_key(stat), known.sha256, [list(s) for s in known.secrets]]

    def save(self) -> None:
        """Write the entries used in this run (so deleted files drop out); a failure only costs speed."""
        if self.path is None or (self._new == self._old and self._new_ignored == self._old_ignored):
            return
        settled = time.time_ns() - RACY_SECONDS * 1_000_000_000
        files = {
            name: entry if entry[1] < settled else [*UNTRUSTED_STAT, *entry[4:]]
            for name, entry in self._new.items()
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".files-", suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(
                    {"format": self.format, "files": files, "ignored": self._new_ignored},
                    out,
                    separators=(",", ":"),
                )
            os.replace(temporary, self.path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)

"""Secrets that must never leave the machine: by file name, by content, and through symlinks.

Content is judged by Yelp's detect-secrets (its plugins and filters, imported
only when something is scanned). Running every plugin on every line costs about
10 ms per source file, so a prefilter first finds the lines any plugin could
match, in one linear-time RE2 pass over a block of text: every plugin pattern,
loosened so that it matches at least what it matches on a line of its own
(lookarounds dropped, back-references widened, Unicode classes spelled out), and
for the high-entropy plugins the quoted strings long enough to pass their
entropy limit. Only the lines found go through detect-secrets' own line check.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from robotrain.errors import UserError

if TYPE_CHECKING:
    from robotrain.settings import ProjectConfig

SECRET_FILE_NAMES = (
    "secret.json", "secret.y*ml", "secret.toml", "secret.txt", "secrets.json", "secrets.y*ml",
    "secrets.toml", "secrets.ini", "secrets.cfg", "secrets.conf", "secrets.env", "secrets.txt",
    "*.secret", "*.secrets", "*[-_]secrets.json", "*[-_]secrets.y*ml",
    "service-account*.json", "service_account*.json", "*-service-account.json",
    "application_default_credentials.json", "legacy_credentials/", "access_tokens.db",
    "**/.kube/config", "kubeconfig", "*.kubeconfig", "kubeconfig.y*ml",
    "*.tfvars", "*.tfvars.json",
    ".npmrc", ".yarnrc.yml", ".envrc", ".htpasswd", ".pgpass", ".my.cnf", ".s3cfg", ".boto",
    ".dockercfg", ".ssh/", "id_dsa*", "*.ppk", "*.p8", "*.keystore", "*.jks", "*.kdbx", "*.ovpn",
    "token", ".token", "*.token", "token.txt", "*_token.txt", "*-token.txt", "tokens.json",
)  # fmt: skip
"""Files that hold credentials by convention: packing or staging one is refused (gitignore syntax)."""

BINARY_PROBE = 8000
"""Like git: a file with a NUL byte in its first 8000 bytes is binary and its content is not scanned."""
BLOCK_SIZE = 256 * 1024
"""Text is scanned in blocks of whole lines of at most this many bytes."""
WHOLE_FILE = 1024 * 1024
"""Files up to this size are also read as detect-secrets' YAML and INI transformers see them."""
SHOWN_FINDINGS = 30
ALLOW_KEY = "allow_secrets"
NAME_KIND = "secret file name"
SYMLINK_KIND = "symlink out of the folder"


@dataclass(frozen=True)
class Finding:
    """A possible secret: the file, its line (None for a name or a symlink) and what was found."""

    path: Path
    line: int | None
    kind: str

    def shown(self) -> str:
        where = _shown_path(self.path) + (f":{self.line}" if self.line else "")
        return f"{where} ({self.kind})"


@dataclass(frozen=True)
class AllowedSecret:
    """An ``allow-secrets`` entry: a file (or a folder and all below it) packed despite a finding."""

    path: Path
    reason: str

    def covers(self, path: Path) -> bool:
        return path == self.path or self.path in path.parents


def allowed_secrets(config: ProjectConfig) -> tuple[AllowedSecret, ...]:
    """The ``allow-secrets = [{path = "...", reason = "..."}]`` entries of the project config."""
    entries = config.values.get(ALLOW_KEY, [])
    where = f"{config.label}: allow-secrets"
    if not isinstance(entries, list):
        raise UserError(f'{where} must be a list such as [{{path = "src/training/x.json", reason = "..."}}]')
    allowed = []
    for entry in entries:
        path, reason = (entry.get("path"), entry.get("reason")) if isinstance(entry, dict) else (None, None)
        if not isinstance(path, str) or not path.strip():
            raise UserError(f'{where}: each entry needs path = "FILE OR FOLDER" (relative to {config.root})')
        if not isinstance(reason, str) or not reason.strip():
            raise UserError(
                f'{where}: the entry for {path!r} needs reason = "why this file may leave the machine"'
            )
        allowed.append(AllowedSecret(Path(os.path.abspath(config.root / path)), reason.strip()))
    return tuple(allowed)


def is_allowed(path: Path, allowed: Sequence[AllowedSecret]) -> bool:
    absolute = Path(os.path.abspath(path))
    return any(entry.covers(absolute) for entry in allowed)


def refusal(findings: Sequence[Finding], action: str) -> UserError:
    """One line naming each place (the first 30, then a count), what was found there and the ways out."""
    kinds: dict[tuple[str, int], list[str]] = {}
    for finding in findings:
        kinds.setdefault((str(finding.path), finding.line or 0), []).append(finding.kind)
    places = [
        Finding(Path(path), line, ", ".join(sorted(set(k)))) for (path, line), k in sorted(kinds.items())
    ]
    count = len(places)
    listed = ", ".join(place.shown() for place in places[:SHOWN_FINDINGS])
    if count > SHOWN_FINDINGS:
        listed += f" and {count - SHOWN_FINDINGS} more"
    fix = (
        "remove them, add them to .amlignore, or allow them in robotrain.toml with "
        'allow-secrets = [{path = "...", reason = "..."}]'
    )
    if any(f.kind.startswith(SYMLINK_KIND) for f in findings):
        fix += " (a symlink out of the folder cannot be allowed: copy what it points to into the folder)"
    noun = "possible secret" if count == 1 else "possible secrets"
    return UserError(f"refusing to {action}: {count} {noun} found: {listed}; {fix}")


def _shown_path(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


@cache
def _name_spec() -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(SECRET_FILE_NAMES)


@cache
def rules_version() -> str:
    """Changes whenever the name list, detect-secrets or pathspec (which matches names and ignore rules)
    changes, so cached verdicts are not reused."""
    from importlib.metadata import version

    names = hashlib.sha256("\n".join(SECRET_FILE_NAMES).encode()).hexdigest()[:12]
    return f"names {names} detect-secrets {version('detect-secrets')} pathspec {version('pathspec')}"


def has_secret_name(relative: str) -> bool:
    """Whether a path (posix, relative to the packed folder) is named like a credentials file."""
    return bool(_name_spec().match_file(relative))


def is_binary(head: bytes) -> bool:
    return b"\0" in head[:BINARY_PROBE]


class ContentScanner:
    """detect-secrets over a file's text, fed in chunks; ``content_scanner()`` builds the one instance."""

    def __init__(
        self, plugins: list[Any], prefilter: Any, quoted: list[_Quoted], line_rules: list[re.Pattern[str]]
    ) -> None:
        self._plugins = plugins
        self._prefilter = prefilter
        self._quoted = quoted
        self._line_rules = line_rules

    def scan_file(self, path: Path, chunks: Iterable[bytes]) -> list[tuple[int, str]]:
        """(line, secret type) of each secret in the file whose bytes ``chunks`` yields, sorted.

        A file up to ``WHOLE_FILE`` is judged as detect-secrets' ``scan_file`` judges it,
        YAML and INI-like content as its transformers rewrite it; a larger one streams.
        """
        stream = iter(chunks)
        head = b""
        for chunk in stream:
            if not head and is_binary(chunk):
                return []
            head += chunk
            if len(head) > WHOLE_FILE:
                return sorted(set(self._scan_stream(path, itertools.chain([head], stream))))
        return sorted(set(self._scan_whole(path, head)))

    def _scan_whole(self, path: Path, data: bytes) -> list[tuple[int, str]]:
        """Like detect-secrets: the transformed lines if a transformer reads the file, else the raw ones;
        when those hold nothing, the lines an eager transformer makes of an untyped file."""
        from detect_secrets.util.filetype import FileType, determine_file_type

        transformed = self._transformed(path, data, eager=False) if _may_transform(path, data) else None
        found = self._judge_all(path, transformed) if transformed else self._scan_stream(path, [data])
        if found or determine_file_type(str(path)) != FileType.OTHER:
            return found
        eager = self._transformed(path, data, eager=True)
        return self._judge_all(path, eager) if eager else []

    @staticmethod
    def _transformed(path: Path, data: bytes, eager: bool) -> list[str] | None:
        from detect_secrets.transformers import get_transformed_file

        try:
            text = io.StringIO(data.decode("utf-8"))
            text.name = str(path)  # type: ignore[misc]  # detect-secrets reads the name of its NamedIO
            return get_transformed_file(text, use_eager_transformers=eager)  # type: ignore[arg-type]
        except ValueError:  # not UTF-8, or not parseable after all
            return None

    def _judge_all(self, path: Path, lines: list[str]) -> list[tuple[int, str]]:
        from detect_secrets.core.scan import _process_line_based_plugins

        if self._skips(path):
            return []
        numbered = list(enumerate(lines, start=1))
        return [(s.line_number, str(s.type)) for s in _process_line_based_plugins(numbered, str(path))]

    def _scan_stream(self, path: Path, chunks: Iterable[bytes]) -> list[tuple[int, str]]:
        found: list[tuple[int, str]] = []
        first_line, pending = 1, b""
        for chunk in chunks:
            pending += chunk
            while len(pending) >= BLOCK_SIZE:
                cut = pending.rfind(b"\n", 0, BLOCK_SIZE) + 1 or BLOCK_SIZE  # a longer line is split
                block, pending = pending[:cut], pending[cut:]
                found += self._scan_block(path, block, first_line)
                first_line += block.count(b"\n")
        if pending:
            found += self._scan_block(path, pending, first_line)
        return found

    def _scan_block(self, path: Path, block: bytes, first_line: int) -> list[tuple[int, str]]:
        text = _valid_utf8(block)
        candidates = self._candidate_lines(text)
        if not candidates or self._skips(path):
            return []
        lines = text.decode("utf-8").split("\n")
        candidates |= {
            index for rule in self._line_rules for index, line in enumerate(lines) if rule.search(line)
        }
        return [
            (first_line + index, kind)
            for index in sorted(candidates)
            for kind in self._judge(path, lines, index)
        ]

    def _candidate_lines(self, text: bytes) -> set[int]:
        """Indexes of the lines where some plugin could find a secret (a superset of its findings)."""
        spans = [match.span() for match in self._prefilter.finditer(text)]
        for quoted in self._quoted:
            spans += quoted.spans(text)
        found: set[int] = set()
        for start, end in sorted(spans):
            line = text.count(b"\n", 0, start)
            found.update(range(line, line + text.count(b"\n", start, max(end - 1, start)) + 1))
        if self._line_rules:
            found.add(0)  # decode the block: the patterns RE2 cannot run are tried on every line
        return found

    def _judge(self, path: Path, lines: list[str], index: int) -> list[str]:
        """detect-secrets' own verdict on one line, with its filters (allowlist comments, heuristics)."""
        from detect_secrets.core.scan import _is_filtered_out, _scan_line
        from detect_secrets.util.code_snippet import get_code_snippet

        filename, line, number = str(path), lines[index].rstrip(), index + 1
        context = get_code_snippet(lines=lines, line_number=number)
        if _is_filtered_out(
            required_filter_parameters=["line"], filename=filename, line=line, context=context
        ):
            return []
        kinds = {
            str(secret.type)
            for plugin in self._plugins
            for secret in _scan_line(
                plugin=plugin, filename=filename, line=line, line_number=number, context=context
            )
            if not _is_filtered_out(
                required_filter_parameters=["context"],
                filename=filename,
                secret=secret.secret_value,
                plugin=plugin,
                line=line,
                context=context,
            )
        }
        return sorted(kinds)

    @staticmethod
    def _skips(path: Path) -> bool:
        """Files detect-secrets never scans, by name (images, archives, lock files)."""
        from detect_secrets.core.scan import _is_filtered_out

        return bool(_is_filtered_out(required_filter_parameters=["filename"], filename=str(path)))


@dataclass(frozen=True)
class _Quoted:
    """A high-entropy plugin's candidates: quoted runs of its charset long enough to beat its limit.

    A string of n characters has at most log2(n) bits of entropy, so only runs longer
    than 2**limit can pass; each is checked with the plugin's own entropy function.
    """

    plugin: Any
    regex: Any

    @classmethod
    def of(cls, plugin: Any) -> _Quoted:
        import re2  # type: ignore[import-untyped]  # no stubs

        shortest = math.floor(2**plugin.entropy_limit) + 1
        charset = "".join(_re2_escape(c) for c in plugin.charset)
        return cls(plugin, re2.compile(f"['\"]([{charset}]{{{shortest},}})['\"]"))

    def spans(self, text: bytes) -> Iterator[tuple[int, int]]:
        at = 0
        while (match := self.regex.search(text, at)) is not None:
            value = match.group(1).decode("ascii", "replace")
            if self.plugin.calculate_shannon_entropy(value) > self.plugin.entropy_limit:
                yield match.span()
            at = match.end() - 1  # the closing quote may open the next string


@cache
def content_scanner() -> ContentScanner:
    """The scanner with every detect-secrets plugin and its default filters (imports detect-secrets).

    The default filters leave out verification: nothing is ever sent over the network.
    """
    import re2  # type: ignore[import-untyped]  # no stubs

    try:
        with _requests_on_first_use():
            plugins = _configured_plugins()
    except ImportError:  # a detect-secrets that imports a part of requests: import it all as usual
        for name in [name for name in sys.modules if name.partition(".")[0] == "detect_secrets"]:
            del sys.modules[name]
        plugins = _configured_plugins()
    from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin

    widened: list[tuple[re.Pattern[str], str | None]] = []
    quoted = []
    for plugin in plugins:
        if isinstance(plugin, HighEntropyStringsPlugin):
            quoted.append(_Quoted.of(plugin))
        else:
            widened += [(pattern, _widened(pattern)) for pattern in _patterns_of(plugin)]
    options = re2.Options()
    options.max_mem = 64 << 20
    loosened = [wide for _, wide in widened if wide is not None]
    prefilter = _prefilter(loosened, options)
    if prefilter is None:  # some widened pattern RE2 refuses, or one matching anything: sort them out
        loosened = [wide for _, wide in widened if wide is not None and _usable(wide)]
        prefilter = _prefilter(loosened, options)
        assert prefilter is not None
    kept = set(loosened)
    line_rules = [pattern for pattern, wide in widened if wide not in kept]
    return ContentScanner(plugins, prefilter, quoted, line_rules)


def _prefilter(loosened: list[str], options: Any) -> Any:
    """One RE2 pattern for all, if RE2 compiles it and it cannot match an empty line (else None)."""
    import re2  # type: ignore[import-untyped]  # no stubs

    try:
        compiled = re2.compile("|".join(f"(?:{wide})" for wide in loosened) or "(?!)", options)
    except re2.error:
        return None
    return None if loosened and compiled.fullmatch("") else compiled


def _usable(wide: str) -> bool:
    """Whether RE2 runs ``wide`` and it cannot match an empty line (which would make every line a
    candidate)."""
    import re2  # type: ignore[import-untyped]  # no stubs

    try:
        return not re2.compile(wide).fullmatch("")
    except re2.error:
        return False


def _configured_plugins() -> list[Any]:
    """Every detect-secrets plugin, with its default filters (their modules are imported here too)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import get_filters, get_plugins, get_settings

    kinds: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    get_settings().configure_plugins([{"name": kind.__name__} for kind in kinds])
    get_filters()
    return list(get_plugins())


@contextmanager
def _requests_on_first_use() -> Iterator[None]:
    """While detect-secrets is imported, ``requests`` is imported only if something reads from it.

    detect-secrets imports requests (with urllib3, ssl and http.client, most of its import time) only
    to verify findings over the network, which robotrain leaves out. Unless requests is loaded already,
    a placeholder stands in during the import: any attribute read from it imports the real requests and
    returns the real attribute, except ``Response``, which two plugins name in a return annotation.
    """
    if "requests" in sys.modules:
        yield
        return
    placeholder = ModuleType("requests", "imports requests when an attribute is first read")

    def real_attribute(name: str) -> Any:
        if sys.modules.get("requests") is placeholder:
            del sys.modules["requests"]
        return getattr(import_module("requests"), name)

    vars(placeholder).update(Response=type("Response", (), {}), __getattr__=real_attribute)
    sys.modules["requests"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("requests") is placeholder:
            del sys.modules["requests"]


def _patterns_of(plugin: Any) -> list[re.Pattern[str]]:
    """Every regex a plugin may use: its own attributes and its module's (e.g. one per file type)."""
    found: dict[tuple[str, int], re.Pattern[str]] = {}
    for source in (vars(type(plugin)), vars(plugin), vars(sys.modules[type(plugin).__module__])):
        for value in _flatten(list(source.values())):
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found[(value.pattern, value.flags)] = value
    return list(found.values())


def _flatten(values: list[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, dict):
            yield from _flatten([*value.keys(), *value.values()])
        elif isinstance(value, list | tuple | set | frozenset):
            yield from _flatten(list(value))
        else:
            yield value


_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\p{Z}"
"""Python's ``\\s`` on text (str.isspace), which RE2's ASCII ``\\s`` is not."""
_WORD = r"\p{L}\p{N}_"
"""Python's ``\\w`` on text (str.isalnum or _)."""
_OUTSIDE = {
    "d": r"\p{Nd}", "D": r"\P{Nd}", "w": f"[{_WORD}]", "W": f"[^{_WORD}]",
    "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "b": "", "B": "", "A": "^", "Z": "$",
}  # fmt: skip
_INSIDE = {"d": r"\p{Nd}", "w": _WORD, "s": _SPACE, "D": r"\x00-\x{10FFFF}", "W": r"\x00-\x{10FFFF}",
           "S": r"\x00-\x{10FFFF}"}  # fmt: skip
_LOOKAROUNDS = ("(?=", "(?!", "(?<=", "(?<!")
_REPEAT = re.compile(r"\{(\d*),?(\d*)\}")


def _widened(pattern: re.Pattern[str]) -> str | None:
    """An RE2 pattern matching, in a block of lines, wherever ``pattern`` matches on one line (or None).

    Lookarounds and word boundaries are dropped, a back-reference becomes ``.*?``,
    Python's Unicode ``\\d \\w \\s`` are spelled out, repeats over RE2's 1000 are
    opened. Each change only widens the pattern, so no match on a line is lost.
    """
    text, verbose = pattern.pattern, bool(pattern.flags & re.VERBOSE)
    out: list[str] = []
    at, class_start, negated = 0, -1, False  # class_start: where the open class's members begin
    while at < len(text):
        char = text[at]
        if char == "\\" and at + 1 < len(text):
            escaped = text[at + 1]
            if class_start >= 0:
                if negated and escaped in "DWS":
                    return None
                out.append(_INSIDE.get(escaped, text[at : at + 2]))
            elif escaped.isdigit():
                out.append(".*?")
            else:
                out.append(_OUTSIDE.get(escaped, text[at : at + 2]))
            at += 2
        elif class_start >= 0:
            if char == "]" and at > class_start:
                class_start = -1
            out.append(char)
            at += 1
        elif char == "[":
            negated = text.startswith("[^", at)
            class_start = at + (2 if negated else 1)
            out.append(text[at:class_start])
            at = class_start
        elif text.startswith(_LOOKAROUNDS, at):
            at = _group_end(text, at)
        elif verbose and char == "#":
            end = text.find("\n", at)
            at = len(text) if end == -1 else end
        elif verbose and char.isspace():
            at += 1
        elif char == "{" and (repeat := _REPEAT.match(text, at)):
            out.append(_capped(repeat))
            at = repeat.end()
        else:
            out.append(char)
            at += 1
    flags = "m" + ("i" if pattern.flags & re.IGNORECASE else "") + ("s" if pattern.flags & re.DOTALL else "")
    return f"(?{flags}){''.join(out)}"


def _capped(repeat: re.Match[str]) -> str:
    """A repeat within RE2's limit of 1000: ``{50,1024}`` opens to ``{50,}`` (wider, never narrower)."""
    low, high = int(repeat.group(1) or 0), repeat.group(2)
    if "," not in repeat.group(0):
        return repeat.group(0) if low <= 1000 else "{1000,}"
    return repeat.group(0) if high and int(high) <= 1000 else f"{{{min(low, 1000)},}}"


def _group_end(text: str, start: int) -> int:
    """The index just past the group opening at ``start`` (escapes and classes skipped)."""
    depth, at, in_class = 0, start, False
    while at < len(text):
        char = text[at]
        if char == "\\":
            at += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return at + 1
        at += 1
    return at


def _re2_escape(char: str) -> str:
    return "\\" + char if char in "\\]^-[" else char


def _may_transform(path: Path, data: bytes) -> bool:
    """Whether a non-eager transformer could parse the file: YAML, or INI (a [section] comes first)."""
    from detect_secrets.util.filetype import FileType, determine_file_type

    if determine_file_type(str(path)) == FileType.YAML:
        return True
    for line in data.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith((b"#", b";")):
            return stripped.startswith(b"[")
    return False


def _valid_utf8(block: bytes) -> bytes:
    """The block when it is UTF-8, else re-encoded with U+FFFD for each bad byte (as a reader sees it)."""
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("utf-8", "replace").encode("utf-8")
    return block

"""Deterministic, filtered packing of the training code."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from robotrain.errors import UserError
from robotrain.payload import checked_files, code_sources, pack, unpack
from robotrain.payload_archive import ChangedWhilePacking, Member, write_archive
from robotrain.payload_cache import stat_key


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.fixture
def training(tmp_path: Path) -> Path:
    return tree(
        tmp_path / "src" / "training",
        {
            "scripts/train.sh": "echo train\n",
            "pkg/model.py": "x = 1\n",
            ".env": "HF_TOKEN=hf_secret\n",
            "key.pem": "-----BEGIN PRIVATE KEY-----\n",
            "certs/client.key": "secret\n",
            ".git/config": "[core]\n",
            "pkg/__pycache__/model.cpython-311.pyc": "bytecode",
            ".venv/bin/python": "",
            "notes.tmp": "scratch\n",
            "data/big.bin": "0" * 100,
            ".gitignore": "*.tmp\n",
            ".amlignore": "data/\n",
        },
    )


def test_same_tree_gives_identical_bytes(training: Path, tmp_path: Path) -> None:
    first = pack(code_sources(training), tmp_path / "out1")
    os.utime(training / "pkg" / "model.py", (1, 1))
    (training / "scripts" / "train.sh").chmod(0o755)
    (training / "scripts" / "train.sh").chmod(0o644)
    second = pack(code_sources(training), tmp_path / "out2")
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert first.sha256 == second.sha256
    assert first.archive.name == f"{first.sha256}.tar.gz"
    assert first.size == first.archive.stat().st_size


def test_changed_content_changes_the_hash(training: Path, tmp_path: Path) -> None:
    before = pack(code_sources(training), tmp_path / "out")
    (training / "pkg" / "model.py").write_text("x = 2\n")
    assert pack(code_sources(training), tmp_path / "out").sha256 != before.sha256


def test_secrets_caches_vcs_and_ignored_files_are_left_out(training: Path, tmp_path: Path) -> None:
    payload = pack(code_sources(training), tmp_path / "out")
    with tarfile.open(payload.archive) as archive:
        names = set(archive.getnames())
        content = b"".join(
            archive.extractfile(m).read()
            for m in archive.getmembers()
            if m.isfile()  # type: ignore[union-attr]
        )
    assert names == {
        "training/.amlignore",
        "training/.gitignore",
        "training/pkg/model.py",
        "training/scripts/train.sh",
    }
    assert set(payload.files) == names
    assert b"hf_secret" not in content
    assert b"PRIVATE KEY" not in content


def test_common_folder_beside_training_is_packed(training: Path, tmp_path: Path) -> None:
    tree(training.parent / "common", {"util.py": "y = 1\n"})
    payload = pack(code_sources(training), tmp_path / "out")
    assert "common/util.py" in payload.files


def test_modes_and_times_are_fixed(training: Path, tmp_path: Path) -> None:
    (training / "scripts" / "train.sh").chmod(0o775)
    payload = pack(code_sources(training), tmp_path / "out")
    with tarfile.open(payload.archive) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert members["training/scripts/train.sh"].mode == 0o755
    assert members["training/pkg/model.py"].mode == 0o644
    assert {m.mtime for m in members.values()} == {315532800}
    assert {(m.uid, m.gid, m.uname) for m in members.values()} == {(0, 0, "")}


def test_unpack_round_trip(training: Path, tmp_path: Path) -> None:
    payload = pack(code_sources(training), tmp_path / "out")
    root = unpack(payload, tmp_path / "unpacked")
    assert (root / "training" / "pkg" / "model.py").read_text() == "x = 1\n"


def test_missing_training_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="training folder"):
        code_sources(tmp_path / "nope")


def test_empty_folder_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "training").mkdir()
    with pytest.raises(UserError, match="nothing to pack"):
        pack(code_sources(tmp_path / "training"), tmp_path / "out")


# --- streaming archive: format, determinism, memory, concurrency ---------------------------------

OLD = 1_600_000_000  # an mtime older than the stat cache's racy window


def settle(root: Path) -> None:
    """Give every file an old mtime, as a tree that was not just written has."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (OLD, OLD))


def bytes_read() -> int:
    """Bytes this process has read with read() so far (all threads), from /proc/self/io."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"])


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Several deflate blocks: compressible sources and incompressible assets."""
    root = tmp_path / "mixed" / "training"
    tree(root, {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x * {i}\n" * 400 for i in range(40)})
    (root / "assets").mkdir()
    for i in range(3):
        (root / "assets" / f"blob{i}.bin").write_bytes(os.urandom(700_000))
    (root / "scripts").mkdir()
    (root / "scripts" / "train.sh").write_text("echo train\n")
    (root / "scripts" / "train.sh").chmod(0o755)
    settle(root)
    return root


def test_multi_block_archive_unpacks_with_tar_and_python(mixed: Path, tmp_path: Path) -> None:
    payload = pack({"training": mixed}, tmp_path / "out")
    assert payload.size < sum(p.stat().st_size for p in mixed.rglob("*") if p.is_file())
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-xzf", str(payload.archive), "-C", str(by_tar)], check=True)
    by_python = unpack(payload, tmp_path / "by-python")
    for name in payload.files:
        original = mixed / name.removeprefix("training/")
        assert (by_tar / name).read_bytes() == original.read_bytes()
        assert (by_python / name).read_bytes() == original.read_bytes()
    assert os.access(by_tar / "training/scripts/train.sh", os.X_OK)
    with gzip.open(payload.archive) as stream:  # one gzip member whose length and CRC check out
        assert len(stream.read()) % tarfile.RECORDSIZE == 0


def test_incompressible_files_are_stored_not_deflated(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    (root / "weights.bin").write_bytes(os.urandom(3_000_000))
    payload = pack({"training": root}, tmp_path / "out")
    assert payload.size < 3_000_000 * 1.01


def test_archive_is_identical_with_or_without_the_stat_cache(mixed: Path, tmp_path: Path) -> None:
    cold = pack({"training": mixed}, tmp_path / "a")
    cached = pack({"training": mixed}, tmp_path / "b", cache_dir=tmp_path / "cache")
    warm = pack({"training": mixed}, tmp_path / "c", cache_dir=tmp_path / "cache")
    assert cold.archive.read_bytes() == cached.archive.read_bytes() == warm.archive.read_bytes()
    assert cold.sha256 == hashlib.sha256(cold.archive.read_bytes()).hexdigest()


def test_concurrent_packs_use_unique_temporary_files(mixed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = (
        "import sys; from pathlib import Path; from robotrain.payload import pack; "
        "print(pack({'training': Path(sys.argv[1])}, Path(sys.argv[2])).sha256)"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(mixed), str(out)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    digests = {run.communicate(timeout=120)[0].strip() for run in runs}
    assert all(run.returncode == 0 for run in runs)
    assert len(digests) == 1
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{digests.pop()}.tar.gz", "trees"])


def test_a_large_file_is_packed_in_bounded_memory(tmp_path: Path) -> None:
    root = tmp_path / "training"
    root.mkdir()
    with (root / "big.dat").open("wb") as out:
        out.truncate(160 * 1024 * 1024)  # sparse: nothing to write, 160 MB to read
    script = (  # VmHWM, not ru_maxrss: that one also counts the forking parent's pages before exec
        "import re, sys; from pathlib import Path; from robotrain.payload import pack; "
        "pack({'training': Path(sys.argv[1])}, Path(sys.argv[2])); "
        "print(int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)) // 1024)"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, str(root), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(run.stdout) < 100  # megabytes: the interpreter and a few 256 KiB blocks, not the file


def test_a_file_that_changes_while_packing_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "x = 1\n"})
    entries = checked_files({"training": root}, "pack")
    (root / "a.py").write_text("x = 22\n")
    members = [Member(e.name, e.path, e.size, e.executable, stat_key(e.stat)) for e in entries]
    with pytest.raises(ChangedWhilePacking):
        write_archive(members, io.BytesIO(), lambda n: None)


# --- the stat cache --------------------------------------------------------------------------------


def test_unchanged_tree_is_not_read_again(mixed: Path, tmp_path: Path) -> None:
    first = pack({"training": mixed}, tmp_path / "out", cache_dir=tmp_path / "cache")
    before = bytes_read()
    again = pack({"training": mixed}, tmp_path / "out", cache_dir=tmp_path / "cache")
    read = bytes_read() - before
    assert again == first
    cache_files = sum(p.stat().st_size for p in (tmp_path / "cache").iterdir())
    assert read < cache_files + 16_384  # the cache and the ignore files, no file content


def test_same_size_same_mtime_edit_is_detected(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"model.py": "x = 1\n", "other.py": "y = 2\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    (root / "model.py").write_text("x = 9\n")  # same size
    os.utime(root / "model.py", (OLD, OLD))  # same mtime: only the ctime tells
    second = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert second.sha256 != first.sha256
    assert (unpack(second, tmp_path / "x") / "training" / "model.py").read_text() == "x = 9\n"


def test_touched_but_unchanged_file_gives_the_same_archive(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"model.py": "x = 1\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    os.utime(root / "model.py", (OLD + 10, OLD + 10))
    assert pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache") == first


def test_freshly_written_files_are_not_trusted_to_the_cache(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"model.py": "x = 1\n" * 10_000})  # mtime: now
    pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    before = bytes_read()
    pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert bytes_read() - before >= 60_000  # read again: an edit in the same clock tick would hide


def test_deleted_and_added_files_change_the_archive(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "a\n", "b.py": "b\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    (root / "b.py").unlink()
    second = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    (root / "c.py").write_text("c\n")
    third = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert (first.files, second.files, third.files) == (
        ("training/a.py", "training/b.py"),
        ("training/a.py",),
        ("training/a.py", "training/c.py"),
    )


def test_an_unchanged_tree_is_walked_without_compiling_the_ignore_rules(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "a\n", "pkg/b.py": "b\n", ".gitignore": "*.log\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    again = (
        "import sys; from pathlib import Path; from robotrain.payload import pack; "
        f"print(pack({{'training': Path({str(root)!r})}}, Path({str(tmp_path / 'out')!r}), "
        f"cache_dir=Path({str(tmp_path / 'cache')!r})).sha256, 'pathspec' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", again], capture_output=True, text=True, check=True)
    assert result.stdout.split() == [first.sha256, "False"]


def test_new_paths_and_changed_ignore_rules_are_matched_again(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "a\n", "data.csv": "1,2\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    tree(root, {"pkg/__pycache__/a.cpython-311.pyc": "x", ".env.local": "TOKEN=1\n", "run.log": "log\n"})
    second = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    (root / ".gitignore").write_text("*.csv\n*.log\n")
    third = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    assert first.files == ("training/a.py", "training/data.csv")
    assert second.files == ("training/a.py", "training/data.csv", "training/run.log")
    assert third.files == ("training/.gitignore", "training/a.py")


def test_a_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "a\n"})
    settle(root)
    first = pack({"training": root}, tmp_path / "out", cache_dir=tmp_path / "cache")
    for path in (tmp_path / "cache").iterdir():
        path.write_text("{not json")
    assert pack({"training": root}, tmp_path / "out2", cache_dir=tmp_path / "cache").sha256 == first.sha256


# --- progress ---------------------------------------------------------------------------------------

PROGRESS = """
import sys
from pathlib import Path
import robotrain.payload as payload
payload.PROGRESS_DELAY = 0  # the bar waits this long before it shows; a test cannot wait seconds
payload.pack({"training": Path(sys.argv[1])}, Path(sys.argv[2]))
print("tqdm" in sys.modules)
"""


def test_progress_bar_only_on_a_terminal(mixed: Path, tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios
    import threading

    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    run = subprocess.Popen(
        [sys.executable, "-c", PROGRESS, str(mixed), str(tmp_path / "a")],
        stderr=child,
        stdout=subprocess.PIPE,
        text=True,
    )
    os.close(child)
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                data = os.read(parent, 65536)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            shown.extend(data)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    out, _ = run.communicate(timeout=120)
    reader.join(timeout=30)
    os.close(parent)
    assert (run.returncode, out.strip()) == (0, "True")
    assert b"checking" in shown and b"packing" in shown
    piped = subprocess.run(
        [sys.executable, "-c", PROGRESS, str(mixed), str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (piped.stdout.strip(), piped.stderr) == ("False", "")


def test_training_folder_that_is_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "training").write_text("not a folder")
    with pytest.raises(UserError, match="is a file, expected a folder"):
        code_sources(tmp_path / "training")


def test_non_utf8_ignore_file_is_a_user_error(tmp_path: Path) -> None:
    root = tree(tmp_path / "training", {"a.py": "a\n"})
    (root / ".amlignore").write_bytes(b"caf\xe9/\n")
    with pytest.raises(UserError, match=r"\.amlignore is not UTF-8 text"):
        pack({"training": root}, tmp_path / "out")

"""Deterministic, filtered packing of the training code."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from robotrain.errors import UserError
from robotrain.payload import code_sources, pack, unpack


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

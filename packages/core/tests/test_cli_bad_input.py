"""Bad input through the real command line, table-driven: one line, non-zero exit, nothing half-written.

Every case runs ``robotrain ...`` in a fresh project and asserts a non-zero exit,
exactly one stderr line (containing the case's fragments), no traceback, and that
nothing under ``.robotrain/`` was half-written: no job folder, no store, no
partial file; only the caches a real run writes anyway (and lock files) may appear.
Cases marked ``restricted`` run as root without the permission overrides
(``setpriv`` drops CAP_DAC_OVERRIDE), so file modes apply as for any user.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from robotrain.testing import assert_one_line_error, make_project, run_cli

pytest.importorskip("mlflow")

TRAIN_SH = "src/training/scripts/train.sh"
CORRUPT_JOB = "local-20250101-000000-dead"
CACHES = ("payloads", "cache")
"""What a real run writes anyway (packed payloads and the packing cache), so a failed one may too."""
NO_PERMISSION_OVERRIDES = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    fragments: tuple[str, ...] = ()
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    restricted: bool = False


def dry(*args: str) -> tuple[str, ...]:
    return ("train", "--dry-run", *args)


def corrupt_job(content: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        folder = project / ".robotrain" / "jobs" / CORRUPT_JOB
        folder.mkdir(parents=True)
        (folder / "job.json").write_text(content)

    return setup


def folder(relative: str, *files: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        (project / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            (project / relative / name).write_text("data\n")

    return setup


def chmod(relative: str, mode: int) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        path = project / relative
        path.mkdir(parents=True, exist_ok=True) if not path.exists() else None
        path.chmod(mode)

    return setup


def unreadable_file(relative: str) -> Callable[[Path], None]:
    def setup(project: Path) -> None:
        (project / relative).write_text("secret = 1\n")
        (project / relative).chmod(0)

    return setup


CASES = [
    # command-line flags
    Case("unknown flag", dry("--bogus"), ("--bogus",)),
    Case("bad checkpoint mode", dry("--checkpoint-mode", "bogus"), ("--checkpoint-mode", "from-scratch")),
    Case("resume without uri", dry("--checkpoint-mode", "resume"), ("--checkpoint-uri",)),
    Case("fresh without uri", dry("--checkpoint-mode", "fresh"), ("--checkpoint-uri",)),
    Case("uri with from-scratch", dry("--checkpoint-uri", "models:/m/1"), ("--checkpoint-mode",)),
    Case("num-envs not a number", dry("--num-envs", "abc"), ("--num-envs", "whole number")),
    Case("num-envs negative", dry("--num-envs", "-5"), ("--num-envs", "minimum")),
    Case("num-envs fraction", dry("--num-envs", "3.7"), ("--num-envs", "'3.7'")),
    Case("max-iterations zero", dry("--max-iterations", "0"), ("--max-iterations",)),
    Case("unknown platform", dry("--platform", "nope"), ("platform 'nope'",)),
    Case("unknown workload", dry("--workload", "nope"), ("workload 'nope'",)),
    Case("unknown backend", dry("--backend", "nope"), ("--backend", "skrl")),
    Case("bad output format", dry("--output", "xml"), ("--output", "text, json")),
    Case("missing training folder", dry("--training-dir", "missing"), ("training folder", "missing")),
    Case("training folder is a file", dry("--training-dir", TRAIN_SH), ("is a file, expected a folder",)),
    Case("unknown profile", dry("--profile", "nope"), ("profile 'nope'",)),
    Case("empty experiment name", dry("--experiment-name", ""), ("--experiment-name is empty",)),
    Case("blank experiment name", dry("--experiment-name", "  "), ("--experiment-name is empty",)),
    Case("empty task", dry("--task", ""), ("--task is empty",)),
    Case("empty image", dry("--image", ""), ("--image is empty",)),
    Case("empty job name", dry("--job-name", ""), ("--job-name is empty",)),
    Case("model name with slash", dry("--register-checkpoint", "a/b"), ("'a/b'", "MLflow")),
    Case("model name with colon", dry("--register-checkpoint", "a:b"), ("'a:b'", "MLflow")),
    Case("model name is a path", dry("--register-checkpoint", ".."), ("'..'", "MLflow")),
    Case("model name with space", dry("--register-checkpoint", "my model"), ("'my model'", "letters")),
    Case("timeout not a duration", dry("--timeout", "soon"), ("--timeout", "'soon'")),
    Case("timeout zero", dry("--timeout", "0"), ("--timeout", "more than 0")),
    Case("timeout too long", dry("--timeout", "61d"), ("--timeout", "60d")),
    Case("env without value", dry("--env", "NOEQUALS"), ("--env", "KEY=VALUE")),
    Case("env owned by robotrain", dry("--env", "PATH=/x"), ("--env", "PATH")),
    Case("env secret", dry("--env", "HF_TOKEN=hf_abcdefghijklmnopqrstuvwx"), ("--env", "secret")),
    Case("pass-through on local", (*dry(), "--", "--priority", "HIGH"), ("after --", "'local'")),
    # environment variables
    Case("env var not a number", dry(), ("--num-envs", "env NUM_ENVS"), env={"NUM_ENVS": "many"}),
    Case("env var unknown platform", dry(), ("platform 'nope'",), env={"ROBOTRAIN_PLATFORM": "nope"}),
    Case("env var bad mode", dry(), ("--checkpoint-mode",), env={"CHECKPOINT_MODE": "bogus"}),
    Case("env var bad timeout", dry(), ("--timeout",), env={"ROBOTRAIN_TIMEOUT": "later"}),
    Case("env var zero iterations", dry(), ("--max-iterations",), env={"MAX_ITERATIONS": "0"}),
    # the config file
    Case("invalid toml", dry(), ("robotrain.toml", "invalid TOML"), {"robotrain.toml": "task = \n"}),
    Case("config not utf-8", dry(), ("robotrain.toml", "UTF-8"), {"robotrain.toml": b'task = "\xff"\n'}),
    Case(
        "pyproject not utf-8",
        dry(),
        ("pyproject.toml", "UTF-8"),
        {"pyproject.toml": b'[tool.robotrain]\ntask = "\xfe"\n'},
    ),
    Case(
        "profiles a string", dry(), ("profiles", "table of tables"), {"robotrain.toml": 'profiles = "gpu"\n'}
    ),
    Case(
        "profile a number",
        dry(),
        ("profile must be a string",),
        {"robotrain.toml": "profile = 5\n[profiles.gpu]\nnum-envs = 1\n"},
    ),
    Case(
        "profile not a table",
        dry(),
        ("profiles", "table of tables"),
        {"robotrain.toml": "[profiles]\ngpu = 1\n"},
    ),
    Case("profile not defined", dry(), ("profile 'big'",), {"robotrain.toml": 'profile = "big"\n'}),
    Case(
        "num-envs a float",
        dry(),
        ("num-envs", "whole number", "float"),
        {"robotrain.toml": "num-envs = 3.7\n"},
    ),
    Case("num-envs a boolean", dry(), ("num-envs", "boolean"), {"robotrain.toml": "num-envs = true\n"}),
    Case(
        "num-envs a word", dry(), ("--num-envs", "robotrain.toml"), {"robotrain.toml": 'num-envs = "lots"\n'}
    ),
    Case(
        "training-dir a table",
        dry(),
        ("training-dir", "a table"),
        {"robotrain.toml": "training-dir = {a = 1}\n"},
    ),
    Case("task a number", dry(), ("task", "a string"), {"robotrain.toml": "task = 5\n"}),
    Case("task an array", dry(), ("task", "an array"), {"robotrain.toml": 'task = ["a"]\n'}),
    Case("task empty", dry(), ("task", "empty string"), {"robotrain.toml": 'task = ""\n'}),
    Case(
        "experiment empty", dry(), ("experiment-name", "empty"), {"robotrain.toml": 'experiment-name = ""\n'}
    ),
    Case("headless a word", dry(), ("--headless", "boolean"), {"robotrain.toml": 'headless = "maybe"\n'}),
    Case("env a number", dry(), ("env", "array of strings"), {"robotrain.toml": "env = 5\n"}),
    Case("env numbers", dry(), ("env", "array of strings"), {"robotrain.toml": "env = [1, 2]\n"}),
    Case("platform an array", dry(), ("platform", "a string"), {"robotrain.toml": 'platform = ["local"]\n'}),
    Case("timeout a float", dry(), ("timeout", "a string"), {"robotrain.toml": "timeout = 3.5\n"}),
    Case(
        "checkpoint mode a number",
        ("config",),
        ("checkpoint-mode", "a string"),
        {"robotrain.toml": "checkpoint-mode = 1\n"},
    ),
    Case("bad value on status", ("status", "local-x"), ("num-envs",), {"robotrain.toml": "num-envs = 3.7\n"}),
    # files and folders the user cannot read or write
    Case(
        "config unreadable",
        dry(),
        ("robotrain.toml", "cannot read"),
        setup=unreadable_file("robotrain.toml"),
        restricted=True,
    ),
    Case(
        "training file unreadable",
        dry(),
        ("secret.py",),
        setup=unreadable_file("src/training/secret.py"),
        restricted=True,
    ),
    Case(
        "read-only .robotrain",
        ("train",),
        (".robotrain", "permission denied"),
        setup=chmod(".robotrain", 0o555),
        restricted=True,
    ),
    Case(
        "read-only project",
        ("train",),
        (".robotrain", "permission denied"),
        setup=chmod(".", 0o555),
        restricted=True,
    ),
    Case(
        "training folder unreadable",
        dry(),
        ("locked",),
        setup=chmod("src/training/locked", 0),
        restricted=True,
    ),
    Case(
        "ignore file not utf-8",
        dry(),
        (".gitignore", "UTF-8"),
        {"src/training/.gitignore": b"\xff\xfe*.pyc\n"},
    ),
    Case(
        "symlink loop in training folder",
        dry(),
        ("loop",),
        setup=lambda p: (p / "src/training/loop").symlink_to("loop"),
    ),
    # checkpoints, the store and jobs
    Case(
        "checkpoint model with no store",
        ("train", "--checkpoint-mode", "warm-start", "--checkpoint-uri", "models:/cartpole/1"),
        ("no local MLflow store yet", "train a job first"),
    ),
    Case(
        "checkpoint folder missing",
        ("train", "--checkpoint-mode", "warm-start", "--checkpoint-uri", "missing/ckpt"),
        ("checkpoint missing/ckpt not found",),
    ),
    Case(
        "register run with no store",
        ("register-model", "runs:/0123/checkpoint", "--name", "m"),
        ("no local MLflow store yet", "runs:/0123/checkpoint"),
    ),
    Case("register missing folder", ("register-model", "missing", "--name", "m"), ("model source missing",)),
    Case("register a file", ("register-model", TRAIN_SH, "--name", "m"), ("is a file, expected a folder",)),
    Case(
        "register empty folder",
        ("register-model", "empty", "--name", "m"),
        ("model source empty",),
        setup=folder("empty"),
    ),
    Case("register without name", ("register-model", "ckpt"), ("--name",), setup=folder("ckpt", "w.bin")),
    Case(
        "register bad name",
        ("register-model", "ckpt", "--name", "a/b"),
        ("model name 'a/b'",),
        setup=folder("ckpt", "w.bin"),
    ),
    Case(
        "register job without checkpoint",
        ("register-model", CORRUPT_JOB, "--name", "m"),
        ("wrote no checkpoint",),
        setup=corrupt_job("{}"),
    ),
    Case("register bad output", ("register-model", "ckpt", "--name", "m", "--output", "xml"), ("--output",)),
    Case("stage missing folder", ("stage-dataset", "missing"), ("dataset folder missing",)),
    Case("stage a file", ("stage-dataset", TRAIN_SH), ("is a file, expected a folder",)),
    Case("stage empty folder", ("stage-dataset", "empty"), ("no files",), setup=folder("empty")),
    Case(
        "stage bad name",
        ("stage-dataset", "data", "--name", "my data"),
        ("dataset name 'my data'",),
        setup=folder("data", "a.txt"),
    ),
    Case("status unknown job", ("status", "local-nope"), ("no local job 'local-nope'",)),
    Case(
        "status with a damaged submissions file",
        ("status", "local-nope"),
        ("no local job",),
        {".robotrain/submissions.jsonl": '5\n{"job_id": \n\xff'},
    ),
    Case("status path as job", ("status", "../x"), ("no local job '../x'",)),
    Case("logs unknown job", ("logs", "local-nope"), ("no local job",)),
    Case("cancel unknown job", ("cancel", "local-nope"), ("no local job",)),
    Case("status bad output", ("status", "local-nope", "--output", "yaml"), ("--output",)),
    Case(
        "status corrupt record",
        ("status", CORRUPT_JOB),
        (CORRUPT_JOB, "cannot read", "damaged"),
        setup=corrupt_job('{"state": "runn'),
    ),
    Case(
        "status record not an object",
        ("status", CORRUPT_JOB),
        (CORRUPT_JOB, "not a job record"),
        setup=corrupt_job("[1, 2]"),
    ),
    Case(
        "logs corrupt record",
        ("logs", CORRUPT_JOB, "--follow"),
        (CORRUPT_JOB, "damaged"),
        setup=corrupt_job("\x00"),
    ),
    Case("cancel corrupt record", ("cancel", CORRUPT_JOB), (CORRUPT_JOB, "damaged"), setup=corrupt_job("{")),
    Case(
        "status of a platform that does not exist",
        ("status", "x", "--platform", "nope"),
        ("platform 'nope'",),
    ),
    Case("config bad output", ("config", "--output", "xml"), ("--output",)),
    Case("plugins bad output", ("plugins", "--output", "xml"), ("--output",)),
]


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.is_dir() else set()


def run(case: Case, project: Path) -> subprocess.CompletedProcess[str]:
    if not case.restricted:
        return run_cli(list(case.args), cwd=project, env=case.env)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ROBOTRAIN_", "MLFLOW_"))}
    return subprocess.run(
        [*NO_PERMISSION_OVERRIDES, sys.executable, "-m", "robotrain", *case.args],
        cwd=project,
        env=environment | case.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def restore_permissions(project: Path) -> None:
    for path in [project, *project.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IRWXU)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, case: Case) -> None:
    project = make_project(tmp_path / "project")
    for relative, content in case.files.items():
        path = project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    if case.setup is not None:
        case.setup(project)
    if case.restricted and shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run without root's permission overrides")
    state = project / ".robotrain"
    before = files_under(state)
    try:
        result = run(case, project)
    finally:
        restore_permissions(project)
    assert_one_line_error(result, *case.fragments)
    new = files_under(state) - before
    assert all(p.startswith(CACHES) or p.endswith(".lock") for p in new), sorted(new)
    assert not [p for p in files_under(state) if "partial" in p or p.endswith(".tmp")]
    assert {p.split("/")[1] for p in files_under(state) if p.startswith("jobs/")} <= {CORRUPT_JOB}
    assert not (state / "mlflow.db").exists()


def test_the_table_has_at_least_sixty_cases() -> None:
    assert len(CASES) >= 60
    assert len({case.name for case in CASES}) == len(CASES)

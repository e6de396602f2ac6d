"""A separately installed plugin is discovered; a broken one is skipped with one warning line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robotrain.testing import make_project

REPO = Path(__file__).resolve().parents[3]
CORE = REPO / "packages" / "core"

DOCS = REPO / "docs" / "plugins.md"


def documented_plugin(root: Path) -> Path:
    """The complete platform plugin of docs/plugins.md, written out as a package."""
    guide = DOCS.read_text().split("## A complete minimal platform plugin", 1)[1]
    pyproject = re.search(r"```toml\n(.*?)```", guide, re.S)
    module = re.search(r"```python\n(.*?)```", guide, re.S)
    assert pyproject and module, "docs/plugins.md lost its example"
    package = root / "robotrain-slurm"
    (package / "robotrain_slurm").mkdir(parents=True)
    (package / "pyproject.toml").write_text(pyproject.group(1))
    (package / "robotrain_slurm" / "__init__.py").write_text(module.group(1))
    return package


def write_package(root: Path, dist: str, module: str, source: str) -> Path:
    package = root / dist
    (package / module).mkdir(parents=True)
    (package / module / "__init__.py").write_text(textwrap.dedent(source))
    (package / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [project]
        name = "{dist}"
        version = "1.2.3"
        dependencies = ["robotrain-core>=0.1"]

        [project.entry-points.robotrain]
        {dist.removeprefix("robotrain-")} = "{module}"
    '''))  # fmt: skip
    return package


class Venv:
    """A virtual environment holding robotrain-core and whatever a test adds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uv = shutil.which("uv")
        if self.uv:
            self._run([self.uv, "venv", "--quiet", "--python", sys.executable, str(path)])
        else:
            self._run([sys.executable, "-m", "venv", str(path)])
        self.install(CORE)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def install(self, *packages: Path) -> None:
        targets = [arg for package in packages for arg in ("-e", str(package))]
        if self.uv:
            self._run([self.uv, "pip", "install", "--quiet", "--python", str(self.python), *targets])
        else:
            self._run([str(self.python), "-m", "pip", "install", "--quiet", *targets])

    def invoke(self, *args: str, cwd: Path, path: Path | None = None) -> subprocess.CompletedProcess[str]:
        """``invoke ARGS`` of this venv; ``path``: a folder put first on PATH (stand-in commands)."""
        command = [str(self.path / "bin" / "invoke"), "--search-root", str(REPO), *args]
        env = None if path is None else os.environ | {"PATH": f"{path}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, env=env)

    @staticmethod
    def _run(command: list[str]) -> None:
        subprocess.run(command, check=True, capture_output=True, text=True)


@pytest.mark.slow
def test_third_party_plugins_in_a_core_only_venv(tmp_path: Path) -> None:
    venv = Venv(tmp_path / "venv")
    project = make_project(tmp_path / "project")

    assert "--partition" not in venv.invoke("train", "--help", cwd=project).stdout

    slurm = documented_plugin(tmp_path)
    broken = write_package(tmp_path, "robotrain-broken", "robotrain_broken", "import no_such_module_xyz\n")
    venv.install(slurm, broken)

    listing = venv.invoke("plugins", cwd=project)
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()}
    assert rows["slurm"][1:5] == ["robotrain-slurm", "0.1.0", "platform", "slurm,"]
    assert {"robotrain", "isaaclab", "local"} <= rows.keys()
    assert "broken" not in rows
    warnings = [line for line in listing.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, listing.stderr
    assert "'broken'" in warnings[0] and "robotrain-broken" in warnings[0]
    assert "no_such_module_xyz" in warnings[0]

    assert "--partition" in venv.invoke("train", "--help", cwd=project).stdout

    dry_run = venv.invoke("train", "--platform", "slurm", "--partition", "a100", "--dry-run", cwd=project)
    assert dry_run.returncode == 0, dry_run.stderr
    assert dry_run.stdout.startswith("#!/bin/bash\n#SBATCH --job-name=isaaclab-training\n")
    assert "#SBATCH --partition=a100" in dry_run.stdout
    assert "exec bash training/scripts/train.sh --mode train" in dry_run.stdout

    local = venv.invoke("train", "--platform", "local", "--partition", "x", "--dry-run", cwd=project)
    assert local.returncode == 2
    assert "--partition belongs to plugin 'slurm'" in local.stderr

    slurm_bin = stand_in_slurm(tmp_path / "bin")
    submitted = venv.invoke("train", "--platform", "slurm", cwd=project, path=slurm_bin)
    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stdout.strip() == "slurm job 4242"
    listed = venv.invoke("jobs", cwd=project, path=slurm_bin)
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[1].split()
    assert row[:6] == ["4242", "slurm", "isaaclab", "isaaclab-training", "1", "running"]
    download = venv.invoke("download", "4242", cwd=project, path=slurm_bin)
    assert download.returncode == 2
    assert download.stderr.splitlines()[-1] == (
        "robotrain: error: download is not supported by platform 'slurm' (its plugin has no such hook)"
    )
    assert not (project / "downloads").exists()


def stand_in_slurm(folder: Path) -> Path:
    """``sbatch --parsable`` answering a job id and ``squeue`` saying it runs (Slurm's output formats)."""
    folder.mkdir()
    for name, script in (("sbatch", "cat > /dev/null; echo '4242;cluster'"), ("squeue", "echo RUNNING")):
        (folder / name).write_text(f"#!/bin/sh\n{script}\n")
        (folder / name).chmod(0o755)
    return folder

"""LeRobot's own environment on the local platform: a virtual environment per LeRobot version and Python.

robotrain's environment never receives LeRobot: the entry point creates
``.robotrain/lerobot-envs/<version>-py<X.Y>/`` with uv on first use, installs the job's
set there, and reuses it while the set is unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from robotrain import UserError
from robotrain_lerobot.versions import LeRobotVersion

ENVS_FOLDER = "lerobot-envs"


def venv_dir(state_dir: Path, lerobot: LeRobotVersion, python_version: str) -> Path:
    return state_dir / ENVS_FOLDER / f"{lerobot.version}-py{python_version}"


def find_python(lerobot: LeRobotVersion) -> tuple[str, str]:
    """An interpreter the version supports (path, ``X.Y``): robotrain's own, else one found here."""
    if sys.version_info[:2] >= lerobot.min_python:
        return sys.executable, f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in _candidates(lerobot.min_python):
        version = _version_of(candidate)
        if version is not None and tuple(map(int, version.split("."))) >= lerobot.min_python:
            return str(candidate), version
    wanted = ".".join(map(str, lerobot.min_python))
    raise UserError(
        f"LeRobot {lerobot.version} needs Python >= {wanted} and none was found on this machine; "
        f"install one (`uv python install {wanted}` or `pyenv install {wanted}`) "
        f"or use --lerobot-version 0.3.3"
    )


def _candidates(minimum: tuple[int, int]) -> list[Path]:
    """Pythons on PATH (pyenv shims skipped: they fail without a selected version), pyenv's, uv's."""
    names = [f"python{minimum[0]}.{minor}" for minor in range(minimum[1], minimum[1] + 3)]
    found = [Path(p) for name in names if (p := shutil.which(name)) and "/shims/" not in p]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    uv_pythons = Path(os.environ.get("UV_PYTHON_INSTALL_DIR") or Path.home() / ".local/share/uv/python")
    for name in names:
        found += sorted(pyenv.glob(f"versions/{name[6:]}*/bin/{name}"))
        found += sorted(uv_pythons.glob(f"cpython-{name[6:]}*/bin/{name}"))
    return found


def _version_of(python: Path) -> str | None:
    try:
        result = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None

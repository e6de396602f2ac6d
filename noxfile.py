"""One test session per package (core plus that package only), integration, lint and types."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True

PACKAGES = ["core", "plugin-azureml", "plugin-osmo", "plugin-lerobot"]
CORE = "packages/core"
LEROBOT_PINS = ("0.6.1", "0.3.3")
"""LeRobot releases the lerobot plugin generates command lines for; 0.6 needs Python 3.12."""
LEROBOT_TESTS = "packages/plugin-lerobot/tests"
COMPILED = {"UV_COMPILE_BYTECODE": "1"}
"""Installs with their .pyc files, for sessions whose tests start many CLI processes that import an SDK:
where Python writes no bytecode cache (PYTHONDONTWRITEBYTECODE, set in the shells here; invoke's Program
also turns caching off), every such start would compile MLflow or the Azure SDK again. The lerobot and
integration sessions measured no gain from it (their CLI processes import little), so they skip it."""
PRECOMPILED = ("core", "plugin-azureml", "plugin-osmo")
PARALLEL = ("-n", "auto", "--dist", "loadgroup")
"""pytest-xdist, one worker per core. Tests sharing a costly module-scoped fixture carry an ``xdist_group``
so one worker runs them all; pytest 9.2 loses the group (pytest-xdist#1386), so until that is fixed such
a fixture runs once per worker that gets one of its tests."""


def _python312() -> str:
    """Python 3.12 for the lerobot plugin: pyenv's install when there is one (its shim needs a
    global version to run), else whatever nox finds for "3.12"."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    found = sorted(pyenv.glob("versions/3.12*/bin/python3.12"))
    return str(found[-1]) if found else "3.12"


def _install(session: nox.Session, *packages: str, compiled: bool = True) -> None:
    """Install core and the given packages, each named package with its ``test`` extra.

    Core's own test extra (MLflow, gymnasium) comes only when core is named, so a
    plugin's session proves the plugin works with bare core. ``compiled=False`` skips
    the .pyc files, for sessions that never import what they install.
    """
    core = f"{CORE}[test]" if "core" in packages else CORE
    plugins = [f"packages/{p}[test]" for p in packages if p != "core"]
    editable = (arg for path in (core, *plugins) for arg in ("-e", path))
    session.install(*editable, env=COMPILED if compiled else None)


@nox.session
@nox.parametrize(
    "python,package",
    [nox.param(_python312() if p == "plugin-lerobot" else None, p, id=f"package='{p}'") for p in PACKAGES],
)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests in a venv holding core and that package only."""
    _install(session, package, compiled=package in PRECOMPILED)
    if package == "plugin-lerobot":
        _lerobot_tests(session)
        return
    session.run("pytest", f"packages/{package}/tests", *PARALLEL, *session.posargs)


def _install_lerobot(session: nox.Session, version: str) -> None:
    """LeRobot without torch: its light dependencies, then the package itself with --no-deps."""
    session.install("-r", f"{LEROBOT_TESTS}/requirements-lerobot-{version}.txt")
    session.install("--no-deps", f"lerobot=={version}")


def _lerobot_tests(session: nox.Session) -> None:
    """All plugin tests against the newest pin, then the command-line schema check against each other pin."""
    newest, *others = LEROBOT_PINS
    _install_lerobot(session, newest)
    session.run(
        "pytest", LEROBOT_TESTS, *PARALLEL, *session.posargs, env={"ROBOTRAIN_REQUIRE_LEROBOT": newest}
    )
    for version in others:
        _install_lerobot(session, version)
        session.run(
            "pytest", f"{LEROBOT_TESTS}/test_lerobot_schema.py", *PARALLEL, *session.posargs,
            env={"ROBOTRAIN_REQUIRE_LEROBOT": version},
        )  # fmt: skip


@nox.session
def integration(session: nox.Session) -> None:
    """All packages together: discovery of installed distributions, the CLI end to end."""
    _install(session, *PACKAGES, compiled=False)
    session.run("pytest", "tests", *PARALLEL, *session.posargs)


def _locked(*names: str) -> list[str]:
    """``name==version`` as uv.lock pins each tool, so a new release of ruff or mypy cannot turn CI red."""
    packages = tomllib.loads(Path("uv.lock").read_text())["package"]
    versions = {package["name"]: package["version"] for package in packages}
    return [f"{name}=={versions[name]}" for name in names]


@nox.session
def lint(session: nox.Session) -> None:
    session.install(*_locked("ruff"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    _install(session, *PACKAGES, compiled=False)
    session.install(*_locked("mypy", "types-pyyaml"))
    session.run("mypy")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Packing, staging, start-up and OSMO submit against their references (minutes: not run by default)."""
    _install(session, "core")
    session.run("python", "benchmarks/payload.py", *session.posargs)
    _install(session, "plugin-osmo")
    session.run("python", "benchmarks/startup.py", *session.posargs)


@nox.session(default=False, name="lerobot-installs")
def lerobot_installs(session: nox.Session) -> None:
    """Resolve every install set the lerobot plugin can generate with `uv pip compile` (uses the index)."""
    _install(session, "plugin-lerobot")
    session.run("python", f"{LEROBOT_TESTS}/resolve_installs.py", *session.posargs)


@nox.session(default=False, name="lerobot-e2e")
def lerobot_e2e(session: nox.Session) -> None:
    """A real tiny LeRobot training on CPU on the local platform (downloads ~3 GB once; opt-in)."""
    _install(session, "core", "plugin-lerobot")
    session.run("pytest", f"{LEROBOT_TESTS}/e2e", "-v", *session.posargs, env={"ROBOTRAIN_LEROBOT_E2E": "1"})

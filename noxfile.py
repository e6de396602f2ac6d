"""One test session per package (core plus that package only), integration, lint and types."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True

PACKAGES = ["core", "plugin-azureml", "plugin-osmo", "plugin-lerobot"]
CORE = "packages/core"


def _install(session: nox.Session, *packages: str) -> None:
    """Install core and the given packages, each named package with its ``test`` extra.

    Core's own test extra (MLflow, gymnasium) comes only when core is named, so a
    plugin's session proves the plugin works with bare core.
    """
    core = f"{CORE}[test]" if "core" in packages else CORE
    plugins = [f"packages/{p}[test]" for p in packages if p != "core"]
    session.install(*(arg for path in (core, *plugins) for arg in ("-e", path)))


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests in a venv holding core and that package only."""
    _install(session, package)
    session.run("pytest", f"packages/{package}/tests", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """All packages together: discovery of installed distributions, the CLI end to end."""
    _install(session, *PACKAGES)
    session.run("pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    _install(session, *PACKAGES)
    session.install("mypy", "types-PyYAML")
    session.run("mypy")

"""Rendering a user's workflow template the way the OSMO service does, before anything is sent.

src/lib/utils/workflow.py parse_workflow_spec: only ``workflow``, ``default-values`` and ``version`` are
allowed at the top level, and only the ``workflow`` section is rendered. src/utils/job/workflow.py: the
values are default-values, then ``--set`` (int, else float, else string), then ``--set-string``; OSMO's
own tokens written without inner spaces are protected from Jinja. src/lib/utils/jinja_sandbox.py: the
renderer is ``SandboxedEnvironment(undefined=StrictUndefined)``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from jinja2 import TemplateError, meta
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from robotrain import UserError
from robotrain_osmo.spec import OSMO_TOKEN

SECTION = re.compile(
    r"^([a-zA-Z][a-zA-Z0-9_-]*):(.*?)(?=^[a-zA-Z][a-zA-Z0-9_-]*:|\Z)", re.DOTALL | re.MULTILINE
)
TOP_LEVEL = {"workflow", "default-values", "version"}


def sections(text: str, where: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in SECTION.finditer(text):
        key = match.group(1)
        if key not in TOP_LEVEL or key in found:
            raise UserError(f"{where}: top-level key {key!r} is unknown or repeated; OSMO allows workflow, "
                            f"default-values and version once each")  # fmt: skip
        found[key] = f"{key}:{match.group(2)}"
    if "workflow" not in found:
        raise UserError(f"{where}: no top-level `workflow:` section; OSMO needs one")
    return found


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined)


def _protected(text: str) -> tuple[str, dict[str, str]]:
    """OSMO's tokens replaced by variables that render back to themselves."""
    values: dict[str, str] = {}

    def hide(match: re.Match[str]) -> str:
        name = f"osmo_token_{len(values)}"
        values[name] = match.group(0)
        return "{{" + name + "}}"

    return OSMO_TOKEN.sub(hide, text), values


def expected_variables(text: str, where: str) -> set[str]:
    """The variables the ``workflow`` section uses (besides OSMO's own tokens)."""
    body, _ = _protected(sections(text, where)["workflow"])
    try:
        return set(meta.find_undeclared_variables(_environment().parse(body)))
    except TemplateError as error:
        raise UserError(f"{where}: not a valid template: {error}") from None


def render(text: str, values: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """The rendered ``workflow`` section and its parsed form; one line for any mistake."""
    parts = sections(text, where)
    defaults = _defaults(parts.get("default-values"), where)
    body, tokens = _protected(parts["workflow"])
    try:
        rendered = _environment().from_string(body).render({**defaults, **values, **tokens})
    except TemplateError as error:
        raise UserError(f"{where}: OSMO cannot render it: {_first_line(str(error))}") from None
    try:
        spec = yaml.safe_load(rendered)
    except yaml.YAMLError as error:
        raise UserError(
            f"{where}: the rendered workflow is not valid YAML: {_first_line(str(error))}"
        ) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("workflow"), dict):
        raise UserError(f"{where}: the rendered `workflow:` section is not a mapping")
    return rendered, spec


def _defaults(section: str | None, where: str) -> dict[str, Any]:
    if section is None:
        return {}
    try:
        values = (yaml.safe_load(section) or {}).get("default-values") or {}
    except yaml.YAMLError as error:
        raise UserError(f"{where}: default-values is not valid YAML: {_first_line(str(error))}") from None
    if not isinstance(values, dict):
        raise UserError(f"{where}: default-values is not a mapping")
    return values


def _first_line(text: str) -> str:
    return " ".join(text.split())[:200]

"""The rules an OSMO workflow spec must obey (reference/osmo.md), as checks returning problems.

Used by the stand-in ``osmo`` (which rejects a spec that breaks them, as the real
service does) and by the tests that inspect generated specs.
"""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
SIZE = re.compile(r"^\d+(\.\d+)?(T|Ti|TiB|G|Gi|GiB|M|Mi|MiB|K|Ki|KiB|B|m)$")
DURATION = re.compile(r"^(\d+)(d|h|m|s|ms|us)?$")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
OSMO_TOKEN = re.compile(r"\{\{(workflow_id|output|input:[A-Za-z0-9_-]+|host:[A-Za-z0-9_-]+)\}\}")
TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")
TOP_LEVEL = {"workflow", "default-values", "version"}
WORKFLOW_KEYS = {"name", "labels", "pool", "timeout", "tasks", "groups", "resources"}
TIMEOUT_KEYS = {"exec_timeout", "queue_timeout"}
RESOURCE_KEYS = {"gpu", "cpu", "memory", "storage"}
TASK_KEYS = {
    "name", "image", "command", "args", "environment", "files", "inputs", "outputs", "credentials",
    "resource", "exitActions", "privileged", "hostNetwork",
}  # fmt: skip
FILE_KEYS = {"path", "contents", "base64", "localpath"}
FILE_ENTRY_LIMIT = 1024 * 1024
ENV_STRING_LIMIT = 131_072
MAX_TASKS = 20
MAX_LABELS = 16
MAX_TIMEOUT = 60 * 86400


def template_problems(text: str) -> list[str]:
    """Template syntax other than OSMO's own tokens: the server's Jinja2 renderer would fail on it."""
    remaining = OSMO_TOKEN.sub("", text)
    return [f"template syntax left in the spec: {m.group(0)!r}" for m in TEMPLATE_SYNTAX.finditer(remaining)]


def spec_problems(spec: Any) -> list[str]:
    """Every rule of osmo.md that ``spec`` (a parsed, rendered spec) breaks."""
    if not isinstance(spec, dict):
        return ["the spec is not a mapping"]
    problems = [f"unknown top-level key {k!r}" for k in spec if k not in TOP_LEVEL]
    if "version" in spec and spec["version"] != 2:
        problems.append("version must be 2")
    workflow = spec.get("workflow")
    if not isinstance(workflow, dict):
        return [*problems, "workflow is missing"]
    return problems + _workflow_problems(workflow)


def _workflow_problems(workflow: dict[str, Any]) -> list[str]:
    problems = [f"unknown workflow key {k!r}" for k in workflow if k not in WORKFLOW_KEYS]
    if not NAME.match(str(workflow.get("name", ""))):
        problems.append(f"invalid workflow name {workflow.get('name')!r}")
    if len(workflow.get("labels") or {}) > MAX_LABELS:
        problems.append("more than 16 labels")
    if ("tasks" in workflow) == ("groups" in workflow):
        problems.append("exactly one of tasks / groups is required")
    problems += _timeout_problems(workflow.get("timeout") or {})
    resources = workflow.get("resources") or {}
    for name, resource in resources.items():
        problems += _resource_problems(name, resource)
    tasks = list(workflow.get("tasks") or [])
    for group in workflow.get("groups") or []:
        tasks += group.get("tasks") or []
    if len(tasks) > MAX_TASKS:
        problems.append("more than 20 tasks")
    names = [str(t.get("name", "")).lower().replace("_", "-") for t in tasks if isinstance(t, dict)]
    if len(set(names)) != len(names):
        problems.append("task names are not unique")
    for task in tasks:
        problems += _task_problems(task, set(resources) | {"default"})
    return problems


def duration_seconds(value: Any) -> float | None:
    match = DURATION.match(str(value))
    return None if match is None else int(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"]


def _timeout_problems(timeout: dict[str, Any]) -> list[str]:
    problems = [f"unknown timeout key {k!r}" for k in timeout if k not in TIMEOUT_KEYS]
    for key, value in timeout.items():
        seconds = duration_seconds(value)
        if seconds is None or seconds > MAX_TIMEOUT:
            problems.append(f"invalid {key} {value!r}")
    return problems


def _resource_problems(name: str, resource: Any) -> list[str]:
    if not isinstance(resource, dict):
        return [f"resource {name} is not a mapping"]
    problems = [f"unknown resource key {k!r}" for k in resource if k not in RESOURCE_KEYS]
    for key in ("gpu", "cpu"):
        if key in resource and (not isinstance(resource[key], int) or isinstance(resource[key], bool)):
            problems.append(f"resource {name}.{key} must be an integer")
    for key in ("memory", "storage"):
        if key in resource and not SIZE.match(str(resource[key])):
            problems.append(f"resource {name}.{key} {resource[key]!r} has no valid unit")
    return problems


def _task_problems(task: Any, resources: set[str]) -> list[str]:
    if not isinstance(task, dict):
        return ["a task is not a mapping"]
    problems = [f"unknown task key {k!r}" for k in task if k not in TASK_KEYS]
    problems += [f"task is missing {k}" for k in ("name", "image", "command") if not task.get(k)]
    if not isinstance(task.get("command"), list) or not all(isinstance(c, str) for c in task["command"]):
        problems.append("command must be a non-empty list of strings")
    if task.get("resource", "default") not in resources:
        problems.append(f"task resource {task.get('resource')!r} is not defined")
    problems += _environment_problems(task.get("environment") or {})
    problems += _credential_problems(task.get("credentials") or {})
    for entry in task.get("files") or []:
        problems += _file_problems(entry)
    for item in task.get("inputs") or []:
        problems += _input_problems(item)
    return problems


def _environment_problems(environment: Any) -> list[str]:
    if not isinstance(environment, dict):
        return ["environment must be a mapping"]
    problems = []
    for name, value in environment.items():
        if not isinstance(value, str):
            problems.append(f"environment {name} is not a string")
        elif len(f"{name}={value}".encode()) > ENV_STRING_LIMIT:
            problems.append(f"environment {name} is longer than 128 KiB")
    return problems


def _credential_problems(credentials: Any) -> list[str]:
    if not isinstance(credentials, dict):
        return ["credentials must be a mapping"]
    problems = []
    for name, value in credentials.items():
        if isinstance(value, dict):
            problems += [f"credential {name}: {k} -> {v!r} is not ENV: key" for k, v in value.items()
                         if not isinstance(v, str)]  # fmt: skip
        elif not isinstance(value, str):
            problems.append(f"credential {name} must map env vars to keys or name a mount path")
    return problems


def _file_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["a files entry is not a mapping"]
    problems = [f"unknown files key {k!r}" for k in entry if k not in FILE_KEYS]
    path = str(entry.get("path", ""))
    if not path or path == "/osmo" or path.startswith("/osmo/"):
        problems.append(f"file path {path!r} is missing or under /osmo")
    contents = str(entry.get("contents", ""))
    if "{{" in contents or "{%" in contents or "{#" in contents:
        problems.append(f"file {path} contains template syntax")
    if len(contents.encode()) > FILE_ENTRY_LIMIT:
        problems.append(f"file {path} is over the 1 MiB Kubernetes Secret limit")
    if "base64" in entry and not isinstance(entry["base64"], bool):
        problems.append(f"file {path}: base64 must be a boolean")
    return problems


def _input_problems(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return [f"input {item!r} is not a mapping"]
    if "url" in item:
        url_ok = isinstance(item["url"], str) and "://" in item["url"] and set(item) <= {"url", "regex"}
        return [] if url_ok else [f"url input {item!r} is not {{url: URL[, regex: R]}}"]
    if set(item) == {"dataset"}:
        value = item["dataset"]
        ok = isinstance(value, dict) and value.get("name") and set(value) <= {"name", "localpath", "regex"}
        return [] if ok else [f"dataset input {value!r} is not {{name: bucket/name[:version]}}"]
    if set(item) == {"task"}:
        return []
    return [f"input {item!r} must be one of dataset / url / task"]

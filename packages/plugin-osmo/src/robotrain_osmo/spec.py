"""The OSMO workflow spec generated from a robotrain job (version 2, one task)."""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from robotrain import JobSpec, Payload, UserError
from robotrain_osmo.config import OsmoConfig, check_workflow_name

TASK_NAME = "train"
RESOURCE_NAME = "default"
WORK_DIR = "/workspace/robotrain"
ENTRY_SCRIPT = f"{WORK_DIR}/entry.sh"
ARCHIVE_PATH = f"{WORK_DIR}/payload.tar.gz"
CODE_INPUT_ENV = "ROBOTRAIN_CODE_INPUT"
FILE_ENTRY_LIMIT = 1_000_000
"""Bytes of one ``files:`` entry: each becomes a Kubernetes Secret (1 MiB), less room for its metadata."""
ENV_STRING_LIMIT = 131_072
"""Linux MAX_ARG_STRLEN: one ``NAME=value`` environment string longer than this cannot start a process."""
PAYLOAD_ROOTS = {"isaaclab": "/workspace/isaac_payload", "lerobot": "/workspace/lerobot_payload"}
OSMO_TOKEN = re.compile(r"\{\{(workflow_id|output|input:[A-Za-z0-9_-]+|host:[A-Za-z0-9_-]+)\}\}")
TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")


@dataclass(frozen=True)
class InlineCode:
    """The code archive travels base64-encoded in a ``files:`` entry of the spec."""

    payload: Payload


@dataclass(frozen=True)
class DatasetCode:
    """The code was staged: ``reference`` is ``bucket/name[:version]`` (6.3) or a storage URL (6.4+)."""

    reference: str
    is_url: bool = False


CodeDelivery = InlineCode | DatasetCode | None


def payload_root(workload: str) -> str:
    return PAYLOAD_ROOTS.get(workload, f"/workspace/{workload}_payload")


def encoded_size(size: int) -> int:
    return 4 * ((size + 2) // 3)


def fits_inline(payload: Payload) -> bool:
    return encoded_size(payload.size) <= FILE_ENTRY_LIMIT


def too_large_inline(payload: Payload) -> UserError:
    return UserError(
        f"the code archive is {payload.size / 1e6:.1f} MB ({encoded_size(payload.size) / 1e6:.1f} MB "
        f"base64), over OSMO's 1 MiB limit for one files: entry; use --payload dataset to stage it "
        f"as an OSMO dataset, or leave files out with .amlignore"
    )


def render_spec(job: JobSpec, config: OsmoConfig, code: CodeDelivery) -> dict[str, Any]:
    """The complete workflow spec as a dict; raises UserError for anything OSMO would reject."""
    if isinstance(code, InlineCode) and not fits_inline(code.payload):
        raise too_large_inline(code.payload)
    workflow: dict[str, Any] = {
        "name": check_workflow_name(job.name),
        "timeout": {"exec_timeout": config.timeout},
    }
    resources = {k: v for k, v in vars(config.resources).items() if v is not None}
    if resources:
        workflow["resources"] = {RESOURCE_NAME: resources}
    workflow["tasks"] = [_task(job, code, bool(resources))]
    spec = {"version": 2, "workflow": workflow}
    check_rendered(spec)
    return spec


class _SpecDumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks; YAML 1.1 booleans like ``Y`` quoted for any parser."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else '"' if value.lower() in {"y", "n"} else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_SpecDumper.add_representer(str, _represent_str)


def to_yaml(spec: dict[str, Any]) -> str:
    return yaml.dump(spec, Dumper=_SpecDumper, sort_keys=False, width=120)


def _task(job: JobSpec, code: CodeDelivery, has_resources: bool) -> dict[str, Any]:
    task: dict[str, Any] = {"name": TASK_NAME, "image": job.image.uri}
    environment = dict(job.environment)
    if code is None or job.payload is None:
        task["command"] = list(job.command)
    else:
        task["command"] = ["bash", ENTRY_SCRIPT]
        task["args"] = list(job.command)
    if isinstance(code, DatasetCode):
        environment[CODE_INPUT_ENV] = "{{input:0}}"
        task["inputs"] = [{"url": code.reference} if code.is_url else {"dataset": {"name": code.reference}}]
    if environment:
        task["environment"] = environment
    if job.secrets:
        task["credentials"] = _credentials(job)
    if has_resources:
        task["resource"] = RESOURCE_NAME
    files = _files(job, code)
    if files:
        task["files"] = files
    return task


def _credentials(job: JobSpec) -> dict[str, dict[str, str]]:
    """``credentials: {SECRET: {ENV: key}}``: OSMO fills each variable from its credential store."""
    credentials: dict[str, dict[str, str]] = {}
    for ref in job.secrets:
        credentials.setdefault(ref.secret, {})[ref.env] = ref.key
    return credentials


def _files(job: JobSpec, code: CodeDelivery) -> list[dict[str, Any]]:
    root = payload_root(job.workload)
    if isinstance(code, InlineCode):
        data = base64.b64encode(code.payload.archive.read_bytes()).decode("ascii")
        return [
            {"path": ENTRY_SCRIPT, "contents": inline_entry_script(root)},
            {"path": ARCHIVE_PATH, "contents": data, "base64": True},
        ]
    if isinstance(code, DatasetCode):
        return [{"path": ENTRY_SCRIPT, "contents": dataset_entry_script(root)}]
    return []


def inline_entry_script(root: str) -> str:
    """Unpack the archive into the payload root and run the job's command there."""
    return _script(
        f"payload_root={shlex.quote(root)}",
        f"archive={shlex.quote(ARCHIVE_PATH)}",
        'mkdir -p "$payload_root"',
        'if gzip -t "$archive" 2>/dev/null; then',
        '  tar -xzf "$archive" -C "$payload_root"',
        "else",
        '  base64 -d "$archive" | tar -xz -C "$payload_root"',
        "fi",
    )


def dataset_entry_script(root: str) -> str:
    """Find the staged code under the task's first input, copy it to the payload root, run there."""
    return _script(
        f"payload_root={shlex.quote(root)}",
        f'input_dir="${CODE_INPUT_ENV}"',
        "source_root=",
        'for candidate in "$input_dir" "$input_dir"/*/ "$input_dir"/*/*/; do',
        '  if [ -d "$candidate/training" ]; then source_root="$candidate"; break; fi',
        "done",
        'if [ -z "$source_root" ]; then',
        '  echo "robotrain: no training/ folder under $input_dir" >&2',
        '  ls -la "$input_dir" >&2 || true',
        "  exit 1",
        "fi",
        'mkdir -p "$payload_root"',
        'cp -a "$source_root/." "$payload_root/"',
    )


def _script(*setup: str) -> str:
    lines = ["#!/bin/bash", "set -euo pipefail", *setup, 'cd "$payload_root"', 'exec "$@"']
    return "\n".join(lines) + "\n"


def check_rendered(spec: dict[str, Any]) -> None:
    """Refuse template syntax OSMO's renderer would choke on, and values a process cannot receive."""
    task = spec["workflow"]["tasks"][0]
    for entry in task.get("files", []):
        if TEMPLATE_SYNTAX.search(entry["contents"]):
            raise UserError(f"file {entry['path']} of the spec contains template syntax ({{{{, {{% or {{#)")
    for name, value in task.get("environment", {}).items():
        if len(f"{name}={value}".encode()) > ENV_STRING_LIMIT:
            raise UserError(f"environment variable {name} is over 128 KiB; a process cannot receive it")
    for text in _strings(spec, skip_files=True):
        if TEMPLATE_SYNTAX.search(OSMO_TOKEN.sub("", text)):
            raise UserError(
                f"the value {text[:60]!r} contains template syntax ({{{{, {{% or {{#}}) that OSMO "
                f"would try to render; remove it"
            )


def _strings(value: Any, skip_files: bool = False) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [
            s for k, v in value.items() if not (skip_files and k == "files") for s in _strings(v, skip_files)
        ]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item, skip_files)]
    return []

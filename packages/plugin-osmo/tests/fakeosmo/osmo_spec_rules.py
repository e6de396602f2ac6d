"""The rules a rendered OSMO workflow spec must obey, per version, as checks returning problems.

Each rule cites the NVIDIA/OSMO file it copies (release 6.3.1 and the 6.4 line; read with
``git show 6.3.1:PATH``). Used by the stand-in ``osmo`` (which refuses a spec that breaks them, as the
service does) and by the tests that inspect generated specs.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

Version = tuple[int, int]

# src/utils/job/task_common.py NamePattern (workflow, group and task names).
NAME = re.compile(r"^[a-zA-Z]([a-zA-Z0-9_-]*[a-zA-Z0-9])?$")
# src/utils/connectors/postgres.py WorkflowConfig.max_name_length.
MAX_NAME_LENGTH = 64
# src/utils/connectors/... ResourceSpec (memory/storage): number and one of these units.
SIZE = re.compile(r"^\d+(\.\d+)?(T|Ti|TiB|G|Gi|GiB|M|Mi|MiB|K|Ki|KiB|B|m)$")
# Kubernetes resource.Quantity: the same value goes unchanged into the pod (src/utils/job/kb_objects.py).
KUBERNETES_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?$")
# src/lib/utils/common.py to_timedelta / _convert_str_to_time: an integer with one of these units.
DURATION = re.compile(r"^(\d+)(d|h|m|s|ms|us)$")
ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
# src/utils/job/workflow.py: the tokens protected from Jinja; src/utils/job/task.py TaskSpec.parse
# substitutes them (with optional inner spaces) in the whole task, files included.
OSMO_TOKEN = re.compile(r"\{\{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)\}\}")
TOP_LEVEL = {"workflow", "default-values", "version"}  # src/lib/utils/workflow.py parse_workflow_spec
WORKFLOW_KEYS_63 = {"name", "pool", "timeout", "tasks", "groups", "resources", "backend"}
WORKFLOW_KEYS_64 = WORKFLOW_KEYS_63 | {"labels"}  # src/utils/job/workflow.py WorkflowSpec (6.4 adds labels)
TIMEOUT_KEYS = {"exec_timeout", "queue_timeout"}
RESOURCE_KEYS = {"gpu", "cpu", "memory", "storage", "platform", "nodesExcluded"}
CHECKPOINT_KEYS = {"path", "url", "frequency", "regex"}
STORAGE_URL = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
TASK_KEYS = {
    "name", "image", "command", "args", "environment", "files", "inputs", "outputs", "credentials",
    "resource", "exitActions", "privileged", "hostNetwork", "lead", "volumeMounts", "checkpoint",
    "downloadType", "cacheSize", "backend",
}  # fmt: skip  # src/utils/job/task.py TaskSpec (extra='forbid')
FILE_KEYS = {"path", "contents", "base64", "localpath"}
GROUP_KEYS = {"name", "barrier", "ignoreNonleadStatus", "tasks"}  # src/utils/job/task.py TaskGroupSpec
HOST_TOKEN = re.compile(r"\{\{[ ]*host:([^}]+?)[ ]*\}\}")
# Kubernetes Secret: 1 MiB of decoded data; each files: entry is one Secret (src/utils/job/kb_objects.py).
FILE_ENTRY_LIMIT = 1024 * 1024
ENV_STRING_LIMIT = 131_072  # Linux MAX_ARG_STRLEN: the pod cannot start a process with a longer NAME=value
# src/utils/connectors/postgres.py WorkflowConfig.max_num_tasks (default 20), checked at submit by
# src/service/core/workflow/workflow_service.py.
MAX_TASKS = 20
MAX_TIMEOUT_SECONDS = 60 * 86400  # default pool max_exec_timeout: values above are capped, not refused
# src/lib/utils/common.py DATASET_BUCKET_NAME_TAG_IN_WORKFLOW_REGEX ({ and } allowed for templates).
DATASET_IN_WORKFLOW = re.compile(r"^(([a-zA-Z0-9_{}-]+)/)?[a-zA-Z0-9_{}-]+(:[a-zA-Z0-9_{}-]*)?$")
# src/lib/utils/workflow_labels.py
LABEL_NAME = re.compile(r"^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
MAX_LABELS = 16


def parse_version(text: str) -> Version:
    major, minor, *_ = text.split(".")
    return int(major), int(minor)


def duration_seconds(value: Any) -> float | None:
    """src/utils/job/workflow.py TimeoutSpec.validate_timeout: numbers are seconds; strings need a unit."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    match = DURATION.match(text)
    if match:
        return int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    iso = ISO_DURATION.match(text)
    if iso and any(iso.groups()):
        days, hours, minutes, seconds = (float(g or 0) for g in iso.groups())
        return days * 86400 + hours * 3600 + minutes * 60 + seconds
    return None


def label_problems(labels: Any) -> list[str]:
    """src/lib/utils/workflow_labels.py validate_workflow_labels."""
    if not isinstance(labels, dict):
        return ["Workflow labels must be a map of string keys to string values."]
    problems = [f"Workflows can have at most {MAX_LABELS} labels."] if len(labels) > MAX_LABELS else []
    for key, value in labels.items():
        name = str(key).split("/")[-1]
        if not LABEL_NAME.match(name) or str(key).count("/") > 1:
            problems.append(f'Workflow label key "{key}" is not a valid Kubernetes label key.')
        if not isinstance(value, str) or not LABEL_NAME.match(value):
            problems.append(
                f'Workflow label value "{value}" is not a valid non-empty Kubernetes label value.'
            )
    return problems


def spec_problems(spec: Any, version: Version = (6, 3)) -> list[str]:
    """Every rule that ``spec`` (parsed after rendering) breaks on a service of ``version``."""
    if not isinstance(spec, dict):
        return ["the spec is not a mapping"]
    problems = [
        f'Unknown top-level key "{k}" found in the workflow spec.' for k in spec if k not in TOP_LEVEL
    ]
    if "version" in spec and spec["version"] != 2:
        problems.append("version must be 2")
    workflow = spec.get("workflow")
    if not isinstance(workflow, dict):
        return [*problems, "Workflow spec not found."]
    return problems + _workflow_problems(workflow, version)


def _workflow_problems(workflow: dict[str, Any], version: Version) -> list[str]:
    allowed = WORKFLOW_KEYS_64 if version >= (6, 4) else WORKFLOW_KEYS_63
    problems = [f"workflow: extra key {k!r} not permitted" for k in workflow if k not in allowed]
    name = str(workflow.get("name", ""))
    if not NAME.match(name):
        problems.append(f"invalid workflow name {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        problems.append(f"Workflow name {name} is longer than {MAX_NAME_LENGTH} characters")
    if "labels" in workflow and version >= (6, 4):
        problems += label_problems(workflow["labels"])
    problems += _tasks_or_groups_problems(workflow)
    problems += _timeout_problems(workflow.get("timeout") or {})
    resources = workflow.get("resources") or {}
    for resource_name, resource in resources.items():
        problems += _resource_problems(resource_name, resource)
    groups = groups_of(workflow)
    tasks = [task for group in groups for task in group.get("tasks") or []]
    if len(tasks) > MAX_TASKS:
        problems.append(f"Workflow cannot have more than {MAX_TASKS} tasks.")
    for group in workflow.get("groups") or []:
        problems += _group_problems(group)
    for group in groups:
        problems += _host_problems(group)
    for task in tasks:
        problems += _task_problems(task, set(resources) | {"default"}, version)
    return problems


def _tasks_or_groups_problems(workflow: dict[str, Any]) -> list[str]:
    """src/utils/job/workflow.py WorkflowSpec.validate_tasks_groups: tasks xor groups, and every task and
    group name unique after kb_objects.k8s_name (lower case, ``_`` as ``-``)."""
    if workflow.get("tasks") and workflow.get("groups"):
        return ["Cannot use both groups and tasks in the same workflow."]
    if not workflow.get("tasks") and not workflow.get("groups"):
        return ["Workflows need to have at least one group or one task."]
    names = [item.get("name") for item in workflow.get("tasks") or [] if isinstance(item, dict)]
    for group in workflow.get("groups") or []:
        if isinstance(group, dict):
            names.append(group.get("name"))
            names += [task.get("name") for task in group.get("tasks") or [] if isinstance(task, dict)]
    seen: set[str] = set()
    for name in (str(n).lower().replace("_", "-") for n in names if n is not None):
        if name in seen:
            return [f'Multiple tasks/groups have the same name: "{name}".']
        seen.add(name)
    return []


def groups_of(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """The workflow's groups; src/utils/job/workflow.py puts each task of ``tasks:`` in its own group
    ``<task>-group``."""
    if workflow.get("groups"):
        return [group for group in workflow["groups"] if isinstance(group, dict)]
    return [{"name": f"{task.get('name')}-group", "tasks": [task]} for task in workflow.get("tasks") or []]


def _group_problems(group: Any) -> list[str]:
    """src/utils/job/task.py TaskGroupSpec (extra='forbid'; validate_tasks): at least one task, and exactly
    one lead (a group of one task gets ``lead: true`` by itself)."""
    if not isinstance(group, dict):
        return ["a group is not a mapping"]
    name = group.get("name")
    problems = [f"group: extra key {k!r} not permitted" for k in group if k not in GROUP_KEYS]
    if not NAME.match(str(name or "")):
        problems.append(f"invalid group name {name!r}")
    for key in ("barrier", "ignoreNonleadStatus"):
        if key in group and not isinstance(group[key], bool):
            problems.append(f"group {name}: {key} must be a boolean")
    tasks = group.get("tasks") or []
    if not isinstance(tasks, list) or not tasks:
        return [*problems, f'Group "{name}" needs to have at least one task.']
    leads = [task for task in tasks if isinstance(task, dict) and task.get("lead")]
    if any(isinstance(task, dict) and not isinstance(task.get("lead", False), bool) for task in tasks):
        problems.append(f"group {name}: lead must be a boolean")
    if len(tasks) > 1 and len(leads) != 1:
        problems.append(f'Group "{name}" has {len(leads)} leader(s) but must have exactly one.')
    return problems


def _host_problems(group: dict[str, Any]) -> list[str]:
    """``{{host:TASK}}`` must name a task of the same group of more than one task.

    src/utils/job/task.py TaskGroupSpec.parse makes host tokens only for the group's own tasks, and
    TaskSpec.parse leaves any other token as it is; the pod gets a hostname, subdomain and headless
    service only in a group of more than one task (TaskGroup: ``len(self.spec.tasks) > 1``). OSMO
    accepts such a spec, and the task then fails to resolve the name; the stand-in refuses it at submit,
    so a test sees at once what would only fail at run time."""
    tasks = [task for task in group.get("tasks") or [] if isinstance(task, dict)]
    names = {str(task.get("name")) for task in tasks} if len(tasks) > 1 else set()
    problems = []
    for task in tasks:
        for target in sorted(set(HOST_TOKEN.findall(json.dumps(task)))):
            if target not in names:
                problems.append(
                    f"task {task.get('name')}: {{{{host:{target}}}}} names no task of a group of several "
                    f"tasks it is in; it would not resolve"
                )
    return problems


def _timeout_problems(timeout: dict[str, Any]) -> list[str]:
    problems = [f"timeout: extra key {k!r} not permitted" for k in timeout if k not in TIMEOUT_KEYS]
    for _key, value in timeout.items():
        if duration_seconds(value) is None:
            problems.append(
                f"Cannot recognize duration: {value}. "
                "Only support ISO 8601 (e.g. PT10S) or xd, xh, xm, xs, xms, xus"
            )
    return problems


def _resource_problems(name: str, resource: Any) -> list[str]:
    if not isinstance(resource, dict):
        return [f"resource {name} is not a mapping"]
    problems = [f"resource {name}: extra key {k!r} not permitted" for k in resource if k not in RESOURCE_KEYS]
    for key in ("gpu", "cpu"):
        if key in resource and (not isinstance(resource[key], int) or isinstance(resource[key], bool)):
            problems.append(f"resource {name}.{key} must be an integer")
    for key in ("memory", "storage"):
        if key in resource and not SIZE.match(str(resource[key])):
            problems.append(f"resource {name}.{key} {resource[key]!r} has no valid unit")
    return problems


def kubernetes_problems(spec: dict[str, Any]) -> list[str]:
    """What the service accepts but Kubernetes refuses when it creates the pod (quantities)."""
    problems = []
    for name, resource in (spec["workflow"].get("resources") or {}).items():
        for key in ("memory", "storage"):
            value = str(resource.get(key, "1Gi"))
            if not KUBERNETES_QUANTITY.match(value):
                problems.append(
                    f"pod creation failed: quantities must match the regular expression "
                    f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (resource {name}.{key} {value!r})"
                )
    return problems


def _task_problems(task: Any, resources: set[str], version: Version) -> list[str]:
    if not isinstance(task, dict):
        return ["a task is not a mapping"]
    problems = [f"task: extra key {k!r} not permitted" for k in task if k not in TASK_KEYS]
    problems += [f"task is missing {k}" for k in ("name", "image", "command") if not task.get(k)]
    if not NAME.match(str(task.get("name", ""))):
        problems.append(f"invalid task name {task.get('name')!r}")
    if not isinstance(task.get("command"), list) or not all(isinstance(c, str) for c in task["command"]):
        problems.append("command must be a non-empty list of strings")
    if task.get("resource", "default") not in resources:
        problems.append(f"task resource {task.get('resource')!r} is not defined")
    problems += _environment_problems(task.get("environment") or {})
    problems += _credential_problems(task.get("credentials") or {})
    for entry in task.get("files") or []:
        problems += _file_problems(entry)
    for item in task.get("inputs") or []:
        problems += _io_problems(item, version, "input")
    for item in task.get("outputs") or []:
        problems += _io_problems(item, version, "output")
    for entry in task.get("checkpoint") or []:
        problems += _checkpoint_problems(entry)
    return problems


def _checkpoint_problems(entry: Any) -> list[str]:
    """src/utils/job/task.py CheckpointSpec (6.3.1 and main): path, url (a storage URL,
    constants.StorageBackendPattern), frequency (seconds or a duration, not a boolean), regex."""
    if not isinstance(entry, dict) or not {"path", "url", "frequency"} <= set(entry):
        return [f"checkpoint {entry!r} needs path, url and frequency"]
    problems = [f"checkpoint: extra key {k!r} not permitted" for k in entry if k not in CHECKPOINT_KEYS]
    if not STORAGE_URL.match(str(entry["url"])):
        problems.append(f"checkpoint url {entry['url']!r} is not a storage URL")
    frequency = entry["frequency"]
    if isinstance(frequency, bool) or not isinstance(frequency, int | float | str):
        problems.append("Checkpoint frequency must be a duration, not a boolean")
    return problems


def _environment_problems(environment: Any) -> list[str]:
    if not isinstance(environment, dict):
        return ["environment must be a mapping"]
    problems = []
    for name, value in environment.items():
        if not isinstance(value, str | int | float | bool):
            problems.append(f"environment {name} is not a string")
        elif len(f"{name}={value}".encode()) >= ENV_STRING_LIMIT:
            problems.append(f"environment {name} is longer than 128 KiB: the process cannot start")
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
    """src/utils/job/task.py File: path not under /osmo (except output metadata); kb_objects.py Secret."""
    if not isinstance(entry, dict):
        return ["a files entry is not a mapping"]
    problems = [f"files: extra key {k!r} not permitted" for k in entry if k not in FILE_KEYS]
    path = str(entry.get("path", ""))
    if (
        not path
        or path == "/osmo"
        or (path.startswith("/osmo/") and not path.startswith("/osmo/data/output/"))
    ):
        problems.append(f"file path {path!r} is missing or under /osmo")
    if "base64" in entry and not isinstance(entry["base64"], bool):
        problems.append(f"file {path}: base64 must be a boolean")
    contents = str(entry.get("contents", ""))
    size = len(contents) * 3 // 4 - contents.count("=", -2) if entry.get("base64") else len(contents.encode())
    if size > FILE_ENTRY_LIMIT:
        problems.append(f"file {path}: {size} bytes is over the 1 MiB Kubernetes Secret limit")
    return problems


def _io_problems(item: Any, version: Version, kind: str) -> list[str]:
    """src/utils/job/task.py InputType / OutputType: 6.3.1 has dataset, url, task (inputs) and dataset,
    url, update_dataset (outputs); 6.4 keeps url and task inputs and url outputs only."""
    if not isinstance(item, dict):
        return [f"{kind} {item!r} is not a mapping"]
    kinds = {"input": {"url", "task", "dataset"}, "output": {"url", "dataset", "update_dataset"}}[kind]
    if version >= (6, 4):
        kinds = {"input": {"url", "task"}, "output": {"url"}}[kind]
    key = next(iter(item), None)
    if key not in kinds:
        return [
            f"{kind} {item!r}: one of {', '.join(sorted(kinds))} is required on {version[0]}.{version[1]}"
        ]
    if key == "url":
        ok = isinstance(item["url"], str) and "://" in item["url"] and set(item) <= {"url", "regex"}
        return [] if ok else [f"url {kind} {item!r} is not {{url: URL[, regex: R]}}"]
    if key in {"dataset", "update_dataset"}:
        value = item[key]
        if set(item) != {key} or not isinstance(value, dict) or not value.get("name"):
            return [f"dataset {kind} {value!r} is not {{name: bucket/name[:tag]}}"]
        if not DATASET_IN_WORKFLOW.match(str(value["name"])):
            return ['Invalid name: Name, Tag, and Bucket can only consist of lower and upper case letters, '
                    'numbers, "-", "_", "{", and "}".']  # fmt: skip
    return []


def host_names(group: dict[str, Any], workflow_id: str) -> dict[str, str]:
    """src/utils/job/task.py TaskGroupSpec.parse: ``host:TASK`` → ``<task uuid>.osmo-<group uuid>.<namespace>
    .svc.cluster.local`` for each task of the group (src/lib/utils/common.py get_group_subdomain_name);
    resolvable only in a group of more than one task."""

    def uuid(name: str) -> str:
        return hashlib.md5(f"{workflow_id}/{name}".encode()).hexdigest()

    tasks = group.get("tasks") or []
    suffix = f"osmo-{uuid(str(group.get('name')))}.osmo-workflows.svc.cluster.local"
    return (
        {str(task["name"]): f"{uuid(str(task['name']))}.{suffix}" for task in tasks} if len(tasks) > 1 else {}
    )


def substitute_tokens(
    task: dict[str, Any], workflow_id: str, hosts: dict[str, str] | None = None
) -> dict[str, Any]:
    """src/utils/job/task.py TaskSpec.parse: OSMO's tokens replaced in the whole task, files included."""
    tokens = {"workflow_id": workflow_id, "output": "/osmo/data/output"}
    tokens |= {f"host:{name}": host for name, host in (hosts or {}).items()}
    for index, _ in enumerate(task.get("inputs") or []):
        tokens[f"input:{index}"] = f"/osmo/data/input/{index}"
    text = json.dumps(task)
    for key, value in tokens.items():
        text = re.sub("{{[ ]*" + re.escape(key) + "[ ]*}}", value, text)
    return json.loads(text)  # type: ignore[no-any-return]

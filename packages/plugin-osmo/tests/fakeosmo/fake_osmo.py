"""A stand-in for the ``osmo`` CLI: the real argument shapes, exit codes, output and behaviour over time.

It parses argv like OSMO's own argparse setup for the client version it plays (``FAKE_OSMO_VERSION``,
6.3.1 by default, or 6.4.x): src/cli/workflow.py (``submit --label`` only from 6.4), dataset.py (6.3
only), data.py (6.4 only), credential.py. Submitted specs are rendered as the service renders them
(src/lib/utils/workflow.py, src/utils/job/workflow.py, src/lib/utils/jinja_sandbox.py) and checked with
the rules of osmo_spec_rules.py. Errors go where src/cli/cli.py prints them: stdout, as
``Error message:``/``Error code:`` lines in text mode or ``{"message", "code"}`` with ``-t json``.
``workflow logs`` streams: a workflow starts when first seen and writes one line per
``FAKE_OSMO_LOG_INTERVAL`` seconds (default 1), ``FAKE_OSMO_LOG_LINES`` in all (default 3), after
``FAKE_OSMO_LOG_BACKLOG`` lines it already had (default 0); it is RUNNING until its last line, then
COMPLETED; ``logs`` prints what is there, then each new line when it is written, and ends with the workflow.

Other controls: ``FAKE_OSMO_EXIT`` (force an exit code), ``FAKE_OSMO_EXIT_TIMES`` (only for the first N
calls), ``FAKE_OSMO_STATUSES`` (comma list, one per query; the last one sticks), ``FAKE_OSMO_CANCEL_FAIL``,
``FAKE_OSMO_CREDENTIALS`` (comma list of credential names that exist; ``-`` for ``list`` failing),
``FAKE_OSMO_END_STATUSES`` (comma list: the Nth workflow submitted ends in the Nth status once its
timeline is over, the last one sticks; default COMPLETED), ``FAKE_OSMO_CHECKPOINT_FILES`` (folders, a
comma list like the end statuses, empty for none: what each workflow's task writes to its checkpoint
folder), ``FAKE_OSMO_DOWNLOAD_FAIL_AFTER`` (a download stops after N files, half-way through the next,
with a connection error), ``FAKE_OSMO_HANG_SECONDS`` (the service answers that late).

Outputs are kept where the service keeps them (``$FAKE_OSMO_DIR/storage`` for URLs, ``dataset-files``
for 6.3 dataset versions, tagged) and only as OSMO uploads them (see ``settle``); ``dataset download``
(6.3) and ``data download`` (6.4) fetch them.
Every call is recorded in ``$FAKE_OSMO_DIR/calls.jsonl``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from jinja2 import TemplateError
from jinja2.runtime import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from osmo_spec_rules import (
    Version,
    groups_of,
    host_names,
    kubernetes_problems,
    parse_version,
    spec_problems,
    substitute_tokens,
)

SERVICE = "https://osmo.example.com"
EXIT_SUBMISSION, EXIT_USER, EXIT_INTERRUPTED, EXIT_SERVER, EXIT_RATE_LIMITED = 1, 2, 3, 10, 75
STORAGE_URL = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
# src/lib/utils/workflow.py parse_workflow_spec
SECTION = re.compile(
    r"^([a-zA-Z][a-zA-Z0-9_-]*):(.*?)(?=^[a-zA-Z][a-zA-Z0-9_-]*:|\Z)", re.DOTALL | re.MULTILINE
)
# src/utils/job/workflow.py: tokens hidden from Jinja
PROTECTED = re.compile(r"{{(uuid|workflow_id|output|input:[^}]+|host:[^}]+)}}")
FORCED_MESSAGES = {
    EXIT_SUBMISSION: "Workflow submit failed: the service rejected the request",
    EXIT_USER: "Invalid request",
    EXIT_SERVER: f"Server responded with status code 502 for {SERVICE}/api",
    EXIT_RATE_LIMITED: "Too many requests, please retry later",
}


class Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


STATE = Path(os.environ.get("FAKE_OSMO_DIR", "."))
VERSION_TEXT = os.environ.get("FAKE_OSMO_VERSION") or "6.3.1"
VERSION: Version = parse_version(VERSION_TEXT)


def state(name: str, default: Any) -> Any:
    path = STATE / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else default


def save(name: str, value: Any) -> None:
    path = STATE / f"{name}.json"
    path.with_suffix(".tmp").write_text(json.dumps(value))
    path.with_suffix(".tmp").replace(path)


def bump(name: str) -> int:
    count = int(state(name, 0)) + 1
    save(name, count)
    return count


def storage_url(value: str) -> str:
    if not STORAGE_URL.match(value):
        raise argparse.ArgumentTypeError(f"{value} is not a valid storage URL")
    return value


def _format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="osmo")
    commands = main.add_subparsers(dest="group", required=True)
    _format(commands.add_parser("version"))
    workflow = commands.add_parser("workflow").add_subparsers(dest="command", required=True)
    _submit_parser(workflow.add_parser("submit"))
    validate = workflow.add_parser("validate")
    validate.add_argument("workflow_file")
    for flag in ("--set", "--set-string"):
        validate.add_argument(flag, action="extend", nargs="+", default=[])
    validate.add_argument("--pool", "-p")
    _list_parser(workflow.add_parser("list"))
    query = workflow.add_parser("query")
    query.add_argument("workflow_id")
    query.add_argument("--verbose", "-v", action="store_true")
    _format(query)
    logs = workflow.add_parser("logs")
    logs.add_argument("workflow_id")
    logs.add_argument("--task", "-t")
    logs.add_argument("--retry-id", "-r", type=int)
    logs.add_argument("--error", action="store_true")
    logs.add_argument("-n", dest="last_n_lines", type=int)
    cancel = workflow.add_parser("cancel")
    cancel.add_argument("workflow_ids", nargs="+")
    cancel.add_argument("--message", "-m")
    cancel.add_argument("--force", "-f", action="store_true")
    _format(cancel)
    _credential_parsers(commands.add_parser("credential"))
    if VERSION < (6, 4):  # src/cli/dataset.py: removed in 6.4
        _dataset_parsers(commands.add_parser("dataset").add_subparsers(dest="command", required=True))
    else:  # src/cli/data.py
        data = commands.add_parser("data").add_subparsers(dest="command", required=True)
        upload = data.add_parser("upload")
        upload.add_argument("remote_uri", type=storage_url)
        upload.add_argument("local_path", nargs="+")
        upload.add_argument("--regex", "-x")
        download = data.add_parser("download")
        download.add_argument("remote_uri", type=storage_url)
        download.add_argument("local_path")
        download.add_argument("--regex", "-x")
        download.add_argument("--resume", "-r", action="store_true")
        listing = data.add_parser("list")
        listing.add_argument("remote_uri", type=storage_url)
        listing.add_argument("local_path", nargs="?")
        listing.add_argument("--regex", "-x")
        listing.add_argument("--prefix", "-p", default="")
        listing.add_argument("--recursive", "-r", action="store_true")
        listing.add_argument("--no-pager", action="store_true")
    return main


WORKFLOW_STATUSES = (
    "RUNNING", "FAILED", "COMPLETED", "PENDING", "WAITING", "FAILED_EXEC_TIMEOUT", "FAILED_SERVER_ERROR",
    "FAILED_QUEUE_TIMEOUT", "FAILED_SUBMISSION", "FAILED_CANCELED", "FAILED_BACKEND_ERROR",
    "FAILED_IMAGE_PULL", "FAILED_EVICTED", "FAILED_START_ERROR", "FAILED_START_TIMEOUT", "FAILED_PREEMPTED",
)  # fmt: skip  # src/utils/job/workflow.py WorkflowStatus


def _list_parser(listing: argparse.ArgumentParser) -> None:
    """src/cli/workflow.py ``list`` (6.3.1 and main): no filter by id; newest first from the service."""
    listing.add_argument("--count", "-c", type=int, default=20)
    listing.add_argument("--offset", "-f", type=int, default=0)
    listing.add_argument("--name", "-n")
    listing.add_argument("--order", "-o", choices=("asc", "desc"), default="asc")
    listing.add_argument("--status", "-s", choices=WORKFLOW_STATUSES, nargs="+")
    _format(listing)
    listing.add_argument("--pool", "-p", nargs="+", default=[])
    users = listing.add_mutually_exclusive_group()
    users.add_argument("--user", "-u", nargs="+", default=[])
    users.add_argument("--all-users", "-a", action="store_true")


def _submit_parser(submit: argparse.ArgumentParser) -> None:
    """src/cli/workflow.py: the nargs='+' options swallow a trailing positional."""
    submit.add_argument("workflow_file")
    _format(submit)
    submit.add_argument("--set", action="extend" if VERSION >= (6, 4) else "store", dest="set", nargs="+",
                        default=[])  # fmt: skip  # 6.3.1: the last --set wins
    submit.add_argument("--set-string", action="extend", dest="set_string", nargs="+", default=[])
    submit.add_argument("--set-env", action="extend", dest="set_env", nargs="+", default=[])
    submit.add_argument("--dry-run", action="store_true", dest="dry")
    submit.add_argument("--pool", "-p")
    submit.add_argument("--rsync")
    submit.add_argument("--priority", type=lambda x: x.upper(), choices=["HIGH", "NORMAL", "LOW"])
    if VERSION >= (6, 4):
        submit.add_argument("--label", action="append", dest="labels", default=[], metavar="KEY=VALUE")


def _credential_parsers(credential: argparse.ArgumentParser) -> None:
    """src/cli/credential.py: --format-type belongs to `credential`, before the subcommand."""
    credential.add_argument("--format-type", dest="format_type", choices=("json", "text"), default="text")
    commands = credential.add_subparsers(dest="command", required=True)
    setter = commands.add_parser("set")
    setter.add_argument("name")
    setter.add_argument("--type", default="GENERIC", choices=("GENERIC", "REGISTRY", "DATA"))
    setter.add_argument("--payload", nargs="+", default=[])
    commands.add_parser("list")


def _dataset_parsers(dataset: Any) -> None:
    upload = dataset.add_parser("upload")
    upload.add_argument("name")
    upload.add_argument("path", nargs="+")
    upload.add_argument("--desc", "-d", dest="description", default="")
    upload.add_argument("--metadata", "-m", nargs="+", default=[])
    upload.add_argument("--labels", "-l", nargs="+", default=[])
    upload.add_argument("--regex", "-x")
    upload.add_argument("--resume", "-r", action="store_true")
    download = dataset.add_parser("download")
    download.add_argument("name")
    download.add_argument("path")
    download.add_argument("--regex", "-x")
    download.add_argument("--resume", "-r", action="store_true")
    info = dataset.add_parser("info")
    info.add_argument("name")
    info.add_argument("--all", "-a", action="store_true")
    info.add_argument("--count", "-c", type=int, default=100)
    info.add_argument("--order", "-o", choices=("asc", "desc"), default="asc")
    _format(info)


def logged_in() -> bool:
    folder = os.environ.get("OSMO_CONFIG_FILE_DIR") or str(
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "osmo"
    )
    return (Path(folder) / "login.yaml").is_file()


def forced_exit() -> int | None:
    code = os.environ.get("FAKE_OSMO_EXIT")
    if not code:
        return None
    times = os.environ.get("FAKE_OSMO_EXIT_TIMES")
    if times is not None and bump("forced") > int(times):
        return None
    return int(code)


def template_data(defaults: dict[str, Any], sets: list[str], set_strings: list[str]) -> dict[str, Any]:
    """src/utils/job/workflow.py: default-values, then --set (int, float, else string), then --set-string."""
    data = dict(defaults)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise Fail(EXIT_USER, f"Data {item} is incorrectly formatted")
        data[key] = _cast(value)
    for item in set_strings:
        key, sep, value = item.partition("=")
        if not sep:
            raise Fail(EXIT_USER, f"Data {item} is incorrectly formatted")
        data[key] = value
    return data


def _cast(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def render(text: str, sets: list[str], set_strings: list[str]) -> dict[str, Any]:
    """What the service does to a submitted file: sections, Jinja (sandboxed, strict), YAML."""
    sections: dict[str, str] = {}
    for match in SECTION.finditer(text):
        if match.group(1) not in {"workflow", "default-values", "version"} or match.group(1) in sections:
            raise Fail(EXIT_USER, f'Unknown top-level key "{match.group(1)}" found in the workflow spec.')
        sections[match.group(1)] = match.group(1) + ":" + match.group(2)
    if "workflow" not in sections:
        raise Fail(EXIT_USER, "Workflow spec not found.")
    defaults = (yaml.safe_load(sections.get("default-values", "")) or {}).get("default-values") or {}
    data = template_data(defaults, sets, set_strings)
    body = sections["workflow"]
    for token in PROTECTED.findall(body):
        name = "hash" + str(int(hashlib.md5(token.strip().encode()).hexdigest(), 16))
        data[name] = "{{" + token + "}}"
        body = body.replace("{{" + token + "}}", "{{" + name + "}}")
    try:
        environment = SandboxedEnvironment(undefined=StrictUndefined)
        rendered = environment.from_string(body).render(data)
        spec = yaml.safe_load(rendered)
    except (TemplateError, yaml.YAMLError) as error:
        raise Fail(EXIT_USER, f"Error rendering the workflow spec: {error}") from None
    if "version" in sections:
        spec["version"] = (yaml.safe_load(sections["version"]) or {}).get("version")
    return spec  # type: ignore[no-any-return]


def submit(args: argparse.Namespace, record: dict[str, Any]) -> None:
    path = Path(args.workflow_file)
    if not path.is_file():
        raise Fail(EXIT_SUBMISSION, f"[Errno 2] No such file or directory: '{args.workflow_file}'")
    sets = args.set if isinstance(args.set, list) else []
    text = path.read_text(encoding="utf-8")
    record["spec_text"] = text
    spec = render(text, sets, args.set_string)
    problems = spec_problems(spec, VERSION) + kubernetes_problems(spec)
    if problems:
        raise Fail(EXIT_USER, f"Workflow submit failed: {'; '.join(problems)}")
    for label in getattr(args, "labels", []):
        key, sep, value = label.partition("=")
        problems = spec_problems({"workflow": {**spec["workflow"], "labels": {key: value}}}, VERSION)
        if not sep or problems:
            raise Fail(EXIT_USER, f"Invalid label {label}: {'; '.join(problems) or 'expected KEY=VALUE'}")
    record["rendered"] = spec
    _check_credentials(spec)
    _check_datasets(spec)
    _check_localpaths(spec, path, record)
    name = spec["workflow"]["name"]
    workflow_id = f"{name}-{bump('workflow-' + name)}"
    record["workflow_id"] = workflow_id
    record["started_tasks"] = [
        substitute_tokens(task, workflow_id, host_names(group, workflow_id))
        for group in groups_of(spec["workflow"])
        for task in group["tasks"]
    ]
    workflow(workflow_id, [
        {"name": group["name"], "tasks": [task["name"] for task in group["tasks"]]}
        for group in groups_of(spec["workflow"])
    ], kept=kept_by(record["started_tasks"]))  # fmt: skip
    print_json(args, {
        "name": workflow_id, "overview": f"{SERVICE}/workflows/{workflow_id}",
        "logs": f"{SERVICE}/api/workflow/{workflow_id}/logs", "spec": None, "dashboard_url": None,
        "warnings": [],
    })  # fmt: skip


def kept_by(started: list[dict[str, Any]]) -> dict[str, Any]:
    """What the task that declares outputs (the lead of a group) keeps: its outputs, its ``checkpoint:``
    entries and the folder its job writes checkpoints to (tokens substituted)."""
    keeper = next((task for task in started if task.get("outputs")), started[0] if started else {})
    return {
        "outputs": keeper.get("outputs") or [],
        "checkpoints": keeper.get("checkpoint") or [],
        "checkpoint_folder": (keeper.get("environment") or {}).get("TRAINING_CHECKPOINT_OUTPUT"),
    }


def _tasks(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [task for group in groups_of(spec["workflow"]) for task in group["tasks"]]


def known_credentials() -> set[str] | None:
    listed = os.environ.get("FAKE_OSMO_CREDENTIALS")
    if listed == "-":
        return None
    names = set(filter(None, (listed or "").split(",")))
    return names | set(state("credentials", {}))


def _check_credentials(spec: dict[str, Any]) -> None:
    """Server side at submit: every named credential must exist for the user."""
    known = known_credentials() or set()
    for task in _tasks(spec):
        for name in task.get("credentials") or {}:
            if name not in known:
                raise Fail(EXIT_USER, f"Could not find the credential {name}")


def _check_datasets(spec: dict[str, Any]) -> None:
    """A 6.3 dataset input must name a dataset that exists (its version too, when given)."""
    datasets = state("datasets", {})
    for task in _tasks(spec):
        for item in task.get("inputs") or []:
            if "dataset" not in item or item["dataset"].get("localpath"):
                continue
            if datasets.get(item["dataset"]["name"].partition(":")[0]) is None or (
                dataset_version(item["dataset"]["name"]) is None
            ):
                raise Fail(EXIT_USER, f"Dataset {item['dataset']['name']} does not exist")


def _check_localpaths(spec: dict[str, Any], workflow_file: Path, record: dict[str, Any]) -> None:
    uploads = []
    for task in _tasks(spec):
        for item in task.get("inputs") or []:
            localpath = (item.get("dataset") or {}).get("localpath") if "dataset" in item else None
            if localpath:
                folder = (workflow_file.parent / localpath).resolve()
                if not folder.exists():
                    raise Fail(EXIT_SUBMISSION, f"The file/path {folder} does not exist!")
                uploads.append(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()))
    record["localpath_uploads"] = uploads


def print_json(args: argparse.Namespace, data: Any) -> None:
    if getattr(args, "format_type", "text") == "json":
        print(json.dumps(data, indent=2))
    else:
        print(f"Workflow ID - {data.get('name')}")


def workflow(
    workflow_id: str, groups: list[dict[str, Any]] | None = None, kept: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The workflow's timeline, started when first seen; ``groups`` names its groups and tasks (a task of
    ``tasks:`` is in its own group ``<task>-group``, src/utils/job/workflow.py); ``kept`` its outputs
    and checkpoint entries, tokens substituted."""
    workflows = state("workflows", {})
    if workflow_id not in workflows:
        workflows[workflow_id] = {
            "groups": groups or [{"name": "train-group", "tasks": ["train"]}],
            "number": len(workflows) + 1,
            "end": _nth(os.environ.get("FAKE_OSMO_END_STATUSES") or "COMPLETED", len(workflows)),
            "kept": kept or {},
            "checkpoint_files": _nth(os.environ.get("FAKE_OSMO_CHECKPOINT_FILES") or "", len(workflows)),
            "start": time.time(),
            "interval": float(os.environ.get("FAKE_OSMO_LOG_INTERVAL", "1")),
            "lines": int(os.environ.get("FAKE_OSMO_LOG_LINES", "3")),
            "backlog": int(os.environ.get("FAKE_OSMO_LOG_BACKLOG", "0")),
        }
        save("workflows", workflows)
    return workflows[workflow_id]  # type: ignore[no-any-return]


def _nth(listed: str, index: int) -> str:
    """Item ``index`` of a comma list, the last one for any later index."""
    items = listed.split(",")
    return items[min(index, len(items) - 1)]


def line_times(timeline: dict[str, Any]) -> list[float]:
    backlog = [timeline["start"]] * timeline["backlog"]
    later = range(1, timeline["lines"] - timeline["backlog"] + 1)
    return backlog + [timeline["start"] + n * timeline["interval"] for n in later]


# src/utils/job/task.py ExitCode and src/operator/backend_listener.py calculate_pod_status: the exit code
# and failure message a task ends with, per status.
ENDINGS = {
    "FAILED": (1, "Failure reason:\n- Exit code 1 due to Task {task} failure. "),
    "FAILED_EVICTED": (3004, "Failure reason:\n- Exit code 137 due to Task {task} failure. "),  # OOMKilled
    "FAILED_PREEMPTED": (3006, "Pod was preempted at 2025-01-01 00:10:00+00:00. "),
    "FAILED_BACKEND_ERROR": (3001, "Pod {task} error message: DisruptionTarget: node is shutting down\n"),
}
OUTPUT_FOLDER = "/osmo/data/output"
"""src/utils/job/task.py TaskSpec.parse: ``{{output}}``."""
UPLOADING_ENDS = {"COMPLETED", "FAILED", "FAILED_EVICTED"}
"""src/runtime/cmd/ctrl/ctrl.go: outputs are uploaded once the command ends, succeeded or failed (an
OOMKilled container ends the command; the sidecar lives on); a pod that is deleted (preempted, evicted
by the node, lost, canceled, timed out) uploads none: the sidecar exits on SIGTERM
(docs/user_guide/workflows/lifecycle/index.rst "Task's Output Behavior")."""


def timeline_status(workflow_id: str) -> str:
    timeline = workflow(workflow_id)
    if time.time() < line_times(timeline)[-1]:
        return "RUNNING"
    settle(workflow_id, timeline)
    return str(timeline["end"])


def settle(workflow_id: str, timeline: dict[str, Any]) -> None:
    """Once a workflow has ended: what its task kept. OSMO's checkpointing uploaded its folder while the
    task ran (src/utils/job/task.py CheckpointSpec), whatever the end; the outputs were uploaded only as
    UPLOADING_ENDS says, and not at all from an empty output folder (ctrl.go uploadOutputs: "No Files in
    Output Folder")."""
    settled = state("settled", [])
    if workflow_id in settled:
        return
    output = task_output(workflow_id, timeline)
    for entry in timeline["kept"].get("checkpoints", []):
        relative = (
            Path(entry["path"]).relative_to(OUTPUT_FOLDER)
            if entry["path"].startswith(OUTPUT_FOLDER)
            else None
        )
        if relative is not None and (output / relative).is_dir():
            _copy_tree(output / relative, url_folder(entry["url"]))
    if timeline["end"] in UPLOADING_ENDS and any(output.rglob("*")):
        for item in timeline["kept"].get("outputs", []):
            if "url" in item:
                _copy_tree(output, url_folder(item["url"]))
            elif "dataset" in item:
                _copy_tree(output, new_dataset_version(item["dataset"]["name"]))
    save("settled", [*settled, workflow_id])


def task_output(workflow_id: str, timeline: dict[str, Any]) -> Path:
    """The lead task's output folder (``{{output}}``) as its command left it: ``FAKE_OSMO_CHECKPOINT_FILES``
    written where its ``TRAINING_CHECKPOINT_OUTPUT`` points."""
    output = STATE / "task-output" / workflow_id
    output.mkdir(parents=True, exist_ok=True)
    files, folder = timeline.get("checkpoint_files"), timeline["kept"].get("checkpoint_folder") or ""
    if files and folder.startswith(OUTPUT_FOLDER + "/"):
        _copy_tree(Path(files), output / Path(folder).relative_to(OUTPUT_FOLDER))
    return output


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, dirs_exist_ok=True)


def url_folder(url: str) -> Path:
    scheme, _, rest = url.partition("://")
    return STATE / "storage" / scheme / rest.strip("/")


def new_dataset_version(reference: str) -> Path:
    """A new version of ``bucket/name[:tag]``, tagged (src/runtime/pkg/data/input_output.go tags it)."""
    name, _, tag = reference.partition(":")
    versions = state("datasets", {})
    versions[name] = versions.get(name, 0) + 1
    save("datasets", versions)
    if tag:
        tags = state("dataset_tags", {})
        tags.setdefault(name, {})[tag] = versions[name]
        save("dataset_tags", tags)
    return dataset_folder(name, versions[name])


def dataset_folder(name: str, version: int) -> Path:
    return STATE / "dataset-files" / name / str(version)


def dataset_version(reference: str) -> int | None:
    """The version ``bucket/name[:tag or version]`` names (the latest without one), None if none."""
    name, _, tag = reference.partition(":")
    count = state("datasets", {}).get(name, 0)
    if not tag or tag == "latest":
        return count or None
    if tag.isdigit():
        return int(tag) if 0 < int(tag) <= count else None
    found = state("dataset_tags", {}).get(name, {}).get(tag)
    return int(found) if found else None


def query(args: argparse.Namespace) -> None:
    forced = os.environ.get("FAKE_OSMO_STATUSES")
    if forced:
        statuses = forced.split(",")
        status = statuses[min(bump("queries") - 1, len(statuses) - 1)]
    else:
        status = timeline_status(args.workflow_id)
    groups = [
        {"name": group["name"], "status": status, "tasks": [
            {"name": name, "retry_id": 0, "status": status, "start_time": "2025-01-01T00:00:00",
             **_ending(status, name)}
            for name in group["tasks"]
        ]}
        for group in workflow(args.workflow_id).get("groups") or [{"name": "train-group", "tasks": ["train"]}]
    ]  # fmt: skip
    result = {
        "name": args.workflow_id, "uuid": "0f0e0d0c", "submitted_by": "tester", "status": status,
        "submit_time": "2025-01-01T00:00:00", "spec": f"{SERVICE}/api/workflow/{args.workflow_id}/spec",
        "logs": f"{SERVICE}/api/workflow/{args.workflow_id}/logs",
        "overview": f"{SERVICE}/workflows/{args.workflow_id}", "pool": "default", "priority": "NORMAL",
        "labels": {}, "groups": groups,
    }  # fmt: skip
    print(json.dumps(result, indent=2) if args.format_type == "json" else f"Status      : {status}")


def _ending(status: str, task: str) -> dict[str, Any]:
    if status == "COMPLETED":
        return {"exit_code": 0, "failure_message": None}
    if not status.startswith("FAILED"):
        return {"exit_code": None, "failure_message": None}
    code, message = ENDINGS.get(status, (1, "Failure reason:\n- Exit code 1 due to Task {task} failure. "))
    return {"exit_code": code, "failure_message": message.format(task=task)}


def list_workflows(args: argparse.Namespace) -> None:
    """src/cli/workflow.py _list_workflows: the service returns the newest first (ListEntry fields of
    src/service/core/workflow/objects.py); ``asc`` reverses them."""
    workflows = state("workflows", {})
    newest = sorted(workflows, key=lambda name: -workflows[name]["number"])
    entries = []
    for name in newest:
        status = timeline_status(name)
        if (args.status and status not in args.status) or (args.name and args.name not in name):
            continue
        entries.append({
            "user": "tester", "name": name, "workflow_uuid": hashlib.md5(name.encode()).hexdigest(),
            "submit_time": "2025-01-01T00:00:00", "start_time": "2025-01-01T00:00:01", "end_time": None,
            "queued_time": 1.0, "duration": None, "status": status,
            "overview": f"{SERVICE}/workflows/{name}", "logs": f"{SERVICE}/api/workflow/{name}/logs",
            "error_logs": None, "grafana_url": None, "dashboard_url": None, "pool": "default",
            "app_owner": None, "app_name": None, "app_version": None, "priority": "NORMAL",
        })  # fmt: skip
    entries = entries[args.offset : args.offset + args.count]
    if args.order == "asc":
        entries.reverse()
    if args.format_type == "json":
        print(json.dumps({"workflows": entries}, indent=2))
    else:
        print("\n".join(f"{e['name']}  {e['status']}" for e in entries) or "There are no workflows to view.")


def download(files: dict[str, Path], target: Path, resume: bool, record: dict[str, Any]) -> None:
    """src/lib/data/storage/downloading.py download_worker: with ``resume`` a local file of the same size
    and checksum is skipped, another one replaced; without, every file is written again."""
    stop_after = os.environ.get("FAKE_OSMO_DOWNLOAD_FAIL_AFTER")
    transferred: list[str] = []
    record["transferred"] = transferred
    for relative, source in sorted(files.items()):
        destination = target / relative
        if resume and destination.is_file() and _same(destination, source):
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if stop_after is not None and len(transferred) >= int(stop_after):
            data = source.read_bytes()
            destination.write_bytes(data[: len(data) // 2])
            raise Fail(EXIT_SERVER, f"Connection to {SERVICE} was reset while downloading {relative}")
        shutil.copyfile(source, destination)
        transferred.append(relative)
    print(f"Downloaded {len(files)} file(s) to {target}")


def _same(local: Path, remote: Path) -> bool:
    return local.stat().st_size == remote.stat().st_size and _md5(local) == _md5(remote)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _files_under(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def dataset_download(args: argparse.Namespace, record: dict[str, Any]) -> None:
    """src/lib/data/dataset/manager.py: files land in PATH/<dataset name>/; a folder there that is not
    empty is refused unless resuming, and resuming needs a tag or version."""
    name = args.name.split(":")[0]
    version = dataset_version(args.name)
    if version is None:
        raise Fail(EXIT_USER, f"Dataset {args.name} does not exist")
    target = Path(args.path) / name.rsplit("/", 1)[-1]
    if target.is_dir() and any(target.iterdir()) and not args.resume:
        raise Fail(EXIT_USER, f"Path {target} is not empty")
    if args.resume and ":" not in args.name:
        raise Fail(EXIT_USER, "Specify specific version in order to resume.")
    download(_files_under(dataset_folder(name, version)), target, args.resume, record)


def data_download(args: argparse.Namespace, record: dict[str, Any]) -> None:
    """src/lib/data/storage/client.py: each object under the URL's prefix lands at LOCAL_PATH/<key
    relative to the prefix> (common.get_download_relative_path)."""
    download(_files_under(url_folder(args.remote_uri)), Path(args.local_path), args.resume, record)


def data_list(args: argparse.Namespace) -> None:
    """src/cli/data.py _run_list_command: one key per line."""
    folder = url_folder(args.remote_uri)
    prefix = args.remote_uri.partition("://")[2].partition("/")[2].strip("/")
    for relative in sorted(_files_under(folder)):
        print(f"{prefix}/{relative}" if prefix else relative)


def logs(args: argparse.Namespace) -> None:
    """src/cli/workflow.py _workflow_logs: a banner, then the server's stream line by line until the
    workflow ends (the service follows a Redis stream)."""
    print(f"Workflow {args.workflow_id} has logs:", flush=True)
    for number, at in enumerate(line_times(workflow(args.workflow_id)), start=1):
        wait = at - time.time()
        if wait > 0:
            time.sleep(wait)
        print(f"[train] step {number}", flush=True)


def cancel(args: argparse.Namespace) -> None:
    for workflow_id in args.workflow_ids:
        if os.environ.get("FAKE_OSMO_CANCEL_FAIL"):
            print(
                f"Workflow cancelation failed for workflow {workflow_id}: Workflow {workflow_id} is finished"
            )
        elif args.format_type == "json":
            print(json.dumps({"name": workflow_id}, indent=2))
        else:
            print(f"Cancel job for workflow {workflow_id} is submitted!")


def credential(args: argparse.Namespace) -> None:
    if args.command == "set":
        if not args.payload or any("=" not in item for item in args.payload):
            print("Error: Invalid payload format. Please use key=value pairs.")
            return
        stored = state("credentials", {})
        stored[args.name] = sorted(item.split("=", 1)[0] for item in args.payload)
        save("credentials", stored)
        print(f"Set {args.type} credential {args.name}.")
        return
    names = known_credentials()
    if names is None:
        raise Fail(EXIT_SERVER, f"Server responded with status code 503 for {SERVICE}/api/credentials")
    result = {"credentials": [{"cred_name": n, "cred_type": "GENERIC", "profile": ""} for n in sorted(names)]}
    if args.format_type == "json":
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(["Name  Type  Profile  Local", *(f"{n}  GENERIC  -  N/A" for n in sorted(names))]))


def dataset_upload(args: argparse.Namespace, record: dict[str, Any]) -> None:
    """src/cli/dataset.py: the name is [bucket/]name[:tag] of [a-zA-Z0-9_-] (src/lib/utils/common.py)."""
    if not re.fullmatch(r"(([a-zA-Z0-9_-]+)/)?[a-zA-Z0-9_-]+(:[a-zA-Z0-9_-]*)?", args.name):
        raise Fail(EXIT_USER, 'Name, Tag, and Bucket can only consist of lower and upper case letters, '
                              'numbers, "-" and "_".')  # fmt: skip
    uploads = _uploads(args.path)
    record["uploaded_files"] = sorted(uploads)
    folder = new_dataset_version(args.name)
    _store(uploads, folder)
    print(f"Dataset {args.name.split(':')[0]} version {folder.name} has been uploaded")


def _uploads(paths: list[str]) -> dict[str, Path]:
    """The files of an upload by where they go: each folder keeps its basename."""
    files: dict[str, Path] = {}
    for item in paths:
        path = Path(item)
        if not path.exists():
            raise Fail(EXIT_SUBMISSION, f"Path {item} does not exist")
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files |= {p.relative_to(path.parent).as_posix(): p for p in found}
    return files


def _store(files: dict[str, Path], folder: Path) -> None:
    for relative, source in files.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / relative)


def dataset_info(args: argparse.Namespace) -> None:
    count = state("datasets", {}).get(args.name.split(":")[0], 0)
    if not count:
        raise Fail(EXIT_USER, f"Dataset {args.name} does not exist")
    bucket, _, name = args.name.rpartition("/")
    tags = state("dataset_tags", {}).get(args.name.split(":")[0], {})
    versions = [{"version": str(v), "status": "READY", "created_by": "tester", "created_date": "2025-01-01",
                 "last_used": "2025-01-01", "size": 10, "checksum": "x",
                 "tags": sorted(t for t, n in tags.items() if n == v), "collections": []}
                for v in range(1, count + 1)]  # fmt: skip
    result = {"name": name, "id": "d1", "bucket": bucket, "type": "DATASET", "hash_location_size": 10,
              "labels": {}, "versions": versions}  # fmt: skip
    print(json.dumps(result, indent=2))


def data_upload(args: argparse.Namespace, record: dict[str, Any]) -> None:
    _store(_uploads(args.local_path), url_folder(args.remote_uri))
    record["uploaded_to"] = args.remote_uri
    print(f"Uploaded {len(args.local_path)} path(s) to {args.remote_uri}")


def version(args: argparse.Namespace) -> None:
    major, minor, revision = VERSION_TEXT.split(".")
    if args.format_type == "json":
        client = {"major": major, "minor": minor, "revision": revision, "hash": ""}
        print(json.dumps({"client": client}, indent=2))
    else:
        print(f"OSMO client version:  {major}.{minor}.{revision}")


def dispatch(args: argparse.Namespace, record: dict[str, Any]) -> None:
    if args.group == "version":
        return version(args)
    if not logged_in():
        raise Fail(EXIT_USER, "Must login first. Please run `osmo login`.")
    hang = os.environ.get("FAKE_OSMO_HANG_SECONDS")
    if hang:  # a service that does not answer
        time.sleep(float(hang))
    forced = forced_exit()
    if forced is not None:
        raise Fail(forced, FORCED_MESSAGES.get(forced, "forced failure"))
    if args.group == "credential":
        return credential(args)
    for workflow_id in state("workflows", {}):  # what ended by now has kept its outputs
        timeline_status(workflow_id)
    handlers: dict[tuple[str, str], Any] = {
        ("workflow", "submit"): lambda: submit(args, record),
        ("workflow", "query"): lambda: query(args),
        ("workflow", "list"): lambda: list_workflows(args),
        ("dataset", "download"): lambda: dataset_download(args, record),
        ("data", "download"): lambda: data_download(args, record),
        ("data", "list"): lambda: data_list(args),
        ("workflow", "logs"): lambda: logs(args),
        ("workflow", "cancel"): lambda: cancel(args),
        ("dataset", "upload"): lambda: dataset_upload(args, record),
        ("dataset", "info"): lambda: dataset_info(args),
        ("data", "upload"): lambda: data_upload(args, record),
    }
    handler = handlers.get((args.group, args.command))
    if handler is None:
        raise Fail(EXIT_USER, f"the stand-in does not implement {args.group} {args.command}")
    return handler()  # type: ignore[no-any-return]


def report(failure: Fail, args: argparse.Namespace | None) -> None:
    """src/cli/cli.py: on stdout, JSON with -t json, else Error message / Error code lines."""
    if args is not None and getattr(args, "format_type", "text") == "json":
        print(json.dumps({"message": str(failure), "code": failure.code}, indent=2))
    else:
        print("Error message:", failure)
        print("Error code:", failure.code)


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"argv": sys.argv[1:], "version": VERSION_TEXT}
    code = 0
    args = None
    try:
        args = parser().parse_args(sys.argv[1:])
        dispatch(args, record)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except Fail as failure:
        code = failure.code
        report(failure, args)
    record["exit"] = code
    with (STATE / "calls.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())

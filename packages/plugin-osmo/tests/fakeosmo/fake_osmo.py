"""A stand-in for the ``osmo`` CLI: the real argument shapes, exit codes and JSON output.

It parses argv like OSMO's own argparse setup (src/cli/workflow.py, dataset.py, data.py),
rejects what the real CLI or service rejects (login, spec rules, template syntax),
records every call to ``$FAKE_OSMO_DIR/calls.jsonl`` and prints the real shapes.

Controls (environment): ``FAKE_OSMO_VERSION`` (default 6.3.1), ``FAKE_OSMO_EXIT`` (force an
exit code), ``FAKE_OSMO_EXIT_TIMES`` (only for the first N calls), ``FAKE_OSMO_STATUSES``
(comma list, one per query; the last one sticks), ``FAKE_OSMO_CANCEL_FAIL``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from osmo_spec_rules import OSMO_TOKEN, spec_problems, template_problems

SERVICE = "https://osmo.example.com"
EXIT_SUBMISSION, EXIT_USER, EXIT_SERVER, EXIT_RATE_LIMITED = 1, 2, 10, 75
VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
STORAGE_URL = re.compile(r"^(s3|gs|azure|swift|tos)://[^/\s]+(/\S*)?$")
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


def state(name: str, default: Any) -> Any:
    path = STATE / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else default


def save(name: str, value: Any) -> None:
    (STATE / f"{name}.json").write_text(json.dumps(value))


def bump(name: str) -> int:
    count = int(state(name, 0)) + 1
    save(name, count)
    return count


def storage_url(value: str) -> str:
    if not STORAGE_URL.match(value):
        raise argparse.ArgumentTypeError(f"{value} is not a valid storage URL")
    return value


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="osmo")
    commands = main.add_subparsers(dest="group", required=True)
    version = commands.add_parser("version")
    version.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")
    workflow = commands.add_parser("workflow").add_subparsers(dest="command", required=True)
    _submit_parser(workflow.add_parser("submit"))
    validate = workflow.add_parser("validate")
    validate.add_argument("workflow_file")
    for flag in ("--set", "--set-string"):
        validate.add_argument(flag, action="extend", nargs="+", default=[])
    validate.add_argument("--pool", "-p")
    validate.add_argument("--label", action="append", dest="labels", default=[])
    query = workflow.add_parser("query")
    query.add_argument("workflow_id")
    query.add_argument("--verbose", "-v", action="store_true")
    query.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")
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
    cancel.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")
    _dataset_parsers(commands.add_parser("dataset").add_subparsers(dest="command", required=True))
    data = commands.add_parser("data").add_subparsers(dest="command", required=True)
    upload = data.add_parser("upload")
    upload.add_argument("remote_uri", type=storage_url)
    upload.add_argument("local_path", nargs="+")
    upload.add_argument("--regex", "-x")
    return main


def _submit_parser(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("workflow_file")
    submit.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")
    submit.add_argument("--set", action="extend", dest="set", nargs="+", default=[])
    submit.add_argument("--set-string", action="extend", dest="set_string", nargs="+", default=[])
    submit.add_argument("--set-env", action="extend", dest="set_env", nargs="+", default=[])
    submit.add_argument("--dry-run", action="store_true", dest="dry")
    submit.add_argument("--pool", "-p")
    submit.add_argument("--rsync")
    submit.add_argument("--priority", type=lambda x: x.upper(), choices=["HIGH", "NORMAL", "LOW"])
    submit.add_argument("--label", action="append", dest="labels", default=[], metavar="KEY=VALUE")


def _dataset_parsers(dataset: Any) -> None:
    upload = dataset.add_parser("upload")
    upload.add_argument("name")
    upload.add_argument("path", nargs="+")
    upload.add_argument("--desc", "-d", dest="description", default="")
    upload.add_argument("--metadata", "-m", nargs="+", default=[])
    upload.add_argument("--labels", "-l", nargs="+", default=[])
    upload.add_argument("--regex", "-x")
    upload.add_argument("--resume", "-r", action="store_true")
    info = dataset.add_parser("info")
    info.add_argument("name")
    info.add_argument("--all", "-a", action="store_true")
    info.add_argument("--count", "-c", type=int, default=100)
    info.add_argument("--order", "-o", choices=("asc", "desc"), default="asc")
    info.add_argument("--format-type", "-t", dest="format_type", choices=("json", "text"), default="text")


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


def render(text: str, values: dict[str, str]) -> str:
    """What the service's renderer does: variables from default-values and --set*, OSMO tokens kept."""
    protected = OSMO_TOKEN.sub(lambda m: m.group(0).replace("{{", "\0").replace("}}", "\1"), text)

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise Fail(EXIT_SUBMISSION, f"'{match.group(1)}' is undefined")
        return values[match.group(1)]

    rendered = VARIABLE.sub(value, protected)
    problems = template_problems(rendered.replace("\0", "{{").replace("\1", "}}"))
    if problems:
        raise Fail(EXIT_SUBMISSION, f"Error rendering the workflow spec: {problems[0]}")
    return rendered.replace("\0", "{{").replace("\1", "}}")


def split_defaults(text: str) -> tuple[str, dict[str, Any]]:
    """The spec without its ``default-values`` section, and that section (read before rendering)."""
    match = re.search(r"^default-values:", text, re.MULTILINE)
    if match is None:
        return text, {}
    section = yaml.safe_load(text[match.start() :]) or {}
    return text[: match.start()], section.get("default-values") or {}


def pairs(items: list[str]) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise Fail(EXIT_USER, f"{item} is not in the form <field>=<value>")
        result[key] = value
    return result


def submit(args: argparse.Namespace, record: dict[str, Any]) -> None:
    path = Path(args.workflow_file)
    if not path.is_file():
        raise Fail(EXIT_SUBMISSION, f"[Errno 2] No such file or directory: '{args.workflow_file}'")
    for label in args.labels:
        if "=" not in label:
            raise Fail(EXIT_USER, f"Invalid label {label}: expected KEY=VALUE")
    text = path.read_text(encoding="utf-8")
    record["spec_text"] = text
    body, defaults = split_defaults(text)
    values = {str(k): str(v) for k, v in defaults.items()} | pairs(args.set) | pairs(args.set_string)
    spec = yaml.safe_load(render(render(body, values), values))
    problems = spec_problems(spec)
    if problems:
        raise Fail(EXIT_SUBMISSION, f"Workflow submit failed: {'; '.join(problems)}")
    record["rendered"] = spec
    _check_localpaths(spec, path, record)
    name = spec["workflow"]["name"]
    workflow_id = f"{name}-{bump('workflow-' + name)}"
    print_json(args, {
        "name": workflow_id, "overview": f"{SERVICE}/workflows/{workflow_id}",
        "logs": f"{SERVICE}/api/workflow/{workflow_id}/logs", "spec": None, "dashboard_url": None,
        "warnings": [],
    })  # fmt: skip


def _check_localpaths(spec: dict[str, Any], workflow_file: Path, record: dict[str, Any]) -> None:
    uploads = []
    for task in spec["workflow"].get("tasks") or []:
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


def query(args: argparse.Namespace) -> None:
    statuses = (os.environ.get("FAKE_OSMO_STATUSES") or "RUNNING").split(",")
    status = statuses[min(bump("queries") - 1, len(statuses) - 1)]
    task = {"name": "train", "retry_id": 0, "status": status, "start_time": "2025-01-01T00:00:00",
            "exit_code": 1 if status.startswith("FAILED") else None,
            "failure_message": "exit code 1" if status.startswith("FAILED") else None}  # fmt: skip
    result = {
        "name": args.workflow_id, "uuid": "0f0e0d0c", "submitted_by": "tester", "status": status,
        "submit_time": "2025-01-01T00:00:00", "spec": f"{SERVICE}/api/workflow/{args.workflow_id}/spec",
        "logs": f"{SERVICE}/api/workflow/{args.workflow_id}/logs",
        "overview": f"{SERVICE}/workflows/{args.workflow_id}", "pool": "default", "priority": "NORMAL",
        "labels": {}, "groups": [{"name": "train", "status": status, "tasks": [task]}],
    }  # fmt: skip
    print(json.dumps(result, indent=2) if args.format_type == "json" else f"Status      : {status}")


def logs(args: argparse.Namespace) -> None:
    lines = 1 + int(state("queries", 0))
    print(f"Workflow {args.workflow_id} has logs:")
    for number in range(1, lines + 1):
        print(f"[train] step {number}")


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


def dataset_upload(args: argparse.Namespace, record: dict[str, Any]) -> None:
    files = []
    for item in args.path:
        path = Path(item)
        if not path.exists():
            raise Fail(EXIT_SUBMISSION, f"Path {item} does not exist")
        base = path.parent
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [str(p.relative_to(base)) for p in found]
    record["uploaded_files"] = files
    name = args.name.split(":")[0]
    versions = state("datasets", {})
    versions[name] = versions.get(name, 0) + 1
    save("datasets", versions)
    print(f"Dataset {name} version {versions[name]} has been uploaded")


def dataset_info(args: argparse.Namespace) -> None:
    count = state("datasets", {}).get(args.name.split(":")[0], 0)
    if not count:
        raise Fail(EXIT_USER, f"Dataset {args.name} does not exist")
    bucket, _, name = args.name.rpartition("/")
    versions = [{"version": str(v), "status": "READY", "created_by": "tester", "created_date": "2025-01-01",
                 "last_used": "2025-01-01", "size": 10, "checksum": "x", "tags": [], "collections": []}
                for v in range(1, count + 1)]  # fmt: skip
    result = {"name": name, "id": "d1", "bucket": bucket, "type": "DATASET", "hash_location_size": 10,
              "labels": {}, "versions": versions}  # fmt: skip
    print(json.dumps(result, indent=2))


def data_upload(args: argparse.Namespace, record: dict[str, Any]) -> None:
    for item in args.local_path:
        if not Path(item).exists():
            raise Fail(EXIT_SUBMISSION, f"Path {item} does not exist")
    record["uploaded_to"] = args.remote_uri
    print(f"Uploaded {len(args.local_path)} path(s) to {args.remote_uri}")


def version(args: argparse.Namespace) -> None:
    major, minor, revision = (os.environ.get("FAKE_OSMO_VERSION") or "6.3.1").split(".")
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
    forced = forced_exit()
    if forced is not None:
        raise Fail(forced, FORCED_MESSAGES.get(forced, "forced failure"))
    handlers: dict[tuple[str, str], Any] = {
        ("workflow", "submit"): lambda: submit(args, record),
        ("workflow", "query"): lambda: query(args),
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


def main() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"argv": sys.argv[1:]}
    code = 0
    try:
        args = parser().parse_args(sys.argv[1:])
        dispatch(args, record)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    except Fail as failure:
        code = failure.code
        if "-t" in sys.argv or "--format-type" in sys.argv:
            print(json.dumps({"message": str(failure), "code": code}))
        else:
            print(str(failure), file=sys.stderr)
    record["exit"] = code
    with (STATE / "calls.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())

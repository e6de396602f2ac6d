"""The Azure ML command job a JobSpec becomes: plain data, no Azure SDK imports."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from robotrain.errors import UserError
from robotrain.job import JobSpec, Payload
from robotrain.payload import unpack
from robotrain.settings import Settings
from robotrain.terraform import aks_compute_name

CHECKPOINTS = "checkpoints"
CHECKPOINT_ENV = "TRAINING_CHECKPOINT_OUTPUT"
STUDIO = "https://ml.azure.com/runs/{job}?wsid={workspace_id}"
_FLAG = re.compile(r"^--([A-Za-z][A-Za-z0-9_.-]*)$")
_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


@dataclass(frozen=True)
class Workspace:
    """Where jobs go: subscription, resource group and Azure ML workspace."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def studio_url(self, job_name: str) -> str:
        return STUDIO.format(job=job_name, workspace_id=self.arm_id)


_WHERE = {
    "subscription_id": (
        "no Azure subscription: set --subscription-id, AZURE_SUBSCRIPTION_ID, subscription-id in "
        "robotrain.toml, or log in with `az login`"
    ),
    "resource_group": (
        "no Azure resource group: set --resource-group, AZURE_RESOURCE_GROUP, resource-group in "
        "robotrain.toml, or point --terraform-dir at state with a resource_group output"
    ),
    "workspace_name": (
        "no Azure ML workspace: set --workspace-name, AZUREML_WORKSPACE_NAME, workspace-name in "
        "robotrain.toml, or point --terraform-dir at state with an azureml_workspace output"
    ),
}


def workspace_from(settings: Settings) -> Workspace:
    """The workspace settings, refusing any that are missing with where each can come from."""
    values = {name: settings.get(name) for name in _WHERE}
    for name, message in _WHERE.items():
        if not values[name]:
            raise UserError(message)
    return Workspace(*(str(values[name]) for name in _WHERE))


def compute_from(settings: Settings) -> str:
    compute = settings.get("compute")
    if not compute:
        raise UserError(
            "no Azure ML compute: set --compute, AZUREML_COMPUTE, compute in robotrain.toml, "
            "or point --terraform-dir at state with an aks_cluster output"
        )
    return str(compute)


def compute_from_terraform(outputs: object) -> str | None:
    """``k8s-<cluster>`` from the ``aks_cluster`` output, as the reference architecture names it."""
    get = getattr(outputs, "get", None)
    return aks_compute_name(get("aks_cluster.name")) if callable(get) else None


@dataclass(frozen=True)
class AzureJob:
    """Everything the command job needs, as the SDK takes it."""

    name: str
    spec_hash: str
    display_name: str
    experiment: str
    command: str
    code: Path | None
    environment_name: str
    environment_version: str
    image: str
    compute: str
    instance_type: str
    inputs: Mapping[str, str | int] = field(default_factory=dict)
    data_inputs: Mapping[str, str] = field(default_factory=dict)
    data_outputs: Mapping[str, str] = field(default_factory=dict)
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int | None = None
    omitted_secrets: tuple[str, ...] = ()

    @property
    def environment_ref(self) -> str:
        return f"azureml:{self.environment_name}:{self.environment_version}"


def job_document(azure_job: AzureJob) -> dict[str, object]:
    """The command job as the SDK's ``CommandJob.dump`` writes it, built without the SDK."""
    inputs: dict[str, object] = dict(azure_job.inputs)
    inputs |= {name: {"type": "uri_folder", "path": uri} for name, uri in azure_job.data_inputs.items()}
    outputs: dict[str, object] = {CHECKPOINTS: {"type": "uri_folder", "mode": "upload"}}
    outputs |= {name: {"type": "uri_folder", "mode": "upload", "path": uri}
                for name, uri in azure_job.data_outputs.items()}  # fmt: skip
    compute = azure_job.compute
    document: dict[str, object] = {
        "type": "command",
        "name": azure_job.name,
        "display_name": azure_job.display_name,
        "experiment_name": azure_job.experiment,
        "command": azure_job.command,
        "environment": azure_job.environment_ref,
        "environment_variables": dict(azure_job.environment_variables),
        "compute": compute if compute.startswith("azureml:") else f"azureml:{compute}",
        "resources": {"instance_type": azure_job.instance_type, "properties": {}},
        "identity": {"type": "managed_identity"},
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {},
        "properties": {},
        "tags": dict(azure_job.tags),
    }
    if azure_job.code is not None:
        document["code"] = str(azure_job.code)
    if azure_job.timeout_seconds is not None:
        document["limits"] = {"timeout": azure_job.timeout_seconds}
    return document


def job_yaml(azure_job: AzureJob) -> str:
    """Azure ML command job YAML (loadable with ``azure.ai.ml.load_job``), without importing the SDK."""
    return yaml.safe_dump(job_document(azure_job), sort_keys=True, default_flow_style=False)


def input_name(flag: str) -> str:
    """``--num_envs`` → ``num_envs``; ``--checkpoint-uri`` → ``checkpoint_uri``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", flag.lstrip("-"))


def translate_command(command: Sequence[str]) -> tuple[list[str], dict[str, str | int]]:
    """Turn each ``--flag value`` pair with a non-empty value into ``--flag ${{inputs.flag}}``.

    Values become typed job inputs (integers stay integers), so they show and
    can be changed in Studio; empty values stay literal empty strings.
    """
    words: list[str] = []
    inputs: dict[str, str | int] = {}
    index = 0
    while index < len(command):
        word = command[index]
        value = command[index + 1] if index + 1 < len(command) else None
        if _FLAG.match(word) and value and not value.startswith("-") and "${{" not in value:
            name = input_name(word)
            if name in inputs:
                raise UserError(f"the job command repeats {word}; give it once")
            inputs[name] = int(value) if value.isdigit() else value
            words += [word, "${{inputs." + name + "}}"]
            index += 2
            continue
        words.append(word)
        index += 1
    return words, inputs


def render_command(words: Sequence[str]) -> str:
    """A shell command line; ``${{...}}`` references are left unquoted for Azure ML to fill."""
    rendered = [w if _REFERENCE.fullmatch(w.strip()) else shlex.quote(w) for w in words]
    prefix = f"{CHECKPOINT_ENV}=${{{{outputs.{CHECKPOINTS}}}}}"
    return " ".join([prefix, *rendered])


def check_references(command: str, inputs: Mapping[str, object], outputs: Mapping[str, object]) -> None:
    """Refuse a ``${{inputs.x}}`` or ``${{outputs.x}}`` that names no input or output of the job."""
    if command.count("${{") != len(_REFERENCE.findall(command)):
        raise UserError("the job command has a malformed ${{...}} reference; close it as ${{inputs.NAME}}")
    for kind, name in _REFERENCE.findall(command):
        known = inputs if kind == "inputs" else outputs
        if name not in known:
            names = ", ".join(sorted(known)) or "none"
            raise UserError(
                f"the job command references ${{{{{kind}.{name}}}}} but the job has no {kind[:-1]} "
                f"{name!r} ({kind}: {names}); fix the command or add the {kind[:-1]}"
            )


def stage_code(payload: Payload, state_dir: Path) -> Path:
    """The payload unpacked into a folder named by its hash, so the SDK's content hash is stable."""
    folder = state_dir / "azureml" / "code" / payload.sha256
    if not (folder / ".complete").exists():
        partial = folder.with_name(folder.name + ".partial")
        if partial.exists():
            import shutil

            shutil.rmtree(partial)
        unpack(payload, partial)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        partial.rename(folder)
        (folder / ".amlignore").write_text(".complete\n.amlignore\n")
        (folder / ".complete").write_text(payload.sha256)
    return folder


def fingerprint(data: Mapping[str, object]) -> str:
    """A short hash of a JSON-ready description: the same submission gives the same value."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def check_job_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            f"--job-name {name!r}: Azure ML job names use letters, digits, '-' and '_' "
            f"(start with a letter or digit, at most 255 characters)"
        )
    return name


def new_job_name(base: str, spec_hash: str) -> str:
    """``<job>-<spec hash>-<random>``: unique per submission, chosen before anything is sent."""
    return check_job_name(f"{base}-{spec_hash}-{uuid.uuid4().hex[:6]}")


def _pending_file(state_dir: Path, spec_hash: str) -> Path:
    return state_dir / "azureml" / "pending" / f"{spec_hash}.name"


def pending_name(state_dir: Path, spec_hash: str) -> str | None:
    """The name an interrupted submission of this same job chose, so a retry cannot make a second job."""
    path = _pending_file(state_dir, spec_hash)
    return path.read_text().strip() or None if path.exists() else None


def remember_pending(state_dir: Path, azure_job: AzureJob) -> None:
    path = _pending_file(state_dir, azure_job.spec_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(azure_job.name)


def forget_pending(state_dir: Path, azure_job: AzureJob) -> None:
    _pending_file(state_dir, azure_job.spec_hash).unlink(missing_ok=True)


def build(job: JobSpec, settings: Settings, code: Path | None) -> AzureJob:
    """The Azure ML job for ``job``; every reference is checked here, before any request."""
    words, inputs = translate_command(job.command)
    command = render_command(words)
    data_inputs = dict(job.inputs)
    for name in data_inputs:
        if name in inputs:
            raise UserError(f"job input {name!r} is both a command value and a data input; rename one")
    outputs = {CHECKPOINTS: "", **job.outputs}
    check_references(command, {**inputs, **data_inputs}, outputs)
    given = settings.get("job_name")
    base = settings.get("display_name") or job.name
    description = {"job": job.to_dict(), "compute": settings.get("compute")}
    spec_hash = fingerprint(description)
    reused = pending_name(settings.state_dir, spec_hash)
    name = check_job_name(str(given)) if given else reused or new_job_name(job.name, spec_hash)
    return AzureJob(
        name=name,
        spec_hash=spec_hash,
        display_name=str(base),
        experiment=job.experiment,
        command=command,
        code=code,
        environment_name=str(settings.get("environment_name") or job.image.name),
        environment_version=str(settings.get("environment_version") or job.image.version),
        image=job.image.uri,
        compute=compute_from(settings),
        instance_type=str(settings.get("instance_type", "gpuspot")),
        inputs=inputs,
        data_inputs=data_inputs,
        data_outputs=dict(job.outputs),
        environment_variables=dict(job.environment),
        tags=dict(job.tags),
        timeout_seconds=job.timeout_seconds,
        omitted_secrets=tuple(s.env for s in job.secrets),
    )

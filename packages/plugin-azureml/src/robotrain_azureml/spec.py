"""The Azure ML command job a JobSpec becomes: plain data, no Azure SDK imports."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import yaml

from robotrain.errors import UserError
from robotrain.job import (
    CHECKPOINT_OUTPUT,
    CHECKPOINT_OUTPUT_VARIABLE,
    NODE_VARIABLES,
    RANK_VARIABLES,
    JobSpec,
    Payload,
    input_variable,
)
from robotrain.payload import unpack
from robotrain.settings import Settings
from robotrain.terraform import aks_compute_name

CHECKPOINTS = CHECKPOINT_OUTPUT
CHECKPOINT_ENV = CHECKPOINT_OUTPUT_VARIABLE
FOLDER_URIS = ("azureml://jobs/", "azureml://datastores/")
STUDIO = "https://ml.azure.com/runs/{job}?wsid={workspace_id}"
FINGERPRINT_TAG = "robotrain_fingerprint"
"""Job tag holding the submission's fingerprint: a retried PUT that finds the name taken checks it."""
KEY_VAULT_SCRIPT = "robotrain_keyvault.py"
"""The job-start wrapper (``job_start/robotrain_keyvault.py``) at the root of the code snapshot."""
KEY_VAULT_URL_VARIABLE = "ROBOTRAIN_KEY_VAULT_URL"
KEY_VAULT_SECRETS_VARIABLE = "ROBOTRAIN_KEY_VAULT_SECRETS"
WORKSPACE_KEY_VAULT = "(the workspace's Key Vault, looked up at submit)"
_JOB_START = Path(__file__).parent / "job_start" / KEY_VAULT_SCRIPT
_FLAG = re.compile(r"^--([A-Za-z][A-Za-z0-9_.-]*)$")
_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
_COMPUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,254}$")
_COMPUTE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<workspace>[^/]+)/computes/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_ASSET = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,254})(?::(?P<version>[A-Za-z0-9_.-]+))?$")
_KEY_VAULT_SECRET = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_KEY_VAULT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")

CLOUDS = {
    "AzureCloud": ("https://login.microsoftonline.com", "vault.azure.net"),
    "AzureChinaCloud": ("https://login.chinacloudapi.cn", "vault.azure.cn"),
    "AzureUSGovernment": ("https://login.microsoftonline.us", "vault.usgovcloudapi.net"),
}
"""Authority host (``azure.identity.AzureAuthorityHosts``, ``azure.ai.ml._azure_environments``) and Key
Vault DNS suffix (learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates) per cloud."""
DEFAULT_CLOUD = "AzureCloud"

PYTORCH = "pytorch"
"""The distribution type of a distributed job (``azure.ai.ml.constants.DistributionType.PYTORCH``)."""
SET_BY_AZURE_ML = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
"""What a PyTorch distribution sets: ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` and ``NODE_RANK`` on
each node, ``RANK`` and ``LOCAL_RANK`` per process (learn.microsoft.com/azure/machine-learning/
how-to-train-distributed-gpu). ``LOCAL_WORLD_SIZE`` is not among them: robotrain sets it."""
AZURE_ML_MASTER_PORT = 6105
"""The ``MASTER_PORT`` Azure ML sets (how-to-train-distributed-gpu, SDK v1: per-node-launch)."""
MAX_INT32 = 2**31 - 1
"""``instanceCount`` and ``processCountPerInstance`` are int32 in the REST API (``JobResourceConfiguration``,
``PyTorch`` in ``azure.ai.ml._restclient.arm_ml_service.models``)."""


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


def compute_from(settings: Settings, workspace: Workspace) -> str:
    """The compute's name, from ``NAME``, ``azureml:NAME`` or its ARM id in this workspace.

    ``command(compute=...)`` takes a bare name (or an ARM id); the ``azureml:`` prefix belongs in YAML
    only: passed to the SDK it would become ``.../computes/azureml:NAME``.
    """
    given = settings.get("compute")
    if not given:
        raise UserError(
            "no Azure ML compute: set --compute, AZUREML_COMPUTE, compute in robotrain.toml, "
            "or point --terraform-dir at state with an aks_cluster output"
        )
    text = str(given).strip()
    arm = _COMPUTE_ID.match(text)
    if arm:
        if arm["workspace"].lower() != workspace.workspace_name.lower() or (
            arm["group"].lower() != workspace.resource_group.lower()
        ):
            raise UserError(
                f"--compute {text}: that compute belongs to workspace {arm['workspace']} in "
                f"{arm['group']}, but the job goes to {workspace.workspace_name} in "
                f"{workspace.resource_group}; give a compute of that workspace"
            )
        name = arm["name"]
    else:
        name = text.removeprefix("azureml:")
    if not _COMPUTE_NAME.match(name):
        raise UserError(
            f"--compute {text!r}: give a compute name (letters, digits and '-', starting with a letter), "
            f"azureml:NAME or the compute's ARM id"
        )
    return name


def compute_from_terraform(outputs: object) -> str | None:
    """``k8s-<cluster>`` from the ``aks_cluster`` output, named as the attach step names it."""
    get = getattr(outputs, "get", None)
    return aks_compute_name(get("aks_cluster.name")) if callable(get) else None


def cloud_from(settings: Settings) -> str:
    return str(settings.get("cloud") or DEFAULT_CLOUD)


def authority_host(cloud: str) -> str | None:
    """The sign-in host of a named cloud; ``None`` for a cloud only ARM metadata knows."""
    known = CLOUDS.get(cloud)
    return known[0] if known else None


def key_vault_url(settings: Settings) -> str | None:
    """``https://NAME.vault.azure.net`` from ``--key-vault`` (a name or URL), else ``None``."""
    given = settings.get("key_vault")
    if not given:
        return None
    text = str(given).strip().rstrip("/")
    if text.startswith("https://"):
        return text
    if not _KEY_VAULT_NAME.match(text):
        raise UserError(
            f"--key-vault {text!r}: give the Key Vault's name (3-24 letters, digits and '-') "
            f"or its URL (https://NAME.vault.azure.net)"
        )
    suffix = CLOUDS.get(cloud_from(settings), CLOUDS[DEFAULT_CLOUD])[1]
    return f"https://{text}.{suffix}"


def default_secret_name(variable: str) -> str:
    """The Key Vault secret a variable is read from by default: ``HF_TOKEN`` → ``hf-token``."""
    return variable.lower().replace("_", "-")


def key_vault_secrets(job: JobSpec, settings: Settings) -> dict[str, str]:
    """Each secret reference's variable → the Key Vault secret name it is read from."""
    overrides: dict[str, str] = {}
    for item in settings.get("key_vault_secret", []):
        variable, sep, secret = str(item).partition("=")
        if not sep or not _KEY_VAULT_SECRET.match(secret):
            raise UserError(
                f"--key-vault-secret {item!r}: give VARIABLE=secret-name (a Key Vault secret name: "
                f"letters, digits and '-')"
            )
        overrides[variable] = secret
    variables = [ref.env for ref in job.secrets]
    unknown = sorted(set(overrides) - set(variables))
    if unknown:
        known = ", ".join(variables) or "none"
        raise UserError(
            f"--key-vault-secret {unknown[0]}: the job has no secret {unknown[0]} (its secrets: {known})"
        )
    return {variable: overrides.get(variable, default_secret_name(variable)) for variable in variables}


def data_input_path(name: str, reference: str) -> str:
    """``demos`` → ``azureml:demos@latest``; ``demos:3`` → ``azureml:demos:3`` (a staged data asset)."""
    found = _ASSET.match(reference.removeprefix("azureml:"))
    if not found:
        raise UserError(
            f"job input {name}: {reference!r} is not a data asset; give NAME or NAME:VERSION of a dataset "
            f"staged with `invoke stage-dataset --platform azureml`"
        )
    version = found["version"]
    return f"azureml:{found['name']}:{version}" if version else f"azureml:{found['name']}@latest"


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
    mounted_inputs: Mapping[str, str] = field(default_factory=dict)
    """Command values that are ``azureml://`` folders (a checkpoint to resume from): mounted read-only,
    the command gets the mounted path."""
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: int | None = None
    secrets: Mapping[str, str] = field(default_factory=dict)
    """Variable → Key Vault secret name, read at job start by the wrapper."""
    instance_count: int = 1
    """Machines (``resources.instance_count``): the job's nodes."""
    processes_per_node: int = 1
    """Training processes on each machine."""
    launches_processes: bool = False
    """Each machine runs one copy of the command, which starts that machine's processes itself."""

    @property
    def distributed(self) -> bool:
        """More than one process: the job gets a PyTorch distribution."""
        return self.instance_count * self.processes_per_node > 1

    @property
    def processes_per_instance(self) -> int:
        """Copies of the command Azure ML starts on each machine (``process_count_per_instance``)."""
        return 1 if self.launches_processes else self.processes_per_node

    @property
    def environment_ref(self) -> str:
        return f"azureml:{self.environment_name}:{self.environment_version}"

    @property
    def checkpoint_uri(self) -> str:
        """Where the checkpoints are kept: the ``checkpoints`` output of this job."""
        return job_output_uri(self.name, CHECKPOINTS)


def job_output_uri(job: str, output: str, path: str = "") -> str:
    """The documented URI of a job output: ``azureml://jobs/<job>/outputs/<output>/paths/<path>``."""
    return f"azureml://jobs/{job}/outputs/{output}/paths/{path}"


def job_document(azure_job: AzureJob) -> dict[str, object]:
    """The command job as the SDK's ``CommandJob.dump`` writes it, built without the SDK."""
    inputs: dict[str, object] = dict(azure_job.inputs)
    inputs |= {name: {"type": "uri_folder", "path": uri, "mode": "ro_mount"}
               for name, uri in {**azure_job.data_inputs, **azure_job.mounted_inputs}.items()}  # fmt: skip
    outputs: dict[str, object] = {CHECKPOINTS: {"type": "uri_folder", "mode": "upload"}}
    outputs |= {name: {"type": "uri_folder", "mode": "upload", "path": uri}
                for name, uri in azure_job.data_outputs.items()}  # fmt: skip
    resources = {"instance_type": azure_job.instance_type, "properties": {}}
    document: dict[str, object] = {
        "type": "command",
        "name": azure_job.name,
        "display_name": azure_job.display_name,
        "experiment_name": azure_job.experiment,
        "command": azure_job.command,
        "environment": azure_job.environment_ref,
        "environment_variables": dict(azure_job.environment_variables),
        "compute": f"azureml:{azure_job.compute}",
        "resources": resources,
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
    if azure_job.distributed:
        document["resources"] = {**resources, "instance_count": azure_job.instance_count}
        document["distribution"] = {
            "type": PYTORCH,
            "process_count_per_instance": azure_job.processes_per_instance,
        }
    return document


def job_yaml(azure_job: AzureJob) -> str:
    """Azure ML command job YAML (loadable with ``azure.ai.ml.load_job``), without importing the SDK."""
    text = yaml.safe_dump(job_document(azure_job), sort_keys=True, default_flow_style=False)
    if azure_job.secrets:
        vault = azure_job.environment_variables.get(KEY_VAULT_URL_VARIABLE, WORKSPACE_KEY_VAULT)
        read = ", ".join(f"{variable} <- {secret}" for variable, secret in azure_job.secrets.items())
        text = f"# secrets read at job start from Key Vault {vault}: {read}\n" + text
    if azure_job.distributed:
        text = f"# {distribution_summary(azure_job)}\n" + text
    return text


def distribution_summary(azure_job: AzureJob) -> str:
    """What a dry run says about a distributed job: machines, processes and who starts them."""
    nodes, per_node = azure_job.instance_count, azure_job.processes_per_node
    if not azure_job.launches_processes:
        how = f"Azure ML starts {per_node} per node and sets {', '.join(SET_BY_AZURE_ML)}"
    else:
        how = f"the command starts each node's processes itself, given {', '.join(NODE_VARIABLES)}"
    return f"distributed: {nodes} node(s) x {per_node} = {nodes * per_node} processes; {how}"


def input_name(flag: str) -> str:
    """``--num_envs`` → ``num_envs``; ``--checkpoint-uri`` → ``checkpoint_uri``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", flag.lstrip("-"))


def translate_command(command: Sequence[str]) -> tuple[list[str], dict[str, str | int]]:
    """Turn each ``--flag value`` pair with a shell-safe value into ``--flag ${{inputs.flag}}``.

    Values become typed job inputs (integers stay integers), so they show and can be changed in
    Studio. Azure ML pastes an input's value into the command unquoted, so only values that need no
    quoting become inputs; others (and empty values) stay quoted literals.
    """
    words: list[str] = []
    inputs: dict[str, str | int] = {}
    index = 0
    while index < len(command):
        word = command[index]
        value = command[index + 1] if index + 1 < len(command) else None
        if _FLAG.match(word) and value and not value.startswith("-") and shlex.quote(value) == value:
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


def mounted_inputs(inputs: Mapping[str, str | int]) -> dict[str, str]:
    """The command values that are Azure ML folder URIs, which the job mounts instead of passing on.

    ``azureml://jobs/<job>/outputs/<output>/paths/<path>`` (another job's output, e.g. the checkpoints of
    a preempted attempt) and ``azureml://datastores/<datastore>/paths/<path>`` are the URIs a
    ``uri_folder`` input takes (learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2).
    """
    return {name: value for name, value in inputs.items()
            if isinstance(value, str) and value.startswith(FOLDER_URIS)}  # fmt: skip


def render_command(
    words: Sequence[str],
    data_inputs: Sequence[str] = (),
    wrapped: bool = False,
    defaults: Mapping[str, str] | None = None,
) -> str:
    """A shell command line; ``${{...}}`` references are left unquoted for Azure ML to fill.

    Azure ML substitutes ``${{inputs.x}}``/``${{outputs.x}}`` in the command only, never in
    ``environment_variables``, so the paths the job needs are set as assignments in front of it.
    ``wrapped`` runs the command through the Key Vault wrapper, which sets the job's secrets first.
    ``defaults``: variables given these values unless Azure ML has set them (``NAME=${NAME:-value}``).
    """
    assignments = [f"{CHECKPOINT_ENV}=${{{{outputs.{CHECKPOINTS}}}}}"]
    assignments += [f"{input_variable(name)}=${{{{inputs.{name}}}}}" for name in data_inputs]
    assignments += [f"{name}=${{{name}:-{shlex.quote(value)}}}" for name, value in (defaults or {}).items()]
    rendered = [w if _REFERENCE.fullmatch(w.strip()) else shlex.quote(w) for w in words]
    launcher = ["${PYTHON:-python3}", KEY_VAULT_SCRIPT] if wrapped else []
    return " ".join([*assignments, *launcher, *rendered])


def check_distribution(job: JobSpec) -> None:
    """Nodes and processes per node are whole numbers from 1 to the REST API's int32 limit."""
    for count, what in (
        (job.nodes, "nodes (--nodes)"),
        (job.processes_per_node, "processes per node (--gpus)"),
    ):
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_INT32:
            raise UserError(
                f"the job asks for {count!r} {what}; Azure ML takes a whole number from 1 to {MAX_INT32}"
            )
    if job.world_size > 1:
        owned = sorted(set(job.environment) & {*RANK_VARIABLES, *NODE_VARIABLES})
        if owned:
            raise UserError(
                f"the job's environment sets {', '.join(owned)}, which the platform sets for each process "
                f"of a distributed job; remove it (--env)"
            )


def distribution_variables(job: JobSpec) -> dict[str, str]:
    """What robotrain adds to Azure ML's own rendezvous variables (``SET_BY_AZURE_ML``).

    Every process started by Azure ML gets ``LOCAL_WORLD_SIZE``; the one copy per node of a job that
    starts its processes itself gets ``NNODES`` and ``NPROC_PER_NODE``.
    """
    if job.world_size == 1:
        return {}
    if job.launches_processes:
        return {"NNODES": str(job.nodes), "NPROC_PER_NODE": str(job.processes_per_node)}
    return {"LOCAL_WORLD_SIZE": str(job.processes_per_node)}


def single_node_rendezvous(job: JobSpec) -> dict[str, str]:
    """For one node whose command starts its processes itself: rendezvous on the node, unless Azure ML
    set the variables (it documents them for a PyTorch distribution, not whether one instance gets them)."""
    if job.world_size == 1 or not job.launches_processes or job.nodes > 1:
        return {}
    return {"NODE_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(AZURE_ML_MASTER_PORT)}


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


def stage_code(payload: Payload | None, state_dir: Path) -> Path:
    """The payload unpacked, with the Key Vault wrapper, into a folder named by its hash.

    The same payload gives the same folder, so the SDK's content hash is stable and unchanged
    code is not uploaded again.
    """
    key = payload.sha256 if payload is not None else "no-payload"
    folder = state_dir / "azureml" / "code" / key
    if not (folder / ".complete").exists():
        partial = folder.with_name(folder.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        if payload is not None:
            unpack(payload, partial)
        partial.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_JOB_START, partial / KEY_VAULT_SCRIPT)
        (partial / ".amlignore").write_text(".complete\n.amlignore\n")
        (partial / ".complete").write_text(key)
        if folder.exists():
            shutil.rmtree(folder)
        partial.rename(folder)
    return folder


def fingerprint(data: Mapping[str, object]) -> str:
    """A short hash of a JSON-ready description: the same submission gives the same value."""
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def check_job_name(name: str, what: str = "--job-name") -> str:
    if not _NAME.match(name) or len(name) > 240:
        raise UserError(
            f"{what} {name!r}: Azure ML job names use letters, digits, '-' and '_' "
            f"(start with a letter or digit, at most 240 characters here)"
        )
    return name


def new_job_name(prefix: str, spec_hash: str) -> str:
    """``<prefix>-<spec hash>-<random>``: unique per submission, chosen before anything is sent."""
    return f"{prefix}-{spec_hash}-{uuid.uuid4().hex[:6]}"


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


def build(
    job: JobSpec,
    settings: Settings,
    code: Path | None,
    vault_url: str | None = None,
    authority: str | None = None,
) -> AzureJob:
    """The Azure ML job for ``job``; every reference is checked here, before any request.

    ``vault_url`` is the Key Vault the secrets are read from (default: ``--key-vault``);
    ``authority`` the sign-in host of the selected cloud (default: the named cloud's).
    """
    workspace = workspace_from(settings)
    words, inputs = translate_command(job.command)
    mounted = mounted_inputs(inputs)
    inputs = {name: value for name, value in inputs.items() if name not in mounted}
    data_inputs = {name: data_input_path(name, ref) for name, ref in job.inputs.items()}
    for name in data_inputs:
        if name in inputs:
            raise UserError(f"job input {name!r} is both a command value and a data input; rename one")
    secrets = key_vault_secrets(job, settings)
    check_distribution(job)
    command = render_command(words, list(data_inputs), bool(secrets), single_node_rendezvous(job))
    check_references(command, {**inputs, **data_inputs, **mounted}, {CHECKPOINTS: "", **job.outputs})
    environment = {**job.environment, **distribution_variables(job)}
    authority = authority or authority_host(cloud_from(settings))
    if authority and "AZURE_AUTHORITY_HOST" in environment:
        environment["AZURE_AUTHORITY_HOST"] = authority.rstrip("/")
    if secrets:
        environment[KEY_VAULT_URL_VARIABLE] = vault_url or key_vault_url(settings) or WORKSPACE_KEY_VAULT
        environment[KEY_VAULT_SECRETS_VARIABLE] = ",".join(f"{v}={s}" for v, s in secrets.items())
    prefix = check_job_name(str(job.name))
    given = settings.get("job_name")
    draft = AzureJob(
        name="",
        spec_hash="",
        display_name=str(settings.get("display_name") or given or job.name),
        experiment=job.experiment,
        command=command,
        code=code,
        environment_name=str(settings.get("environment_name") or job.image.name),
        environment_version=str(settings.get("environment_version") or job.image.version),
        image=job.image.uri,
        compute=compute_from(settings, workspace),
        instance_type=str(settings.get("instance_type", "gpuspot")),
        inputs=inputs,
        data_inputs=data_inputs,
        data_outputs=dict(job.outputs),
        mounted_inputs=mounted,
        environment_variables=environment,
        tags=dict(job.tags),
        timeout_seconds=job.timeout_seconds,
        secrets=secrets,
        instance_count=job.nodes,
        processes_per_node=job.processes_per_node,
        launches_processes=job.launches_processes,
    )
    spec_hash = fingerprint(_fingerprinted(draft, job))
    name = pending_name(settings.state_dir, spec_hash) or new_job_name(prefix, spec_hash)
    tags = {**draft.tags, FINGERPRINT_TAG: spec_hash}
    return replace(draft, name=name, spec_hash=spec_hash, tags=tags)


def _fingerprinted(draft: AzureJob, job: JobSpec) -> dict[str, object]:
    """Everything that changes the job: the request without its name, and the code's content."""
    described = asdict(draft)
    described.pop("name")
    described.pop("spec_hash")
    described["code"] = job.payload.sha256 if job.payload is not None else None
    return described

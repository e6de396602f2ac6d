"""A local HTTPS server that answers the Azure REST calls azure-ai-ml makes, recording each request.

It plays Entra ID (OIDC discovery and the token endpoint for tenant ``adfs``),
the ARM cloud metadata endpoint, Azure ML's management API (a generic store of
PUT resources) and Blob Storage (IP-style and ``<account>.blob.fake.test``).
"""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from robotrain.testing import run_cli

STORAGE_SUFFIX = "fake.test"
ACCOUNT = "fakestore"
CONTAINER = "azureml-blobstore"
_WORKSPACE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/[^/]+"
)
Response = tuple[int, dict[str, str], bytes]


@dataclass
class Recorded:
    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    body: Any
    at: float = 0.0
    """``time.monotonic()`` when it arrived."""
    headers: dict[str, str] = field(default_factory=dict)
    """Its headers, names in lower case."""


GUARD = Path(__file__).parent / "network_guard"
WORKSPACE = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000001",
    "AZURE_RESOURCE_GROUP": "rg-robotics-dev-001",
    "AZUREML_WORKSPACE_NAME": "mlw-robotics-dev-001",
}


def make_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 and *.blob.fake.test: (ca, cert, key) PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "robotrain test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(*[False] * 5, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    names = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName(f"*.blob.{STORAGE_SUFFIX}"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(authority, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_path, cert_path, key_path


JOB_STATES = ("Queued", "Preparing", "Starting", "Running", "Finalizing", "Completed")
"""A job's way through the service's states (``azure.ai.ml.operations._run_history_constants.JobStatus``):
created as NotStarted, one step further on each read of its state."""
LOG_FROM = ("Running", "Finalizing", "Completed", "Failed", "Canceled")
"""States in which the job's user log exists (it is written by the running job)."""
TERMINAL = ("Completed", "Failed", "Canceled")
USER_LOG = "user_logs/std_log.txt"
"""Where a command job's own output goes (``JobLogPattern.COMMON_RUNTIME_STREAM_LOG_PATTERN``)."""
ARTIFACT_CONTAINER = "azureml"
"""The workspace artifact store's container, where a run's logs live under ``ExperimentRun/dcid.<job>/``
(the SDK's fallback for the ``default`` output in ``JobOperations._get_named_output_uri``)."""
PREEMPTION_ERROR = (
    "AzureMLCompute job failed. PreemptionError: Nodes of this job got pre-empted. Check if the run has "
    "failed or restarted. Reason: Received pre-emption warning signal"
)
"""The run error of a low-priority job that ended Failed when its node was taken, as users report it
(MicrosoftDocs/azure-docs#66288, Azure/MachineLearningNotebooks#1242, microsoft/MLOpsPython#346)."""
PREEMPTION_WARNING = "Low priority compute preemption warning: a node has been preempted."
"""The run warning of a low-priority job the service restarted itself (hi-ml docs/source/lowpriority.md:
the job goes back to a machine later, its earlier files are there again)."""
REQUEUED = ("Queued", "Running", "Queued", "Preparing", "Running", "Completed")
"""A job preempted and restarted by the service: back to Queued under the same name, then on to its end."""
OUT_OF_MEMORY_ERROR = "Execution failed: the container was terminated (reason: OOMKilled, exit code 137)"
"""A run error when the job's container exceeded its memory limit on Kubernetes compute. Azure ML does
not document this wording; OOMKilled is Kubernetes' termination reason for it (the fake's own text)."""
MSI_SECRET = "msi-header-secret"
VAULT_TOKEN = "vault-token"
DEFAULT_COMPUTES = ("k8s-robotics-dev", "c1", "gpu", "k8s-x", "k8s-robotics")
_ASSET_CONTENT = {"data": "dataUri", "models": "modelUri", "environments": "image"}
"""The property that is an asset version's content: a version that exists keeps it for good."""


@dataclass
class Failure:
    """An injected answer: ``status`` with an ARM error body, ``times`` times, before normal handling.

    ``after`` answers the error after handling the request (the change is made, the answer is lost).
    429 and 503 carry ``Retry-After`` as ARM's throttling does
    (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
    """

    method: str
    pattern: str
    status: int
    code: str = "Injected"
    times: int = 1
    retry_after: int = 0
    after: bool = False
    body: bytes | None = None
    """Answer these bytes instead of an ARM error (a malformed answer)."""


@dataclass
class JobScript:
    """How one created job behaves (``FakeAzure.scripts`` are taken in order by the next jobs)."""

    states: tuple[str, ...] = JOB_STATES
    """The states after NotStarted, one step further on each read."""
    error: str | None = None
    """Its run error when it ends Failed (default: ``FakeAzure.failure_message``)."""
    warnings: tuple[str, ...] = ()
    """Its run warnings (``RunDetails.warnings``)."""
    checkpoints: dict[str, bytes] = field(default_factory=dict)
    """Files it leaves in its ``checkpoints`` output. The output's mode is ``upload``: Azure ML uploads
    the folder when the job ends (learn.microsoft.com/azure/machine-learning/how-to-read-write-data-v2),
    so they appear in storage with Finalizing or the job's end, not while it runs."""


@dataclass
class FakeAzure:
    """The server's state: recorded requests, ARM resources, blobs, jobs over time, injected failures."""

    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    code_hashes: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    computes: set[str] = field(default_factory=lambda: set(DEFAULT_COMPUTES))
    job_states: tuple[str, ...] = JOB_STATES
    """The states the next created jobs go through after NotStarted."""
    job_log: tuple[str, ...] = ("step 1 loss 0.90", "step 2 loss 0.45", "training done")
    failure_message: str = "training script exited with code 1"
    upcoming: dict[str, list[str]] = field(default_factory=dict)
    """Job path → the states it still goes through."""
    scripts: list[JobScript] = field(default_factory=list)
    """How the next created jobs behave, in order; then ``job_states``."""
    job_scripts: dict[str, JobScript] = field(default_factory=dict)
    vault_secrets: dict[str, str] = field(default_factory=dict)
    """Secrets of the fake Key Vault at ``<url>/keyvault``, by secret name."""
    headers: dict[str, str] = field(default_factory=dict)
    """The headers of the request being handled."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def environ(self, ca: Path) -> dict[str, str]:
        """What a client process needs to talk to this fake and nothing else."""
        return {
            "REQUESTS_CA_BUNDLE": str(ca),
            "SSL_CERT_FILE": str(ca),
            "ARM_CLOUD_METADATA_URL": f"{self.url}/metadata/endpoints?api-version=2019-05-01",
            "AZURE_TENANT_ID": "adfs",
            "AZURE_CLIENT_ID": "robotrain-tests",
            "AZURE_CLIENT_SECRET": "not-a-secret",
            "AZURE_AUTHORITY_HOST": self.url,
            "AZUREML_RUN_POLLING_INTERVAL_MIN": "0",  # the SDK's own knob: poll run history at once
        }

    def reset(self) -> None:
        with self.lock:
            for store in (self.requests, self.failures, self.resources, self.blobs, self.code_hashes,
                          self.upcoming, self.scripts, self.job_scripts):  # fmt: skip
                store.clear()
            self.computes = set(DEFAULT_COMPUTES)
            self.vault_secrets.clear()
            self.job_states = JOB_STATES

    def fail(self, method: str, pattern: str, status: int, code: str = "Injected", **how: Any) -> None:
        with self.lock:
            self.failures.append(Failure(method, pattern, status, code, **how))

    def find(self, method: str, pattern: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Created jobs by name."""
        with self.lock:
            return {p.rsplit("/", 1)[-1]: r for p, r in self.resources.items() if "/jobs/" in p}

    def job_state(self, name: str) -> str:
        return str(self.jobs()[name]["properties"]["status"])

    def set_job_state(self, name: str, state: str, then: tuple[str, ...] = ()) -> None:
        with self.lock:
            for path, resource in self.resources.items():
                if path.endswith(f"/jobs/{name}"):
                    resource["properties"]["status"] = state
                    self.upcoming[path] = list(then)

    def output_key(self, job: str, output: str = "checkpoints") -> str:
        """Where a job's output without a path lives: ``azureml/<job>/<output>/`` on the default datastore
        (the SDK looks there, ``JobOperations._get_named_output_uri``)."""
        return f"{ACCOUNT}/{CONTAINER}/azureml/{job}/{output}/"

    def log_key(self, job: str) -> str:
        return f"{ACCOUNT}/{ARTIFACT_CONTAINER}/ExperimentRun/dcid.{job}/{USER_LOG}"

    def blob_gets(self, pattern: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and _is_blob(r.host, r.path)
                    and "comp" not in r.query and re.search(pattern, r.path)]  # fmt: skip

    def blob_puts(self) -> list[Recorded]:
        """Blob content uploads (not the metadata updates that confirm them)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.method == "PUT" and _is_blob(r.host, r.path) and "comp" not in r.query
            ]

    # ---- handling -------------------------------------------------------------------------------

    def handle(
        self, method: str, host: str, raw_path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> Response:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        payload: Any = None
        if body and not _is_blob(host, path):
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode("utf-8", "replace")
        with self.lock:
            self.headers = {k.lower(): v for k, v in (headers or {}).items()}
            self.requests.append(Recorded(method, host, path, query, payload, time.monotonic(), self.headers))
            failure = self._injected(method, path)
            if failure is not None and not failure.after:
                return _failure(failure)
            if _is_blob(host, path):
                answer = self._blob(method, host, path, query, body)
            else:
                answer = self._route(method, path, query, payload)
            return _failure(failure) if failure is not None else answer

    def _injected(self, method: str, path: str) -> Failure | None:
        for failure in self.failures:
            if failure.method == method and re.search(failure.pattern, path):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return failure
        return None

    def _route(self, method: str, path: str, query: dict[str, list[str]], payload: Any) -> Response:
        if path == "/metadata/endpoints":
            return _json(200, self._cloud())
        if path == "/discovery":  # the workspace's discoveryUrl: where run history lives
            return _json(200, {"api": self.url, "history": self.url, "catalog": self.url})
        if path == "/msi/token":
            return self._managed_identity_token(query)
        if path.startswith("/keyvault/secrets/"):
            return self._vault_secret(path.removeprefix("/keyvault/secrets/"), query)
        if path.endswith("/.well-known/openid-configuration"):
            return _json(
                200,
                {
                    "issuer": f"{self.url}/adfs",
                    "authorization_endpoint": f"{self.url}/adfs/oauth2/authorize",
                    "token_endpoint": f"{self.url}/adfs/oauth2/token",
                },
            )
        if path.endswith("/oauth2/token") or path.endswith("/oauth2/v2.0/token"):
            return _json(200, {"access_token": "fake-token", "token_type": "Bearer", "expires_in": 3600})
        history = path.startswith("/history/v1.0/")
        workspace = _WORKSPACE.match(path.removeprefix("/history/v1.0") if history else path)
        if workspace is None:
            return _json(404, {"error": {"code": "NotFound", "message": f"no route {path}"}})
        base = path.removeprefix("/history/v1.0")[: workspace.end()]
        rest = path.removeprefix("/history/v1.0")[workspace.end() :]
        if history:
            return self._run_history(base, rest)
        if rest == "":
            return _json(200, self._workspace(path))
        return self._workspace_route(method, path, rest, query, payload)

    def _workspace_route(
        self, method: str, path: str, rest: str, query: dict[str, list[str]], payload: Any
    ) -> Response:
        if rest.endswith("/startPendingUpload"):
            blob = f"{self.url}/{ACCOUNT}/{CONTAINER}/LocalUpload/{uuid.uuid4().hex}"
            return _json(
                200,
                {
                    "blobReferenceForConsumption": {
                        "blobUri": blob,
                        "credential": {"credentialType": "SAS", "sasUri": blob + "?sig=fake"},
                    },
                    "pendingUploadId": uuid.uuid4().hex,
                    "pendingUploadType": "TemporaryBlobReference",
                },
            )
        if rest.endswith("/listSecrets"):
            return _json(200, {"secretsType": "Sas", "sasToken": "sig=fake"})
        if rest.endswith("/cancel") and method == "POST":
            return self._cancel(path.removesuffix("/cancel"))
        if rest.startswith("/datastores/"):
            return _json(200, self._datastore(path))
        if rest == "/datastores" and method == "GET":
            return _json(200, {"value": [self._datastore(path + "/workspaceblobstore")]})
        if method == "PUT" and rest.startswith("/jobs/"):
            return self._create_job(path, payload)
        if method == "PUT":
            return self._put_resource(path, rest, payload)
        if method == "GET" and rest.endswith("/versions"):
            return _json(200, {"value": self._versions(path, rest, query)})
        if method == "GET" and path in self.resources:
            if rest.startswith("/jobs/"):
                return _json(200, self._read_job(path))
            return _json(200, self.resources[path])
        return _json(404, {"error": {"code": "UserError", "message": f"{rest} not found"}})

    # ---- jobs: unique names, known computes and assets, states over time, run history ----------

    def _create_job(self, path: str, payload: Any) -> Response:
        name = path.rsplit("/", 1)[-1]
        if path in self.resources:
            # Job names are unique in a workspace for good ("a job with this ID already exists",
            # Azure/azureml-previews#37); the status code is not documented, 409 is ARM's for a conflict.
            return _json(
                409, {"error": {"code": "UserError", "message": f"A job with this ID already exists: {name}"}}
            )
        properties = dict((payload or {}).get("properties") or {})
        compute = str(properties.get("computeId") or "")
        if compute.rsplit("/", 1)[-1] not in self.computes or "/computes/" not in compute:
            # The service resolves computeId in the workspace (reference/azureml.md: "azureml:NAME"
            # sent to the SDK becomes .../computes/azureml:NAME, which does not exist).
            return _json(400, {"error": {"code": "UserError", "message": f"Compute {compute} not found"}})
        refused = _distribution_error(properties)
        if refused:
            return _json(400, {"error": {"code": "UserError", "message": refused}})
        for input_name, value in (properties.get("inputs") or {}).items():
            uri = str(value.get("uri") or "") if isinstance(value, dict) else ""
            asset = uri.removeprefix("azureml:")
            if "/data/" in asset and asset not in self.resources:
                # An input naming a data asset version must exist (REST: Jobs - Create Or Update).
                return _json(
                    400, {"error": {"code": "UserError", "message": f"input {input_name}: {uri} not found"}}
                )
        properties["status"] = "NotStarted"
        properties["services"] = {
            "Studio": {"jobServiceType": "Studio", "endpoint": f"https://ml.fake.test/runs/{name}"}
        }
        resource = {**dict(payload or {}), "properties": properties} | self._identity(path)
        self.resources[path] = resource
        script = self.scripts.pop(0) if self.scripts else JobScript(self.job_states)
        self.job_scripts[path] = script
        self.upcoming[path] = list(script.states)
        return _json(201, resource)

    def _read_job(self, path: str) -> dict[str, Any]:
        """The job as it is now; the next read sees it one state further."""
        resource = self.resources[path]
        answer = json.loads(json.dumps(resource))
        upcoming = self.upcoming.get(path)
        if upcoming:
            resource["properties"]["status"] = upcoming.pop(0)
            if resource["properties"]["status"] in (*TERMINAL, "Finalizing"):
                self._upload_outputs(path)
        return answer

    def _upload_outputs(self, path: str) -> None:
        """What upload mode does when the job ends: its checkpoints folder reaches storage."""
        script = self.job_scripts.get(path)
        if script is not None:
            prefix = self.output_key(path.rsplit("/", 1)[-1])
            self.blobs.update({prefix + name: data for name, data in script.checkpoints.items()})

    def _cancel(self, path: str) -> Response:
        """CancelRequested first, Canceled on a later read (SDK: ``_run_history_constants.JobStatus``)."""
        job = self.resources.get(path)
        if job is None:
            return _json(404, {"error": {"code": "UserError", "message": "job not found"}})
        if job["properties"]["status"] not in TERMINAL:
            job["properties"]["status"] = "CancelRequested"
            self.upcoming[path] = ["Canceled"]
        return 202, {"Content-Length": "0"}, b""

    def _run_history(self, base: str, rest: str) -> Response:
        """``GET .../runs/<name>/details`` (the SDK's runhistory ``RunDetails``): state and log files."""
        found = re.fullmatch(r"/runs/([^/]+)/details", rest)
        job_path = f"{base}/jobs/{found.group(1)}" if found else ""
        if job_path not in self.resources:
            return _json(404, {"error": {"code": "UserError", "message": f"run {rest} not found"}})
        job = self._read_job(job_path)
        state = job["properties"]["status"]
        name = job_path.rsplit("/", 1)[-1]
        script = self.job_scripts.get(job_path) or JobScript()
        warnings = [{"source": "Compute", "message": text} for text in script.warnings]
        details: dict[str, Any] = {"runId": name, "status": state, "warnings": warnings, "logFiles": {}}
        if state in LOG_FROM:
            # Log files are SAS URLs of blobs in the artifact store (RunDetails.logFiles).
            blob = (
                f"https://{ACCOUNT}.blob.{STORAGE_SUFFIX}:{self.port}/{self.log_key(name).split('/', 1)[1]}"
            )
            details["logFiles"] = {USER_LOG: f"{blob}?sv=2021-08-06&sr=b&sp=r&sig=fake"}
        if state == "Failed":
            message = script.error or self.failure_message
            details["error"] = {"error": {"code": "UserError", "message": message}}
        return _json(200, details)

    def _log_text(self, key: str) -> bytes | None:
        """A run's user log as it is now: its first line while it runs, all of it once it ends."""
        found = re.fullmatch(rf"{ACCOUNT}/{ARTIFACT_CONTAINER}/ExperimentRun/dcid\.([^/]+)/{USER_LOG}", key)
        name = found.group(1) if found else ""
        job = (
            next((r for p, r in self.resources.items() if p.endswith(f"/jobs/{name}")), None)
            if name
            else None
        )
        if job is None or job["properties"]["status"] not in LOG_FROM:
            return None
        state = job["properties"]["status"]
        lines = self.job_log if state in TERMINAL or state == "Finalizing" else self.job_log[:1]
        return "".join(line + "\n" for line in lines).encode()

    # ---- the job's identity and the workspace Key Vault -----------------------------------------

    def _managed_identity_token(self, query: dict[str, list[str]]) -> Response:
        """Azure ML's identity endpoint (MSI_ENDPOINT, azure-identity ``_credentials/azure_ml.py``):
        ``api-version=2017-09-01`` and ``resource``, header ``secret: $MSI_SECRET``."""
        if query.get("api-version") != ["2017-09-01"] or not query.get("resource"):
            return _json(400, {"error": "invalid_request"})
        if self._header("secret") != MSI_SECRET:
            return _json(401, {"error": "unauthorized"})
        return _json(200, {"access_token": VAULT_TOKEN, "expires_on": "1999999999", "token_type": "Bearer"})

    def _vault_secret(self, name: str, query: dict[str, list[str]]) -> Response:
        """Key Vault ``GET {vault}/secrets/{name}?api-version=7.4`` (REST: Secrets - Get Secret)."""
        if self._header("authorization") != f"Bearer {VAULT_TOKEN}":
            return _json(401, {"error": {"code": "Unauthorized", "message": "no token"}})
        if not query.get("api-version"):
            return _json(400, {"error": {"code": "BadParameter", "message": "api-version is missing"}})
        if name not in self.vault_secrets:
            return _json(404, {"error": {"code": "SecretNotFound", "message": f"Secret {name} not found"}})
        return _json(200, {"value": self.vault_secrets[name], "id": f"{self.url}/keyvault/secrets/{name}/1"})

    def _header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    # ---- assets: immutable versions, containers with the latest version, archived versions -----

    def _put_resource(self, path: str, rest: str, payload: Any) -> Response:
        kind = rest.split("/")[1] if rest.count("/") >= 2 else ""
        content_key = _ASSET_CONTENT.get(kind)
        if content_key and "/versions/" in rest and path in self.resources:
            old = self.resources[path]["properties"].get(content_key)
            new = ((payload or {}).get("properties") or {}).get(content_key)
            if old != new:
                # Asset versions are immutable: only metadata may change (Azure/azureml-assets#1174,
                # reference/azureml.md); another content under the same version is refused.
                version = f"{kind} {rest.split('/')[2]} version {path.rsplit('/', 1)[-1]}"
                message = f"{version} already exists with other content"
                return _json(409, {"error": {"code": "UserError", "message": message}})
        status = 200 if path in self.resources else 201
        resource = self._store(path, rest, payload)
        if content_key and "/versions/" in rest:
            container = path.rsplit("/versions/", 1)[0]
            self.resources[container] = {
                "id": container, "name": container.rsplit("/", 1)[-1], "type": "fake",
                "properties": {"latestVersion": path.rsplit("/", 1)[-1], "isArchived": False},
            }  # fmt: skip
        return _json(status, resource)

    def archive(self, path_end: str) -> None:
        """Archive an asset version (it keeps its number; ActiveOnly listings leave it out)."""
        with self.lock:
            for path, resource in self.resources.items():
                if path.endswith(path_end):
                    resource["properties"]["isArchived"] = True

    def _identity(self, path: str) -> dict[str, Any]:
        return {"id": path, "name": path.rsplit("/", 1)[-1], "type": "fake",
                "systemData": {"createdAt": "2025-01-01T00:00:00Z"}}  # fmt: skip

    def _store(self, path: str, rest: str, payload: Any) -> dict[str, Any]:
        resource = dict(payload or {})
        properties = dict(resource.get("properties") or {})
        if "/models/" in rest:
            properties.setdefault("flavors", {})
        resource["properties"] = properties
        resource |= self._identity(path)
        self.resources[path] = resource
        if "/codes/" in rest:
            name = rest.split("/")[2]
            if name in self.code_hashes:
                self.code_hashes[self.code_hashes[name]] = path
        return resource

    def _versions(self, path: str, rest: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        if "/codes/" in rest and "hash" in query:
            asset_hash = query["hash"][0]
            self.code_hashes[rest.split("/")[2]] = asset_hash
            known = self.code_hashes.get(asset_hash)
            return [self.resources[known]] if known in self.resources else []
        prefix = path + "/"
        found = [r for p, r in self.resources.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]]
        view = query.get("listViewType", ["ActiveOnly"])[0]
        archived = {"ActiveOnly": (False,), "ArchivedOnly": (True,)}.get(view, (False, True))
        return [r for r in found if bool(r["properties"].get("isArchived")) in archived]

    def _cloud(self) -> list[dict[str, Any]]:
        return [
            {
                "name": "RobotrainFake",
                "portal": "https://portal.fake.test",
                "resourceManager": f"{self.url}/",
                "authentication": {"loginEndpoint": f"{self.url}/"},
                "suffixes": {"storage": f"{STORAGE_SUFFIX}:{self.port}"},
            }
        ]

    def _workspace(self, path: str) -> dict[str, Any]:
        group = path.split("/resourceGroups/", 1)[1].split("/", 1)[0]
        subscription = path.split("/subscriptions/", 1)[1].split("/", 1)[0]
        vault = (
            f"/subscriptions/{subscription}/resourceGroups/{group}"
            "/providers/Microsoft.KeyVault/vaults/kv-robotics-dev"
        )
        return {
            "id": path,
            "name": path.rsplit("/", 1)[-1],
            "location": "westus3",
            "properties": {
                "discoveryUrl": f"{self.url}/discovery",
                "workspaceId": str(uuid.UUID(int=1)),
                "keyVault": vault,
            },
        }

    def _datastore(self, path: str) -> dict[str, Any]:
        return {
            "id": path,
            "name": path.rsplit("/", 1)[-1],
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": ACCOUNT,
                "containerName": CONTAINER,
                "endpoint": f"{STORAGE_SUFFIX}:{self.port}",
                "protocol": "https",
                "isDefault": True,
                "credentials": {"credentialsType": "Sas"},
            },
        }

    def _blob(self, method: str, host: str, path: str, query: dict[str, list[str]], body: bytes) -> Response:
        key = host.split(".")[0] + path if host.endswith(f".blob.{STORAGE_SUFFIX}") else path
        headers = {
            "ETag": '"0x1"',
            "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
            "x-ms-request-id": uuid.uuid4().hex,
            "x-ms-version": "2025-01-05",
        }
        if query.get("restype") == ["container"] and query.get("comp") == ["list"]:
            return 200, headers | {"Content-Type": "application/xml"}, _blob_list(self.blobs, key, query)
        if method == "PUT":
            if query.get("comp") == ["metadata"]:
                return 200, headers | {"Content-Length": "0"}, b""
            self.blobs[key] = body
            return 201, headers | {"Content-Length": "0", "x-ms-request-server-encrypted": "true"}, b""
        data = self.blobs.get(key)
        if data is None:
            data = self._log_text(key)
        if data is None:
            return 404, headers | {"x-ms-error-code": "BlobNotFound", "Content-Length": "0"}, b""
        headers |= {"x-ms-blob-type": "BlockBlob", "Accept-Ranges": "bytes"}
        wanted = self._header("x-ms-range") or self._header("range")
        if method == "GET" and wanted:
            return _ranged(headers, data, wanted)
        return 200, headers | {"Content-Length": str(len(data))}, b"" if method == "HEAD" else data


DISTRIBUTION_TYPES = ("PyTorch", "TensorFlow", "Mpi", "Ray")
"""``distributionType`` values: the REST ``DistributionType`` enum of the API version the SDK uses
(``azure.ai.ml._restclient.arm_ml_service.models.DistributionType``, 2025-12-01: PyTorch, TensorFlow, Mpi)
and Ray, which the SDK sends as a raw wire object (``entities._job.distribution.RayDistribution``)."""
MAX_INT32 = 2**31 - 1


def _distribution_error(properties: dict[str, Any]) -> str | None:
    """Why the service refuses a job's ``distribution`` or ``resources.instanceCount``, or None.

    Only what the REST models state is refused (an unknown type, a count that is not an int32);
    the service's wording is not documented, so the messages are the fake's own.
    """
    distribution = properties.get("distribution")
    if distribution is not None:
        kind = distribution.get("distributionType") if isinstance(distribution, dict) else None
        if kind not in DISTRIBUTION_TYPES:
            return f"unknown distributionType {kind!r}; expected one of {', '.join(DISTRIBUTION_TYPES)}"
        if kind in ("PyTorch", "Mpi") and not _int32(distribution.get("processCountPerInstance", 1)):
            return "distribution.processCountPerInstance must be an integer (int32)"
    instances = (properties.get("resources") or {}).get("instanceCount", 1)
    if not _int32(instances):
        return "resources.instanceCount must be an integer (int32)"
    return None


def _int32(value: Any) -> bool:
    """An int32 of the REST schema (``processCountPerInstance``, ``instanceCount``); JSON null is unset."""
    return value is None or (type(value) is int and -MAX_INT32 - 1 <= value <= MAX_INT32)


def _failure(failure: Failure) -> Response:
    if failure.body is not None:
        return failure.status, {"Content-Type": "application/json"}, failure.body
    extra = {"Retry-After": str(failure.retry_after)} if failure.status in (429, 503) else {}
    message = f"injected {failure.status} {failure.code}"
    return _json(failure.status, {"error": {"code": failure.code, "message": message}}, extra)


def _is_blob(host: str, path: str) -> bool:
    return host.endswith(f".blob.{STORAGE_SUFFIX}") or path.startswith(f"/{ACCOUNT}/")


def _ranged(headers: dict[str, str], data: bytes, wanted: str) -> Response:
    """A ranged GET (``x-ms-range``/``Range: bytes=START-[END]``): 206 with ``Content-Range``; a start
    at or past the end is 416 InvalidRange (learn.microsoft.com/rest/api/storageservices/
    specifying-the-range-header-for-blob-service-operations)."""
    found = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
    if found is None:
        return 400, headers | {"x-ms-error-code": "InvalidHeaderValue", "Content-Length": "0"}, b""
    start = int(found.group(1))
    end = min(int(found.group(2)) if found.group(2) else len(data) - 1, len(data) - 1)
    if start >= len(data):
        invalid = {
            "x-ms-error-code": "InvalidRange",
            "Content-Range": f"bytes */{len(data)}",
            "Content-Length": "0",
        }
        return 416, headers | invalid, b""
    part = data[start : end + 1]
    ranged = {"Content-Range": f"bytes {start}-{end}/{len(data)}", "Content-Length": str(len(part))}
    return 206, headers | ranged, part


def _blob_list(blobs: dict[str, bytes], container: str, query: dict[str, list[str]]) -> bytes:
    prefix = container.rstrip("/") + "/" + query.get("prefix", [""])[0]
    found = {k[len(container.rstrip("/")) + 1 :]: len(v) for k, v in blobs.items() if k.startswith(prefix)}
    items = "".join(
        f"<Blob><Name>{name}</Name><Properties><Last-Modified>Wed, 01 Jan 2025 00:00:00 GMT</Last-Modified>"
        f"<Etag>0x1</Etag><Content-Length>{size}</Content-Length><BlobType>BlockBlob</BlobType></Properties>"
        f"<Metadata /></Blob>"
        for name, size in sorted(found.items())
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults>'
        f"<Blobs>{items}</Blobs><NextMarker/></EnumerationResults>"
    ).encode()


def _json(status: int, data: Any, extra: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return (
        status,
        {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})},
        body,
    )


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeAzure

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        status, headers, data = self.fake.handle(self.command, host, self.path, body, dict(self.headers))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = _serve


def start(folder: Path) -> tuple[FakeAzure, Path, http.server.ThreadingHTTPServer]:
    """Start the fake on an ephemeral port; returns (state, CA file, server)."""
    ca, cert, key = make_certificate(folder)
    fake = FakeAzure()
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, ca, server


@dataclass
class Cli:
    fake: FakeAzure
    ca: Path
    project: Path

    def env(self, **extra: str) -> dict[str, str]:
        python_path = os.pathsep.join(filter(None, [str(GUARD), os.environ.get("PYTHONPATH")]))
        no_cli_profile = str(self.project / ".azure-none")
        return {
            **self.fake.environ(self.ca),
            "PYTHONPATH": python_path,
            "AZURE_CONFIG_DIR": no_cli_profile,
            **WORKSPACE,
            **extra,
        }

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return run_cli(args, cwd=self.project, env=self.env(**env))

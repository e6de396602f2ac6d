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


@dataclass
class FakeAzure:
    """The server's state: recorded requests, ARM resources, blobs, and injected failures."""

    port: int = 0
    requests: list[Recorded] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    code_hashes: dict[str, str] = field(default_factory=dict)
    failures: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(method, path regex, status, error code) answered once each, in order, before normal handling."""
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
        }

    def reset(self) -> None:
        with self.lock:
            for store in (self.requests, self.failures, self.resources, self.blobs, self.code_hashes):
                store.clear()

    def find(self, method: str, pattern: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    def blob_puts(self) -> list[Recorded]:
        """Blob content uploads (not the metadata updates that confirm them)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r.method == "PUT" and _is_blob(r.host, r.path) and "comp" not in r.query
            ]

    # ---- handling -------------------------------------------------------------------------------

    def handle(self, method: str, host: str, raw_path: str, body: bytes) -> Response:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        payload: Any = None
        if body and not _is_blob(host, path):
            try:
                payload = json.loads(body)
            except ValueError:
                payload = body.decode("utf-8", "replace")
        with self.lock:
            self.requests.append(Recorded(method, host, path, query, payload))
            for index, (f_method, pattern, status, code) in enumerate(self.failures):
                if f_method == method and re.search(pattern, path):
                    del self.failures[index]
                    return _json(
                        status,
                        {"error": {"code": code, "message": f"injected {status} {code}"}},
                        {"Retry-After": "0"},
                    )
            if _is_blob(host, path):
                return self._blob(method, host, path, query, body)
            return self._route(method, path, query, payload)

    def _route(self, method: str, path: str, query: dict[str, list[str]], payload: Any) -> Response:
        if path == "/metadata/endpoints":
            return _json(200, self._cloud())
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
        workspace = _WORKSPACE.match(path)
        if workspace is None:
            return _json(404, {"error": {"code": "NotFound", "message": f"no route {path}"}})
        rest = path[workspace.end() :]
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
            job = self.resources.get(path.removesuffix("/cancel"))
            if job is None:
                return _json(404, {"error": {"code": "NotFound", "message": "job not found"}})
            job["properties"]["status"] = "Canceled"
            return 202, {"Content-Length": "0"}, b""
        if rest.startswith("/datastores/"):
            return _json(200, self._datastore(path))
        if rest == "/datastores" and method == "GET":
            return _json(200, {"value": [self._datastore(path + "/workspaceblobstore")]})
        if method == "PUT":
            return _json(200 if path in self.resources else 201, self._store(path, rest, payload))
        if method == "GET" and rest.endswith("/versions"):
            return _json(200, {"value": self._versions(path, rest, query)})
        if method == "GET" and path in self.resources:
            return _json(200, self.resources[path])
        return _json(404, {"error": {"code": "UserError", "message": f"{rest} not found"}})

    def _store(self, path: str, rest: str, payload: Any) -> dict[str, Any]:
        resource = dict(payload or {})
        properties = dict(resource.get("properties") or {})
        if "/models/" in rest:
            properties.setdefault("flavors", {})
        if "/jobs/" in rest:
            properties.setdefault("status", "Starting")
            properties["services"] = properties.get("services") or {}
        resource["properties"] = properties
        resource |= {
            "id": path,
            "name": path.rsplit("/", 1)[-1],
            "type": "fake",
            "systemData": {"createdAt": "2025-01-01T00:00:00Z"},
        }
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
        return [r for p, r in self.resources.items() if p.startswith(prefix) and "/" not in p[len(prefix) :]]

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
        return {
            "id": path,
            "name": path.rsplit("/", 1)[-1],
            "location": "westus3",
            "properties": {"discoveryUrl": f"{self.url}/discovery", "workspaceId": str(uuid.UUID(int=1))},
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
        if key not in self.blobs:
            return 404, headers | {"x-ms-error-code": "BlobNotFound", "Content-Length": "0"}, b""
        data = self.blobs[key]
        size = {"Content-Length": str(len(data)), "x-ms-blob-type": "BlockBlob"}
        return 200, headers | size, b"" if method == "HEAD" else data


def _is_blob(host: str, path: str) -> bool:
    return host.endswith(f".blob.{STORAGE_SUFFIX}") or path.startswith(f"/{ACCOUNT}/")


def _blob_list(blobs: dict[str, bytes], container: str, query: dict[str, list[str]]) -> bytes:
    prefix = container.rstrip("/") + "/" + query.get("prefix", [""])[0]
    names = [k[len(container.rstrip("/")) + 1 :] for k in blobs if k.startswith(prefix)]
    properties = "<Properties><Content-Length>1</Content-Length></Properties>"
    items = "".join(f"<Blob><Name>{n}</Name>{properties}</Blob>" for n in names)
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
        status, headers, data = self.fake.handle(self.command, host, self.path, body)
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

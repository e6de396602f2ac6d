"""Azure ML job start: read secrets from Key Vault with the job's managed identity, then run the job.

Usage inside the job: ``python3 robotrain_keyvault.py COMMAND ARGS...``. It reads
``ROBOTRAIN_KEY_VAULT_URL`` (``https://NAME.vault.azure.net``) and ``ROBOTRAIN_KEY_VAULT_SECRETS``
(``ENV=secret-name,...``), sets each ``ENV`` from the Key Vault secret, and replaces itself with
``COMMAND``. A secret it cannot read ends the job with one line on stderr before the command starts.

Standard library only: the job's image need not have azure-identity or azure-keyvault-secrets.
The token requests copy azure-identity's ``ManagedIdentityCredential``
(``azure/identity/_credentials/azure_ml.py``, ``app_service.py``, ``imds.py``); the secret
request is Key Vault's REST ``GET {vault}/secrets/{name}?api-version=7.4``.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

KEY_VAULT_API_VERSION = "7.4"
IMDS = "http://169.254.169.254"
PREFIX = "robotrain: Key Vault"


class SecretError(Exception):
    """A secret the job needs could not be read; the message is the one log line."""


def token_request(resource: str) -> urllib.request.Request:
    """The managed identity token request for ``resource``, in azure-identity's order of sources."""
    client_id = os.environ.get("DEFAULT_IDENTITY_CLIENT_ID", "")
    msi_endpoint, msi_secret = os.environ.get("MSI_ENDPOINT", ""), os.environ.get("MSI_SECRET", "")
    identity_endpoint = os.environ.get("IDENTITY_ENDPOINT", "")
    identity_header = os.environ.get("IDENTITY_HEADER", "")
    if msi_endpoint and msi_secret:  # Azure ML compute (azure_ml.py)
        query = _query("2017-09-01", resource, "clientid", client_id)
        return _get(msi_endpoint, query, {"secret": msi_secret})
    if identity_endpoint and identity_header:  # App Service style endpoint (app_service.py)
        query = _query("2019-08-01", resource, "client_id", client_id)
        return _get(identity_endpoint, query, {"X-IDENTITY-HEADER": identity_header})
    host = os.environ.get("AZURE_POD_IDENTITY_AUTHORITY_HOST", IMDS).rstrip("/")  # imds.py
    query = _query("2018-02-01", resource, "client_id", client_id)
    return _get(host + "/metadata/identity/oauth2/token", query, {"Metadata": "true"})


def _query(api_version: str, resource: str, client_key: str, client_id: str) -> dict[str, str]:
    query = {"api-version": api_version, "resource": resource}
    if client_id:  # a user-assigned identity; none: the compute's default identity
        query[client_key] = client_id
    return query


def _get(url: str, query: dict[str, str], headers: dict[str, str]) -> urllib.request.Request:
    separator = "&" if "?" in url else "?"
    return urllib.request.Request(url + separator + urllib.parse.urlencode(query), headers=headers)


def _json(request: urllib.request.Request, what: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        raise SecretError(f"{what}: HTTP {error.code} {_error_code(error)}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise SecretError(f"{what}: {getattr(error, 'reason', error)}") from None
    if not isinstance(data, dict):
        raise SecretError(f"{what}: unexpected answer")
    return data


def _error_code(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read().decode("utf-8"))
        return str(body.get("error", {}).get("code", "")) if isinstance(body, dict) else ""
    except (ValueError, OSError, AttributeError):
        return ""


def vault_resource(vault_url: str) -> str:
    """``https://kv-x.vault.azure.net`` → ``https://vault.azure.net`` (the token audience of that cloud)."""
    host = urllib.parse.urlsplit(vault_url).netloc
    return "https://" + host.split(".", 1)[1] if "." in host else vault_url


def requested(text: str) -> list[tuple[str, str]]:
    """``HF_TOKEN=hf-token,WANDB_API_KEY=wandb-api-key`` → pairs (variable, secret name)."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        variable, _, secret = item.partition("=")
        pairs.append((variable, secret))
    return pairs


def read_secrets(vault_url: str, wanted: list[tuple[str, str]]) -> dict[str, str]:
    """Each variable's value from Key Vault; the first one that cannot be read raises SecretError."""
    vault = vault_url.rstrip("/")
    access = _json(token_request(vault_resource(vault)), f"{PREFIX}: no managed identity token")
    headers = {"Authorization": f"Bearer {access.get('access_token', '')}"}
    values = {}
    for variable, secret in wanted:
        url = f"{vault}/secrets/{urllib.parse.quote(secret)}?api-version={KEY_VAULT_API_VERSION}"
        answer = _json(
            urllib.request.Request(url, headers=headers),
            f"{PREFIX}: cannot read secret {secret!r} for {variable} from {vault}",
        )
        value = answer.get("value")
        if not isinstance(value, str) or not value:
            raise SecretError(f"{PREFIX}: secret {secret!r} for {variable} in {vault} is empty")
        values[variable] = value
    return values


def main(argv: list[str]) -> int:
    if not argv:
        print(f"{PREFIX}: no command to run", file=sys.stderr)
        return 2
    vault_url = os.environ.get("ROBOTRAIN_KEY_VAULT_URL", "")
    wanted = requested(os.environ.get("ROBOTRAIN_KEY_VAULT_SECRETS", ""))
    if wanted:
        try:
            os.environ.update(read_secrets(vault_url, wanted))
        except SecretError as error:
            print(f"{error}; grant the job's managed identity 'Key Vault Secrets User' and create the secret",
                  file=sys.stderr)  # fmt: skip
            return 3
        names = ", ".join(variable for variable, _ in wanted)
        print(f"{PREFIX}: set {names} from {vault_url}", file=sys.stderr)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

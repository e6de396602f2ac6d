"""Read Terraform outputs: local state, ``terraform output -json``, a saved copy, or names from tfvars.

Like the submit scripts, the infrastructure's folder is read without being asked: the conventional
``deploy/001-iac`` when it exists (``terraform-dir`` in robotrain.toml names another; ``terraform =
false`` or ``--no-terraform`` reads none).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from robotrain.errors import UserError
from robotrain.options import TerraformOutputs

CONVENTIONAL_DIR = "deploy/001-iac"
"""Where the reference architecture keeps its Terraform, relative to the project root."""
OUTPUT_COMMAND = ("terraform", "output", "-json")
OUTPUT_TIMEOUT_SECONDS = 120.0
BOX_CHARACTERS = "╷│╵"


def load_outputs(
    directory: Path | None, saved_outputs: Path | None, *, explicit: bool = True, root: Path | None = None
) -> TerraformOutputs:
    """Outputs from the saved file, else the folder's local state, else ``terraform output -json``
    when the folder is initialised (remote state) and terraform is installed, else its tfvars.

    A folder that does not exist is an error when ``explicit``, else (the conventional default) nothing.
    ``root`` only shortens the paths shown as the outputs' source.
    """
    if saved_outputs is not None:
        return _from_output_json(saved_outputs, _shown(saved_outputs, root))
    if directory is None:
        return TerraformOutputs({})
    if not directory.is_dir():
        if not explicit:
            return TerraformOutputs({})
        raise UserError(f"Terraform folder {directory} does not exist; fix --terraform-dir")
    state = directory / "terraform.tfstate"
    if state.exists():
        return _from_state(state, _shown(state, root))
    if (directory / ".terraform").is_dir() and shutil.which(OUTPUT_COMMAND[0]):
        found = _from_output_command(directory, _shown(directory, root))
        if found is not None:
            return found
    tfvars = directory / "terraform.tfvars"
    if tfvars.exists():
        return _from_tfvars(tfvars, _shown(tfvars, root))
    return TerraformOutputs({})


def _shown(path: Path, root: Path | None) -> str:
    if root is not None and path.is_relative_to(root):
        return str(path.relative_to(root))
    return str(path)


def _from_output_command(directory: Path, shown: str) -> TerraformOutputs | None:
    """``terraform output -json`` in the folder (works with remote state); None, with a warning, on failure.

    As in the scripts, a folder whose outputs cannot be read is not fatal: the values may come
    from elsewhere, and a setting still missing is reported where it is needed.
    """
    command = " ".join(OUTPUT_COMMAND)
    try:
        result = subprocess.run(
            OUTPUT_COMMAND, cwd=directory, capture_output=True, text=True, timeout=OUTPUT_TIMEOUT_SECONDS,
            env={**os.environ, "TF_IN_AUTOMATION": "1"}, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        _warn_unusable(command, shown, str(error))
        return None
    if result.returncode != 0:
        _warn_unusable(command, shown, f"exit code {result.returncode}: {_first_message(result.stderr)}")
        return None
    try:
        entries = json.loads(result.stdout)
    except json.JSONDecodeError:
        _warn_unusable(command, shown, "its output is not JSON")
        return None
    return _outputs_from(entries, directory, f"`{command}` output", f"{command} in {shown}")


def _first_message(stderr: str) -> str:
    """The first line of terraform's diagnostics, without the box it draws around them (``╷ │ ╵``)."""
    lines = (line.strip().strip(BOX_CHARACTERS).strip() for line in stderr.splitlines())
    return next((line for line in lines if line), "no message")


def _warn_unusable(command: str, shown: str, reason: str) -> None:
    print(
        f"robotrain: warning: `{command}` in {shown} failed ({reason}); Terraform values are not used "
        f"(run `terraform init` there, or give --no-terraform or terraform = false in robotrain.toml)",
        file=sys.stderr,
    )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(
            f"cannot read {what} {path}: not valid JSON ({error}); "
            f"regenerate it or point --terraform-dir elsewhere"
        ) from None


def _outputs_from(entries: Any, path: Path, what: str, source: str) -> TerraformOutputs:
    if not isinstance(entries, dict) or not all(
        isinstance(e, dict) and "value" in e for e in entries.values()
    ):
        raise UserError(f"cannot read {what} {path}: outputs are not NAME: {{value: ...}} entries")
    values = {name: entry["value"] for name, entry in entries.items()}
    sensitive = [name for name, entry in entries.items() if entry.get("sensitive")]
    return TerraformOutputs(values, sensitive, source)


def _from_state(path: Path, shown: str) -> TerraformOutputs:
    state = _read_json(path, "Terraform state")
    if not isinstance(state, dict) or state.get("version") != 4:
        raise UserError(f"cannot read Terraform state {path}: expected state format version 4")
    return _outputs_from(state.get("outputs", {}), path, "Terraform state", shown)


def _from_output_json(path: Path, shown: str) -> TerraformOutputs:
    return _outputs_from(_read_json(path, "Terraform outputs file"), path, "Terraform outputs file", shown)


def _from_tfvars(path: Path, shown: str) -> TerraformOutputs:
    """Names the reference architecture derives from ``resource_prefix``, ``environment``, ``instance``."""
    variables = parse_tfvars(path)
    parts = [variables.get(key) for key in ("resource_prefix", "environment", "instance")]
    if not all(parts):
        return TerraformOutputs({})
    suffix = "-".join(str(part) for part in parts)
    return TerraformOutputs(
        {
            "resource_group": {"name": variables.get("resource_group_name") or f"rg-{suffix}"},
            "azureml_workspace": {"name": f"mlw-{suffix}"},
            "aks_cluster": {"name": f"aks-{suffix}"},
        },
        source=f"names derived from {shown}",
    )


def parse_tfvars(path: Path) -> dict[str, Any]:
    """Parse a tfvars file to plain values; a syntax error names the file and line."""
    import hcl2
    from lark.exceptions import UnexpectedInput

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    options = hcl2.SerializationOptions(strip_string_quotes=True, with_comments=False, explicit_blocks=False)
    try:
        parsed: dict[str, Any] = hcl2.loads(text, serialization_options=options)
    except UnexpectedInput as error:
        raise UserError(
            f"{path}:{error.line}:{error.column}: invalid HCL syntax; fix this line of the tfvars file"
        ) from None
    except Exception as error:  # python-hcl2 wraps some syntax errors in plain exceptions
        raise UserError(f"{path}: invalid HCL ({str(error).splitlines()[0]})") from None
    return parsed


COMPUTE_NAME_LENGTH = 16
"""Azure ML compute names are at most 16 characters; the attach step cuts the derived name there."""


def aks_compute_name(cluster: str | None) -> str | None:
    """The Azure ML compute name the attach step derives from the AKS cluster name.

    ``k8s-`` plus the name without ``aks-``, cut to 16 characters, a trailing ``-`` stripped:
    ``aks-robotics-dev-001`` → ``k8s-robotics-dev``.
    """
    if not cluster:
        return None
    return ("k8s-" + cluster.removeprefix("aks-"))[:COMPUTE_NAME_LENGTH].rstrip("-")

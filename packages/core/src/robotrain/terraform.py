"""Read Terraform outputs: local state, a saved ``terraform output -json``, or names derived from tfvars."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robotrain.errors import UserError
from robotrain.options import TerraformOutputs


def load_outputs(directory: Path | None, saved_outputs: Path | None) -> TerraformOutputs:
    """Outputs from the saved file, else the state in ``directory``, else its tfvars."""
    if saved_outputs is not None:
        return _from_output_json(saved_outputs)
    if directory is None:
        return TerraformOutputs({})
    if not directory.is_dir():
        raise UserError(f"Terraform folder {directory} does not exist; fix --terraform-dir")
    state = directory / "terraform.tfstate"
    if state.exists():
        return _from_state(state)
    tfvars = directory / "terraform.tfvars"
    if tfvars.exists():
        return _from_tfvars(tfvars)
    return TerraformOutputs({})


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


def _outputs_from(entries: Any, path: Path, what: str) -> TerraformOutputs:
    if not isinstance(entries, dict) or not all(
        isinstance(e, dict) and "value" in e for e in entries.values()
    ):
        raise UserError(f"cannot read {what} {path}: outputs are not NAME: {{value: ...}} entries")
    values = {name: entry["value"] for name, entry in entries.items()}
    sensitive = [name for name, entry in entries.items() if entry.get("sensitive")]
    return TerraformOutputs(values, sensitive)


def _from_state(path: Path) -> TerraformOutputs:
    state = _read_json(path, "Terraform state")
    if not isinstance(state, dict) or state.get("version") != 4:
        raise UserError(f"cannot read Terraform state {path}: expected state format version 4")
    return _outputs_from(state.get("outputs", {}), path, "Terraform state")


def _from_output_json(path: Path) -> TerraformOutputs:
    return _outputs_from(_read_json(path, "Terraform outputs file"), path, "Terraform outputs file")


def _from_tfvars(path: Path) -> TerraformOutputs:
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
        }
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

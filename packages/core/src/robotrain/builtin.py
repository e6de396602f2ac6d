"""Core's own settings: where and what to run, project files, Azure context, common job options."""

from __future__ import annotations

import json
import os
from pathlib import Path

from robotrain.hookspecs import hookimpl
from robotrain.options import COMMANDS, Option, OptionRegistry
from robotrain.recovery import ON_OOM, ON_PREEMPTION
from robotrain.terraform import CONVENTIONAL_DIR

EVERY_COMMAND = frozenset(COMMANDS)


def azure_cli_default_subscription() -> str | None:
    """The subscription of the Azure CLI's saved default profile, when there is one."""
    folder = Path(os.environ.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")
    try:
        profile = json.loads((folder / "azureProfile.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    for subscription in profile.get("subscriptions", []):
        if isinstance(subscription, dict) and subscription.get("isDefault"):
            return str(subscription.get("id")) or None
    return None


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    for option in (
        Option("platform", "where the job runs", default="local", env="ROBOTRAIN_PLATFORM",
               commands=EVERY_COMMAND),
        Option("workload", "what runs", default="isaaclab", env="ROBOTRAIN_WORKLOAD"),
        Option("profile", "named profile of the project config", env="ROBOTRAIN_PROFILE",
               commands=EVERY_COMMAND),
        Option("training_dir", "training source folder to pack", default="src/training",
               env="TRAINING_DIR"),
        Option("image", "container image (default: the workload's)", env="IMAGE", aliases=("i",)),
        Option("job_name", "job name (default: derived from the workload)", env="JOB_NAME"),
        Option("experiment_name", "experiment to track runs under (default: the workload's)",
               env="EXPERIMENT_NAME"),
        Option("register_checkpoint", "model name for the final checkpoint (default: derived)",
               env="REGISTER_CHECKPOINT", aliases=("r",)),
        Option("skip_register_checkpoint", "do not register the final checkpoint", kind=bool,
               default=False),
        Option("terraform", "read settings from the infrastructure's Terraform outputs", kind=bool,
               default=True, env="ROBOTRAIN_TERRAFORM", negation="no_terraform", commands=EVERY_COMMAND),
        Option("terraform_dir", "Terraform folder: its terraform.tfstate, `terraform output -json` "
               "(remote state, after terraform init) or terraform.tfvars",
               default=CONVENTIONAL_DIR, env="ROBOTRAIN_TERRAFORM_DIR", commands=EVERY_COMMAND),
        Option("terraform_outputs", "saved `terraform output -json` file",
               env="ROBOTRAIN_TERRAFORM_OUTPUTS", commands=EVERY_COMMAND),
        Option("subscription_id", "Azure subscription id", env="AZURE_SUBSCRIPTION_ID",
               fallback=("azure cli profile", azure_cli_default_subscription),
               commands=EVERY_COMMAND),
        Option("resource_group", "Azure resource group", env="AZURE_RESOURCE_GROUP",
               terraform="resource_group.name", commands=EVERY_COMMAND),
        Option("workspace_name", "Azure ML workspace", env="AZUREML_WORKSPACE_NAME",
               terraform="azureml_workspace.name", commands=EVERY_COMMAND),
        Option("mlflow_token_retries", "times the job's MLflow client refreshes its Azure token",
               kind=int, default=3, env="MLFLOW_TRACKING_TOKEN_REFRESH_RETRIES", minimum=0),
        Option("mlflow_http_timeout", "seconds the job's MLflow client waits for an HTTP answer",
               kind=int, default=60, env="MLFLOW_HTTP_REQUEST_TIMEOUT", minimum=1),
        Option("timeout", "stop the job after this long: seconds, or whole numbers with d/h/m/s "
               "such as 23h or 1h30m (default: the workload's)", env="ROBOTRAIN_TIMEOUT"),
        Option("nodes", "machines the job trains on (distributed training; default 1)", kind=int,
               env="ROBOTRAIN_NODES", minimum=1),
        Option("gpus", "GPUs per machine, one training process each (default: the workload's, 1; "
               "0 for a CPU-only job; on local: processes on this machine's CPUs)",
               kind=int, env="ROBOTRAIN_GPUS", minimum=0, aliases=("gpu",)),
        Option("env", "KEY=VALUE added to the job's environment (repeat the flag); not for secrets",
               kind=list),
        Option("retries", "times a job that was preempted (or ran out of memory, with --on-oom) is "
               "submitted again; train then watches the job until it ends", kind=int, default=0,
               env="ROBOTRAIN_RETRIES", minimum=0),
        Option("on_preemption", "after a preemption: resume from the job's newest checkpoint, restart "
               "from the start, or fail (default: resume when the workload can, else restart)",
               env="ROBOTRAIN_ON_PREEMPTION", choices=ON_PREEMPTION),
        Option("on_oom", "after running out of memory: fail, or retry with half the environments",
               default="fail", env="ROBOTRAIN_ON_OOM", choices=ON_OOM),
        Option("poll_interval", "seconds between state checks while train watches a job (--retries)",
               kind=float, default=10.0, env="ROBOTRAIN_POLL_INTERVAL", minimum=0.05),
        Option("python", "interpreter command for the training entry point in the job's container "
               "(default: the workload's, e.g. the Isaac Lab image's isaaclab.sh -p)"),
    ):  # fmt: skip
        options.add(option)

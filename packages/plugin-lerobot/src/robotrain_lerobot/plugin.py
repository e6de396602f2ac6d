"""The ``lerobot`` workload: LeRobot behavioral cloning through ``lerobot-train``."""

from __future__ import annotations

from collections.abc import Callable

from robotrain import JobSpec, Option, OptionRegistry, Settings, Workload, hookimpl
from robotrain_lerobot.versions import DEFAULT_VERSION, SUPPORTED

NAME = "lerobot"
TRACKING = ("mlflow", "wandb", "none")


@hookimpl
def robotrain_add_options(options: OptionRegistry) -> None:
    for option in (
        Option("dataset_repo_id", "LeRobot dataset repo id, e.g. lerobot/aloha_sim_insertion_human "
               "(required)", env="DATASET_REPO_ID", aliases=("d",)),
        Option("policy_type", "policy to train; the types depend on --lerobot-version",
               default="act", env="POLICY_TYPE"),
        Option("policy_repo_id", "fine-tune from this pretrained policy (Hub id or folder with "
               "config.json)", env="POLICY_REPO_ID"),
        Option("lerobot_version", "LeRobot release to install and generate flags for",
               default=DEFAULT_VERSION, env="LEROBOT_VERSION", choices=tuple(SUPPORTED)),
        Option("output_dir", "training output folder in the job (relative: under the payload root)",
               default="outputs/train"),
        Option("training_steps", "training steps", kind=int, default=100_000, env="TRAINING_STEPS",
               minimum=1),
        Option("batch_size", "batch size of each training process (with --nodes/--gpus the effective "
               "batch is this x nodes x GPUs)", kind=int, default=32, minimum=1),
        Option("learning_rate", "learning rate (default: the policy preset's, e.g. ACT 1e-5; the old "
               "submit scripts passed 1e-4: give --learning-rate 1e-4 for the same training)", kind=float),
        Option("lr_warmup_steps", "learning-rate warm-up steps (default: the policy preset's)",
               kind=int, minimum=0),
        Option("eval_freq", "compute the validation loss every N steps (LeRobot 0.6+ with a validation "
               "split; default: the save frequency)", kind=int, minimum=1),
        Option("save_freq", "save a checkpoint every N steps", kind=int, default=5000, minimum=1),
        Option("log_freq", "log every N steps", kind=int, default=200, minimum=1),
        Option("seed", "random seed", kind=int, default=1000, minimum=0),
        Option("num_workers", "data loader workers (default: LeRobot's)", kind=int, minimum=0),
        Option("val_split", "fraction of episodes held out for validation, in [0, 1) "
               "(default: 0.1 with LeRobot 0.6+, none with 0.3)", kind=float),
        Option("no_val_split", "hold out no validation episodes", kind=bool, default=False),
        Option("system_metrics", "log GPU/CPU/memory metrics to MLflow (Azure ML, OSMO)", kind=bool,
               default=True, negation="no_system_metrics"),
        Option("tracking", "experiment tracking", default="mlflow", choices=TRACKING),
        Option("mlflow_uri", "MLflow tracking server for --tracking mlflow on OSMO (default there: the Azure "
               "ML workspace's MLflow)", env="ROBOTRAIN_MLFLOW_URI"),
        Option("wandb_project", "Weights & Biases project (default: the experiment name)",
               env="WANDB_PROJECT"),
        Option("from_blob", "read the dataset from Azure Blob storage instead of the Hub",
               kind=bool, default=False),
        Option("storage_account", "Azure storage account of the dataset (with --from-blob)",
               env="AZURE_STORAGE_ACCOUNT"),
        Option("storage_container", "blob container of the dataset (with --from-blob)",
               default="datasets", env="AZURE_STORAGE_CONTAINER"),
        Option("blob_prefix", "blob path prefix of the dataset (with --from-blob; default: the "
               "repo id)", env="BLOB_PREFIX"),
        Option("dataset_input", "train on a dataset staged with `invoke stage-dataset` (its name)"),
        Option("push_to_hub", "push the trained policy to the Hugging Face Hub (needs --hub-repo-id)",
               kind=bool, default=False),
        Option("hub_repo_id", "Hub repo the trained policy is pushed to"),
        Option("hf_token", "give the job HF_TOKEN from the platform secret hf_token (private or gated "
               "datasets and models; implied by --push-to-hub)", kind=bool, default=False),
    ):  # fmt: skip
        options.add(option)


@hookimpl
def robotrain_register_workloads(register: Callable[[Workload], None]) -> None:
    register(Workload(NAME, "LeRobot behavioral cloning (lerobot-train)"))


@hookimpl
def robotrain_build_job(workload: str, settings: Settings) -> JobSpec | None:
    if workload != NAME:
        return None
    from robotrain_lerobot.job import build_job

    return build_job(settings)

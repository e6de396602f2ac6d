"""Settings → validated request → the platform-neutral job that runs ``lerobot-train``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit

from robotrain import Checkpoint, Image, JobSpec, Resources, SecretRef, Settings, UserError
from robotrain.common_options import processes_per_node, world_size
from robotrain.job import input_variable
from robotrain.payload import pack
from robotrain.settings import DEFAULT
from robotrain.workloads import azure_environment, model_name, registered_name, require_azure_context
from robotrain_lerobot import local_env
from robotrain_lerobot.command import BLOB, HUB, STAGED, TrainRequest, lerobot_train_args
from robotrain_lerobot.installs import InstallSet, Tracker, install_set
from robotrain_lerobot.versions import KNOWN_PRETRAINED, RENAMED_POLICIES, SUPPORTED, LeRobotVersion

NAME = "lerobot"
ENTRY_FOLDER = Path(__file__).parent / "entrypoint"
ENTRY_POINT = "training/train_lerobot.sh"
DATASET_INPUT = "dataset"
"""The JobSpec input a staged dataset travels as; the platform exposes its path as ROBOTRAIN_INPUT_DATASET."""
EXAMPLE_DATASET = "lerobot/aloha_sim_insertion_human"
DEFAULT_EXPERIMENT = "lerobot-training"
DEFAULT_VAL_SPLIT = 0.1
LOCAL = "local"
ENVIRONMENT_VERSION = "1.1.0"
"""The Azure ML environment version of the default image (1.0.0 was the scripts' torch 2.4.1 image)."""
HF_TOKEN = SecretRef("HF_TOKEN", "hf_token", "token")
WANDB_API_KEY = SecretRef("WANDB_API_KEY", "wandb", "api_key")
ACCELERATE = "accelerate"
"""``LEROBOT_LAUNCHER`` of a job of several processes: each node's entry point runs ``accelerate launch``."""


def build_job(settings: Settings) -> JobSpec:
    """Validate every option, then describe the job (nothing is packed before validation passes)."""
    request = request_from_settings(settings)
    distributed = _check_processes(settings, request.lerobot)
    tracker, tracking_environment = _tracking(settings)
    job_python = _job_python(settings, request.lerobot)
    image = _image(settings, request.lerobot, job_python)
    installs = install_set(
        request.lerobot, request.policy_type, blob=request.data_source == BLOB, tracker=tracker,
        system_metrics=_system_metrics(settings, tracker), python=job_python[1] if job_python else None,
        default_image=image.uri == request.lerobot.default_image,
    )  # fmt: skip
    register_as = registered_name(settings, f"{request.policy_type or 'policy'}-{request.dataset_repo_id}")
    payload = pack({"training": ENTRY_FOLDER}, settings.state_dir / "payloads")
    environment = _environment(settings, request, register_as, installs, tracker) | tracking_environment
    if job_python is not None:
        environment |= _local_environment(settings, request.lerobot, job_python)
    if distributed:
        environment["LEROBOT_LAUNCHER"] = ACCELERATE
    return JobSpec(
        workload=NAME,
        name=request.job_name,
        image=image,
        command=("bash", ENTRY_POINT, *lerobot_train_args(request)),
        experiment=_experiment(settings),
        environment=environment,
        secrets=_secrets(settings, request),
        resources=Resources(gpu=1, cpu=8, memory="48Gi", storage="80Gi"),
        payload=payload,
        inputs={DATASET_INPUT: str(settings["dataset_input"])} if request.data_source == STAGED else {},
        checkpoint=Checkpoint(register_as=register_as),
        timeout_seconds=12 * 3600,
        launches_processes=distributed,
        tags={
            "framework": "lerobot",
            "lerobot_version": request.lerobot.version,
            "policy": request.policy_type or "pretrained",
            "dataset": request.dataset_repo_id,
        },
    )


def request_from_settings(settings: Settings) -> TrainRequest:
    """Check every LeRobot option and gather them; a bad one raises a one-line UserError."""
    lerobot = SUPPORTED[str(settings["lerobot_version"])]
    dataset = settings.get("dataset_repo_id")
    if not dataset:
        raise UserError(f"--dataset-repo-id is required for --workload lerobot, e.g. {EXAMPLE_DATASET}")
    pretrained = _pretrained_source(settings)
    policy_type = _policy_type(settings, lerobot, pretrained)
    wandb = settings["tracking"] == "wandb"
    request = TrainRequest(
        lerobot=lerobot,
        dataset_repo_id=str(dataset),
        policy_type=policy_type,
        pretrained=pretrained,
        output_dir=str(settings["output_dir"]),
        job_name=settings.get("job_name") or f"lerobot-{model_name(policy_type or 'finetune')}-training",
        steps=settings["training_steps"],
        batch_size=settings["batch_size"],
        save_freq=settings["save_freq"],
        log_freq=settings["log_freq"],
        seed=settings["seed"],
        learning_rate=settings.get("learning_rate"),
        warmup_steps=settings.get("lr_warmup_steps"),
        eval_freq=settings.get("eval_freq"),
        val_split=_val_split(settings, lerobot),
        wandb_project=(settings.get("wandb_project") or _experiment(settings)) if wandb else None,
        hub_repo_id=_hub_repo_id(settings),
        data_source=_data_source(settings),
        num_workers=settings.get("num_workers"),
    )
    _check_tuning(request)
    _check_eval_freq(request)
    return request


def _check_processes(settings: Settings, lerobot: LeRobotVersion) -> bool:
    """Whether the job has several processes (``--nodes`` × ``--gpus``); refused where LeRobot cannot."""
    if world_size(settings) == 1:
        return False
    if not lerobot.multi_gpu:
        shape = f"{settings.get('nodes', 1)} node(s) x {processes_per_node(settings)} process(es)"
        raise UserError(
            f"LeRobot {lerobot.version} trains in one process only (multi-GPU training through accelerate "
            f"came in 0.4), so it cannot run {shape}; use --lerobot-version 0.6.1, or --nodes 1 --gpus 1"
        )
    return True


def _check_eval_freq(request: TrainRequest) -> None:
    """``--eval-freq`` is the validation-loss frequency; LeRobot's simulation evaluation is never set up."""
    if request.eval_freq is not None and request.val_split == 0:
        validation = (
            "with --val-split it sets how often the validation loss is computed"
            if request.lerobot.has_val_split
            else "use --lerobot-version 0.6.1 with --val-split for a validation loss"
        )
        raise UserError(
            f"--eval-freq does nothing here: LeRobot evaluates in simulation only with a simulation "
            f"environment, which this workload does not set up; {validation}, or drop --eval-freq"
        )


def _policy_type(settings: Settings, lerobot: LeRobotVersion, pretrained: str | None) -> str | None:
    explicit = settings.resolve("policy_type").source != DEFAULT
    requested = _known_policy_type(str(settings["policy_type"]), lerobot, "--policy-type")
    if pretrained is None:
        return requested
    found = pretrained_policy_type(pretrained, settings.project_root)
    if found is None:
        if not explicit:
            raise UserError(
                f"the type of the pretrained policy {pretrained} is not known here (it decides what the "
                f'job installs); give --policy-type with it (the "type" in its config.json)'
            )
        return requested
    found = _known_policy_type(found, lerobot, f"the pretrained policy {pretrained}")
    if explicit and found != requested:
        raise UserError(
            f"--policy-type {requested} differs from the type of the pretrained policy {pretrained} "
            f"({found}); drop --policy-type or pick a checkpoint of type {requested}"
        )
    return found


def _known_policy_type(name: str, lerobot: LeRobotVersion, what: str) -> str:
    if name in lerobot.untrainable:
        raise UserError(
            f"{what}: lerobot-train cannot train policy type {name!r} from a dataset in LeRobot "
            f"{lerobot.version} (it trains online, with an environment); pick one of "
            f"{', '.join(lerobot.trainable_policy_types)}"
        )
    if name in lerobot.policies:
        return name
    renamed = RENAMED_POLICIES.get(name)
    if renamed in lerobot.policies:
        raise UserError(
            f"{what}: LeRobot {lerobot.version} calls policy type {name!r} {renamed!r}; use {renamed}"
        )
    raise UserError(
        f"{what}: unknown policy type {name!r} for LeRobot {lerobot.version} "
        f"(known: {', '.join(lerobot.trainable_policy_types)})"
    )


def pretrained_policy_type(source: str, project_root: Path) -> str | None:
    """The type of a pretrained policy when it is known here: a local config.json or a known Hub id."""
    folder = project_root / Path(source).expanduser()
    config = folder / "config.json"
    if config.is_file():
        try:
            kind = json.loads(config.read_text(encoding="utf-8")).get("type")
        except (ValueError, AttributeError):
            raise UserError(
                f"--policy-repo-id: {config} is not a LeRobot policy config (JSON object)"
            ) from None
        return str(kind) if kind else None
    return KNOWN_PRETRAINED.get(source)


def _pretrained_source(settings: Settings) -> str | None:
    """The fine-tune source: a Hub id as given, a folder here as an absolute path (for the local platform)."""
    source = settings.get("policy_repo_id") or None
    if source is None:
        return None
    folder = settings.project_root / Path(source).expanduser()
    return str(folder.resolve()) if folder.is_dir() else str(source)


def _val_split(settings: Settings, lerobot: LeRobotVersion) -> float:
    value = settings.get("val_split")
    if settings["no_val_split"]:
        if value is not None:
            raise UserError("--val-split and --no-val-split contradict each other; give one of them")
        return 0.0
    if value is None:
        return DEFAULT_VAL_SPLIT if lerobot.has_val_split else 0.0
    if not 0 <= value < 1:
        raise UserError(
            f"--val-split {value:g} is outside [0, 1); give a fraction such as 0.1, or 0 for none"
        )
    if value > 0 and not lerobot.has_val_split:
        raise UserError(
            f"--val-split: LeRobot {lerobot.version} has no validation split; "
            f"use --no-val-split or --lerobot-version 0.6.1"
        )
    return float(value)


def _hub_repo_id(settings: Settings) -> str | None:
    repo = settings.get("hub_repo_id") or None
    if settings["push_to_hub"] and not repo:
        raise UserError("--push-to-hub needs --hub-repo-id (the Hub repo to push to, e.g. USER/act_aloha)")
    if repo and not settings["push_to_hub"]:
        raise UserError("--hub-repo-id is only used with --push-to-hub; add --push-to-hub or drop it")
    return str(repo) if repo else None


def _data_source(settings: Settings) -> str:
    staged = settings.get("dataset_input")
    if settings["from_blob"]:
        if staged:
            raise UserError("--from-blob and --dataset-input are two data sources; give one of them")
        if not settings.get("storage_account"):
            raise UserError(
                "--from-blob needs --storage-account (the Azure storage account holding the dataset)"
            )
        return BLOB
    for name in ("storage_account", "storage_container", "blob_prefix"):
        if settings.given_on_command_line(name):
            raise UserError(
                f"--{name.replace('_', '-')} is only used with --from-blob; add --from-blob or drop it"
            )
    return STAGED if staged else HUB


def _check_tuning(request: TrainRequest) -> None:
    name, version = request.policy_type, request.lerobot.version
    if request.learning_rate is not None:
        if request.learning_rate <= 0:
            raise UserError(f"--learning-rate {request.learning_rate:g} must be positive")
        if request.fields.learning_rate is None:
            raise UserError(
                f"--learning-rate: policy {name} in LeRobot {version} has no single learning rate; drop it"
            )
    if request.warmup_steps is not None and request.fields.warmup_steps is None:
        raise UserError(
            f"--lr-warmup-steps: policy {name} in LeRobot {version} has no warm-up (its preset keeps "
            f"the rate constant); drop the option"
        )


def _job_python(settings: Settings, lerobot: LeRobotVersion) -> tuple[str, str] | None:
    """On the local platform: the interpreter of LeRobot's own environment (path, ``X.Y``)."""
    return local_env.find_python(lerobot) if settings["platform"] == LOCAL else None


def _image(settings: Settings, lerobot: LeRobotVersion, job_python: tuple[str, str] | None) -> Image:
    """The container image; on the local platform a name for LeRobot's environment instead."""
    if job_python is not None:
        venv = local_env.venv_dir(settings.state_dir, lerobot, job_python[1])
        return Image(f"venv:{venv}", "lerobot-training-env", lerobot.version)
    image = settings.get("image") or lerobot.default_image
    if not image:
        python = ".".join(map(str, lerobot.min_python))
        raise UserError(
            f"LeRobot {lerobot.version} needs Python >= {python} and torch >= 2.7, newer than the default "
            f"image has; give --image with both (e.g. huggingface/lerobot-gpu) or use --lerobot-version 0.3.3"
        )
    version = ENVIRONMENT_VERSION
    if image != lerobot.default_image:
        version += "-" + hashlib.sha256(str(image).encode()).hexdigest()[:8]
    return Image(str(image), "lerobot-training-env", version)


def _experiment(settings: Settings) -> str:
    return str(settings.get("experiment_name") or DEFAULT_EXPERIMENT)


def _tracking(settings: Settings) -> tuple[Tracker, dict[str, str]]:
    """Where the job's MLflow run goes, and the environment that tells the job."""
    uri = settings.get("mlflow_uri")
    platform = str(settings["platform"])
    if uri and platform in (LOCAL, "azureml"):
        raise UserError(
            f"--mlflow-uri is for platforms without an MLflow of their own (osmo); {platform} jobs track to "
            f"{'the local store' if platform == LOCAL else 'the workspace'}: drop --mlflow-uri"
        )
    if settings["tracking"] != "mlflow":
        if uri:
            raise UserError(
                "--mlflow-uri is only used with --tracking mlflow; drop it or use --tracking mlflow"
            )
        return Tracker.NONE, {}
    if platform == LOCAL:
        return Tracker.HOST, {}
    if platform == "azureml":
        return Tracker.AZUREML, {}
    if uri:
        if urlsplit(str(uri)).password:
            raise UserError(
                "--mlflow-uri carries a password, which would be written into the job spec; give the URI "
                "without it and the credentials as platform secrets (MLFLOW_TRACKING_TOKEN)"
            )
        tracker = Tracker.AZUREML if str(uri).startswith("azureml:") else Tracker.SERVER
        return tracker, {"MLFLOW_TRACKING_URI": str(uri)}
    if platform != "osmo":
        return Tracker.SERVER, {}
    try:
        azure = require_azure_context(settings, "MLflow tracking to the Azure ML workspace on OSMO")
    except UserError as missing:
        raise UserError(
            f"{missing}; or give --mlflow-uri (an MLflow server the job can reach), or use --tracking wandb "
            f"or --tracking none"
        ) from None
    return Tracker.AZUREML, azure | {"LEROBOT_MLFLOW_FROM_WORKSPACE": "true"}


def _system_metrics(settings: Settings, tracker: Tracker) -> bool:
    """System metrics need psutil beside MLflow: installed in containers, not into robotrain's environment."""
    return bool(settings["system_metrics"]) and tracker in (Tracker.SERVER, Tracker.AZUREML)


def _local_environment(
    settings: Settings, lerobot: LeRobotVersion, job_python: tuple[str, str]
) -> dict[str, str]:
    return {
        "LEROBOT_VENV": str(local_env.venv_dir(settings.state_dir, lerobot, job_python[1])),
        "LEROBOT_VENV_PYTHON": job_python[0],
    }


def _environment(
    settings: Settings, request: TrainRequest, register_as: str | None, installs: InstallSet, tracker: Tracker
) -> dict[str, str]:
    environment = {
        "LEROBOT_VERSION": request.lerobot.version,
        "LEROBOT_INSTALL": " ".join(installs.requirements),
        "LEROBOT_CONSTRAINTS": " ".join(installs.constraints),
        "LEROBOT_TRACKING": "mlflow" if tracker is not Tracker.NONE else str(settings["tracking"]),
        "LEROBOT_DATASET_SOURCE": request.data_source,
        "REGISTER_CHECKPOINT": register_as or "",
        "MLFLOW_EXPERIMENT_NAME": _experiment(settings),
    }
    if request.data_source == STAGED:
        environment["LEROBOT_DATASET_VARIABLE"] = input_variable(DATASET_INPUT)
    if settings.get("python"):
        environment["PYTHON"] = str(settings["python"])
    if _system_metrics(settings, tracker):
        environment["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "true"
    if request.data_source == BLOB:
        environment |= {
            "AZURE_STORAGE_ACCOUNT": str(settings["storage_account"]),
            "AZURE_STORAGE_CONTAINER": str(settings["storage_container"]),
            "BLOB_PREFIX": str(settings.get("blob_prefix") or request.dataset_repo_id),
            "LEROBOT_DATASET_ROOT": request.blob_dataset_root,
        }
    return environment | azure_environment(settings)


def _secrets(settings: Settings, request: TrainRequest) -> tuple[SecretRef, ...]:
    secrets = []
    gated = request.policy_type in request.lerobot.gated
    if settings["hf_token"] or request.hub_repo_id is not None or gated:
        secrets.append(HF_TOKEN)
    if request.wandb_project is not None:
        secrets.append(WANDB_API_KEY)
    return tuple(secrets)


__all__ = ["BLOB", "HUB", "STAGED", "build_job", "request_from_settings"]

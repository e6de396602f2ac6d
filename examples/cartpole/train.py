"""Train a softmax policy on a gymnasium task with REINFORCE, tracked in MLflow.

Follows the Isaac Lab entry-point contract (``scripts/train.sh --mode --task
--num_envs --max_iterations --checkpoint-uri --checkpoint-mode
--register-checkpoint``). ``--checkpoint-uri`` is a local folder here: the
platform downloads ``runs:/`` and ``models:/`` URIs before the job starts.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from collective import ProcessGroup
from policy import (
    Adam,
    Architecture,
    Params,
    clear_progress,
    forward,
    init_params,
    load_checkpoint,
    policy_gradient,
    save_checkpoint,
    save_progress,
    weights_sha256,
)

MODES = ("from-scratch", "warm-start", "resume", "fresh")
DEFAULT_ITERATIONS = 50
DEFAULT_CHECKPOINT_INTERVAL = 10
"""Iterations between the checkpoints saved while training (env CHECKPOINT_INTERVAL), which a
resumed attempt after a preemption starts from."""
HIDDEN = (16,)
GAMMA = 0.99
CONTENT_TAG = "content_sha256"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="train", choices=("train", "smoke-test"))
    parser.add_argument("--task", default="CartPole-v1")
    parser.add_argument("--num_envs", type=int, default=8, help="episodes per iteration")
    parser.add_argument("--max_iterations", default="", help="iterations to run (resume: this many more)")
    parser.add_argument("--checkpoint-uri", default="", help="a local checkpoint folder")
    parser.add_argument("--checkpoint-mode", default="from-scratch", choices=MODES)
    parser.add_argument("--register-checkpoint", default="", help="model name for the final checkpoint")
    parser.add_argument("--headless", action="store_true", help="accepted for the contract; always headless")
    parser.add_argument(
        "--distributed", action="store_true", help="one of several processes (RANK, WORLD_SIZE, MASTER_ADDR)"
    )
    args = parser.parse_args(argv)
    if args.checkpoint_mode != "from-scratch" and not args.checkpoint_uri:
        parser.error(f"--checkpoint-mode {args.checkpoint_mode} needs --checkpoint-uri")
    return args


@dataclass
class Start:
    """Where training starts: the weights, optimizer and iteration counter each mode gives."""

    arch: Architecture
    params: Params
    adam: Adam
    iteration: int


def starting_point(args: argparse.Namespace, env: gym.Env[Any, Any], rng: np.random.Generator) -> Start:
    if args.checkpoint_mode == "from-scratch":
        arch = Architecture(env.observation_space.shape[0], int(env.action_space.n), HIDDEN)
        params = init_params(arch, rng)
        return Start(arch, params, Adam(params), 0)
    checkpoint = load_checkpoint(Path(args.checkpoint_uri))
    if args.checkpoint_mode == "fresh":
        params = init_params(checkpoint.arch, rng)
        return Start(checkpoint.arch, params, Adam(params), 0)
    params = checkpoint.params
    adam = Adam(params)
    if args.checkpoint_mode == "warm-start":
        return Start(checkpoint.arch, params, adam, 0)
    adam.load(checkpoint.optimizer, checkpoint.optimizer_step)
    return Start(checkpoint.arch, params, adam, checkpoint.iteration)


def run_episode(
    env: gym.Env[Any, Any], params: Params, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One episode with actions sampled from the policy: observations, actions, rewards."""
    observations, actions, rewards = [], [], []
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    done = False
    while not done:
        probs, _ = forward(params, np.asarray(obs, dtype=np.float64)[None, :])
        action = int(rng.random() > probs[0, 0])
        observations.append(obs)
        actions.append(action)
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(float(reward))
        done = terminated or truncated
    return np.asarray(observations, dtype=np.float64), np.asarray(actions), np.asarray(rewards)


def returns_to_go(rewards: np.ndarray) -> np.ndarray:
    out = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + GAMMA * running
        out[t] = running
    return out


def train_iteration(
    env: gym.Env[Any, Any], start: Start, episodes: int, rng: np.random.Generator, group: ProcessGroup
) -> float:
    """Collect ``episodes`` episodes on each process, take one Adam step with the gradient averaged
    over all processes; the mean undiscounted return over all processes."""
    batch = [run_episode(env, start.params, rng) for _ in range(episodes)]
    obs = np.concatenate([b[0] for b in batch])
    actions = np.concatenate([b[1] for b in batch])
    advantages = np.concatenate([returns_to_go(b[2]) for b in batch])
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    local = policy_gradient(start.params, obs, actions, advantages)
    local["mean_return"] = np.asarray(np.mean([b[2].sum() for b in batch]))
    averaged = group.mean(local)
    mean_return = float(averaged.pop("mean_return"))
    start.adam.apply(start.params, averaged)
    return mean_return


def folder_sha256(folder: Path) -> str:
    """Content hash of a folder: relative paths, sizes and bytes, sorted (as robotrain computes it)."""
    digest = hashlib.sha256()
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    for relative in sorted(files):
        data = files[relative].read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


class Tracker:
    """MLflow when MLFLOW_TRACKING_URI is set (the platform sets it), else printing only.

    Only rank 0 of a distributed run tracks: one run, one checkpoint.
    """

    def __init__(self, leader: bool = True) -> None:
        self.leader = leader
        self.enabled = leader and bool(os.environ.get("MLFLOW_TRACKING_URI"))
        self.run_id: str | None = None

    @contextmanager
    def run(self, name: str) -> Iterator[Tracker]:
        if not self.enabled:
            if self.leader:
                print("train.py: MLFLOW_TRACKING_URI is not set; metrics are printed, not tracked")
            yield self
            return
        import mlflow

        with mlflow.start_run(run_name=name) as run:
            self.run_id = run.info.run_id
            print(
                f"train.py: MLflow run {self.run_id} in experiment {os.environ.get('MLFLOW_EXPERIMENT_NAME')}"
            )
            yield self

    def params(self, values: dict[str, Any]) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_params(values)

    def metric(self, name: str, value: float, step: int) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_metric(name, value, step=step)

    def checkpoint(self, folder: Path, register_as: str) -> None:
        if not self.enabled:
            if register_as:
                print(f"train.py: not tracking, so the checkpoint is not registered as {register_as}")
            return
        import mlflow

        mlflow.log_artifacts(str(folder), "checkpoint")
        if register_as:
            self._register(register_as, folder_sha256(folder))

    def _register(self, name: str, content: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        client = MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        for version in client.search_model_versions(f"name = '{name}'"):
            if version.tags.get(CONTENT_TAG) == content:
                print(f"train.py: checkpoint already registered as {name} version {version.version}")
                return
        run = mlflow.active_run()
        assert run is not None
        version = client.create_model_version(
            name,
            source=f"{run.info.artifact_uri}/checkpoint",
            run_id=run.info.run_id,
            tags={CONTENT_TAG: content},
        )
        print(f"train.py: registered the final checkpoint as model {name} version {version.version}")


def smoke_test(task: str) -> None:
    env = gym.make(task)
    env.reset(seed=0)
    for _ in range(10):
        env.step(env.action_space.sample())
    print(f"train.py: smoke test passed ({task} steps)")


def train(args: argparse.Namespace) -> None:
    group = ProcessGroup()
    iterations = int(args.max_iterations or DEFAULT_ITERATIONS)
    seed = int(os.environ.get("SEED", "0"))
    rng = np.random.default_rng(seed)
    env = gym.make(args.task)
    start = starting_point(args, env, rng)
    start.params.update(group.broadcast(start.params))
    if group.world_size > 1:  # each process samples its own episodes
        rng = np.random.default_rng([seed, group.rank])
    output = Path(os.environ.get("TRAINING_CHECKPOINT_OUTPUT") or "outputs/checkpoints")
    tracker = Tracker(leader=group.is_leader)
    say = print if group.is_leader else _quiet
    with tracker.run(f"{args.task}-{args.checkpoint_mode}"):
        tracker.params({
            "mode": args.checkpoint_mode, "task": args.task, "num_envs": args.num_envs,
            "max_iterations": iterations, "start_iteration": start.iteration,
            "start_optimizer_step": start.adam.step, "hidden": ",".join(map(str, start.arch.hidden)),
            "initial_weights_sha256": weights_sha256(start.params), "seed": seed,
            "world_size": group.world_size,
        })  # fmt: skip
        last = start.iteration + iterations
        interval = int(os.environ.get("CHECKPOINT_INTERVAL") or DEFAULT_CHECKPOINT_INTERVAL)
        for iteration in range(start.iteration, last):
            mean_return = train_iteration(env, start, args.num_envs, rng, group)
            tracker.metric("mean_return", mean_return, step=iteration)
            say(f"iteration {iteration:4d}  mean_return {mean_return:7.1f}", flush=True)
            done = iteration + 1
            if group.is_leader and done % interval == 0 and done < last:
                saved = save_progress(output, start.arch, start.params, start.adam, done)
                say(f"train.py: checkpoint (iteration {done}) saved to {saved}", flush=True)
        final = weights_sha256(start.params)
        per_rank = group.gather(final)
        group.close()
        if not group.is_leader:
            return
        save_checkpoint(output, start.arch, start.params, start.adam, last)
        clear_progress(output)
        tracker.params({"final_iteration": last, "final_weights_sha256": final,
                        "rank_weights_sha256": ",".join(per_rank)})  # fmt: skip
        print(f"train.py: checkpoint (iteration {last}) saved to {output}")
        tracker.checkpoint(output, args.register_checkpoint)


def _quiet(*args: Any, **kwargs: Any) -> None:
    """Ranks other than 0 print nothing (their output would repeat rank 0's)."""


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.mode == "smoke-test":
        smoke_test(args.task)
    else:
        train(args)


if __name__ == "__main__":
    main(sys.argv[1:])

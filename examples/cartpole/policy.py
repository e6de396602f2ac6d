"""A tiny softmax policy (an MLP in numpy), its Adam optimizer and the checkpoint folder format.

A checkpoint is a folder: ``weights.npz`` (the parameters), ``optimizer.npz``
(Adam's moments), ``state.json`` (iteration and optimizer step counters) and
``architecture.json`` (layer sizes), the same files whichever mode wrote them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Architecture:
    """Layer sizes: observations in, hidden tanh layers, action logits out."""

    observations: int
    actions: int
    hidden: tuple[int, ...]

    @property
    def sizes(self) -> list[int]:
        return [self.observations, *self.hidden, self.actions]

    def to_json(self) -> str:
        data = {"observations": self.observations, "actions": self.actions, "hidden": list(self.hidden)}
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        data = json.loads(text)
        return cls(int(data["observations"]), int(data["actions"]), tuple(int(h) for h in data["hidden"]))


def init_params(arch: Architecture, rng: np.random.Generator) -> Params:
    """Scaled-normal weights, zero biases; the output layer starts small (near-uniform policy)."""
    params: Params = {}
    layers = list(zip(arch.sizes[:-1], arch.sizes[1:], strict=True))
    for index, (fan_in, fan_out) in enumerate(layers):
        scale = 0.01 if index == len(layers) - 1 else 1.0 / np.sqrt(fan_in)
        params[f"w{index}"] = rng.normal(0.0, scale, size=(fan_in, fan_out))
        params[f"b{index}"] = np.zeros(fan_out)
    return params


def layer_count(params: Params) -> int:
    return len(params) // 2


def forward(params: Params, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Action probabilities for a batch of observations, and each layer's input (for backprop)."""
    inputs = [obs]
    x = obs
    last = layer_count(params) - 1
    for index in range(last + 1):
        x = x @ params[f"w{index}"] + params[f"b{index}"]
        if index < last:
            x = np.tanh(x)
            inputs.append(x)
    logits = x - x.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=-1, keepdims=True), inputs


def policy_gradient(params: Params, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> Params:
    """Gradient of the REINFORCE loss ``-mean(log pi(a|s) * advantage)``."""
    probs, inputs = forward(params, obs)
    delta = probs.copy()
    delta[np.arange(len(actions)), actions] -= 1.0
    delta *= advantages[:, None] / len(actions)
    grads: Params = {}
    for index in reversed(range(layer_count(params))):
        grads[f"w{index}"] = inputs[index].T @ delta
        grads[f"b{index}"] = delta.sum(axis=0)
        if index > 0:
            delta = (delta @ params[f"w{index}"].T) * (1.0 - inputs[index] ** 2)
    return grads


class Adam:
    """Adam with its moments and step counter, which ``resume`` restores and ``warm-start`` does not."""

    def __init__(self, params: Params, lr: float = 0.01, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.step = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def apply(self, params: Params, grads: Params) -> None:
        self.step += 1
        for key, grad in grads.items():
            self.m[key] = self.beta1 * self.m[key] + (1 - self.beta1) * grad
            self.v[key] = self.beta2 * self.v[key] + (1 - self.beta2) * grad**2
            m_hat = self.m[key] / (1 - self.beta1**self.step)
            v_hat = self.v[key] / (1 - self.beta2**self.step)
            params[key] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)

    def state(self) -> dict[str, np.ndarray]:
        return {f"m_{k}": v for k, v in self.m.items()} | {f"v_{k}": v for k, v in self.v.items()}

    def load(self, state: dict[str, np.ndarray], step: int) -> None:
        self.m = {k: state[f"m_{k}"].copy() for k in self.m}
        self.v = {k: state[f"v_{k}"].copy() for k in self.v}
        self.step = step


def weights_sha256(params: Params) -> str:
    """A digest of the parameter values, to show which weights a run started and ended with."""
    digest = hashlib.sha256()
    for key in sorted(params):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(params[key], dtype=np.float64).tobytes())
    return digest.hexdigest()


@dataclass
class Checkpoint:
    arch: Architecture
    params: Params
    optimizer: dict[str, np.ndarray]
    iteration: int
    optimizer_step: int


def save_checkpoint(folder: Path, arch: Architecture, params: Params, adam: Adam, iteration: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "weights.npz", **params)
    np.savez(folder / "optimizer.npz", **adam.state())
    (folder / "architecture.json").write_text(arch.to_json())
    state = {"iteration": iteration, "optimizer_step": adam.step}
    (folder / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def load_checkpoint(folder: Path) -> Checkpoint:
    """Read a checkpoint folder (or the single checkpoint folder inside it)."""
    folder = _checkpoint_root(folder)
    with np.load(folder / "weights.npz") as weights, np.load(folder / "optimizer.npz") as optimizer:
        params = {k: weights[k].copy() for k in weights.files}
        moments = {k: optimizer[k].copy() for k in optimizer.files}
    state = json.loads((folder / "state.json").read_text())
    arch = Architecture.from_json((folder / "architecture.json").read_text())
    return Checkpoint(arch, params, moments, int(state["iteration"]), int(state["optimizer_step"]))


def _checkpoint_root(folder: Path) -> Path:
    """The folder itself when it is a checkpoint, else the newest checkpoint folder inside it."""
    if (folder / "architecture.json").is_file():
        return folder
    found = [p.parent for p in folder.rglob("state.json") if (p.parent / "architecture.json").is_file()]
    if not found:
        raise SystemExit(f"train.py: {folder} holds no checkpoint (architecture.json, weights.npz, ...)")
    return max(found, key=lambda p: int(json.loads((p / "state.json").read_text())["iteration"]))


def save_progress(output: Path, arch: Architecture, params: Params, adam: Adam, iteration: int) -> Path:
    """A checkpoint of a training under way, ``output/iteration-NNNNNN``, written whole or not at all
    (into a hidden folder first, then renamed), replacing the previous one."""
    folder = output / f"iteration-{iteration:06d}"
    partial = output / f".iteration-{iteration:06d}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    save_checkpoint(partial, arch, params, adam, iteration)
    partial.rename(folder)
    for older in output.glob("iteration-*"):
        if older != folder:
            shutil.rmtree(older, ignore_errors=True)
    return folder


def clear_progress(output: Path) -> None:
    """Remove the in-progress checkpoints once the final one is saved."""
    for folder in [*output.glob("iteration-*"), *output.glob(".iteration-*.partial")]:
        shutil.rmtree(folder, ignore_errors=True)

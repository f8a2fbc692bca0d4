"""Policies on disk: self-describing, written atomically, loaded without running pickled code."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

from ppo.errors import UsageError
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler

FORMAT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o666 & ~current_umask())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a TorchVersion, which weights_only loading refuses
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def policy_checkpoint(
    policy: ActorCritic, env_settings: dict[str, Any], frames: int, score: float,
    reward_scaler: RewardScaler | None = None,
) -> dict[str, Any]:
    """Everything needed to rebuild and run the policy, in types `weights_only` loading accepts.

    With the statistics of the reward scaler it was trained with, when given: a transfer
    study restores them (the critic learnt returns on that scale); checkpoints from before
    they were saved simply lack the key.
    """
    scaler = {"reward_scaler": reward_scaler.state_dict()} if reward_scaler else {}
    return {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        "hidden_layers": list(policy.hidden_layers),
        "obs_dim": linear_layers(policy.actor)[0].in_features,
        "act_dim": linear_layers(policy.actor)[-1].out_features,
        "env": dict(env_settings),
        "frames": int(frames),
        "score": float(score),
        "versions": library_versions(),
        **scaler,
    }


def save_policy(path: Path, policy: ActorCritic, env_settings: dict[str, Any], frames: int,
                score: float, reward_scaler: RewardScaler | None = None) -> None:
    atomic_torch_save(policy_checkpoint(policy, env_settings, frames, score, reward_scaler),
                      path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a .pt without running code from it; any unreadable file is a UsageError."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UsageError(
            f"{path}: refused to load, it is not a plain weights file ({unpickling_cause(error)})"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as error:
        raise UsageError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"{path}: not a transfer_rl policy checkpoint")
    return checkpoint


def unpickling_cause(error: pickle.UnpicklingError) -> str:
    """The one informative line of torch's multi-line, colour-coded weights_only refusal."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    for line in lines:
        if "Unsupported" in line:
            return line
    return next((line for line in lines if line), "unsafe content")


def policy_from_checkpoint(checkpoint: dict[str, Any]) -> ActorCritic:
    policy = ActorCritic(checkpoint["obs_dim"], checkpoint["act_dim"], checkpoint["hidden_layers"])
    policy.load_state_dict(checkpoint["state_dict"])
    return policy


def config_as_plain_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as builtins only (tuples become lists), safe for weights_only loading."""
    fields = dataclasses.asdict(config).items()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields}

"""Finding and loading the `--initial_model` into a freshly built policy.

Loading copies the whole state_dict, so the observation normaliser comes with the weights: the
loaded layers only make sense on inputs scaled the way they were trained on. The reward
scaler's statistics come too, where the checkpoint has them: the critic learnt returns on
their scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

import envs
from common.checkpoint import architecture_of, design_inputs_of, scaler_problem
from common.errors import UsageError
from ppo.network import ActorCritic
from ppo.normalize import RewardScaler

CARRIED_SCALER_COUNT = 10_000
"""The most frames the reward scaling statistics carried from an initial model count as.

The critic learnt its targets divided by the source's return std, so a study starts with it;
but the new walker's returns are what it must learn, and a source's full count (3.6 million
frames for trained_models/universal_24_46.pt) would let a 500,000-frame fine-tune move the std
only ~12% of the way. Counted as at most 10,000 frames (one batch at the default
--batch_size), the carried statistics weigh half after the fine-tune's first 10,000 frames,
a tenth after 90,000, whatever the source trained for."""

def describe_architecture(state_dict: dict[str, Any]) -> str:
    """The architecture as flags, e.g. `--hidden_layers=[32,32] (24 observations, 4 actions)`.

    Read from the tensors, not from the checkpoint's metadata, because the tensors are what
    would fail to load.
    """
    architecture = architecture_of(state_dict)
    if architecture is None:
        return "no recognisable actor network"
    obs_dim, act_dim, hidden = architecture
    return (f"--hidden_layers=[{','.join(map(str, hidden))}] ({obs_dim} observations, "
            f"{act_dim} actions)")


def check_architecture(policy: ActorCritic, state_dict: dict[str, Any], path: Path) -> None:
    """Raise a one-line UsageError naming both architectures if `state_dict` cannot load."""
    def shapes(tensors: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
        return {key: tuple(value.shape) if isinstance(value, torch.Tensor) else None
                for key, value in tensors.items()}

    expected = policy.state_dict()
    if shapes(state_dict) != shapes(expected):
        raise UsageError(
            f"--initial_model: {path} has {describe_architecture(state_dict)} but this study "
            f"builds {describe_architecture(expected)}; set --hidden_layers to match the model"
        )


def load_initial_policy(policy: ActorCritic, checkpoint: dict[str, Any], path: Path) -> None:
    """Copy weights and normaliser from `checkpoint` (loaded from `path`) into `policy`."""
    state_dict = checkpoint["state_dict"]
    check_architecture(policy, state_dict, path)
    policy.load_state_dict(state_dict)


def load_reward_scaling(reward_scaler: RewardScaler, checkpoint: dict[str, Any],
                        path: Path) -> str:
    """Give `reward_scaler` the statistics saved with the initial model; say what happened.

    Checkpoints from before the statistics were saved (the shipped sample among them) have
    none: the scaler then starts afresh, as it always did. The mean and variance come as
    saved; their count is capped at CARRIED_SCALER_COUNT, so the new walker's returns take
    over at the same rate whichever model the study starts from.
    """
    saved = checkpoint.get("reward_scaler")
    if saved is None:
        return "transfer: the model has no reward scaling statistics; they start afresh"
    if scaler_problem(saved):
        raise UsageError(f"--initial_model: {path}: its reward scaling statistics are not "
                         f"finite numbers; train from another model")
    reward_scaler.load_state_dict(saved)
    reward_scaler.count = min(reward_scaler.count, CARRIED_SCALER_COUNT)
    return (f"transfer: reward scaling carried over (return std "
            f"{math.sqrt(reward_scaler.var):.3g} over {saved['count']:,.0f} steps, counted as "
            f"{reward_scaler.count:,.0f})")


def checked_design_inputs(checkpoint: dict[str, Any], walker: dict[str, Any], path: Path,
                          flag: str) -> dict[str, list[float]]:
    """`design_inputs_of(checkpoint)`, checked to be inputs the walker with constructor
    arguments `walker` can append to its observations: a damaged or foreign checkpoint is one
    UsageError line naming `flag` and `path`, not a traceback from the walker."""
    inputs = design_inputs_of(checkpoint)
    try:
        envs.check_walker_arguments(**{**walker, "design_inputs": inputs})
    except (envs.InvalidWalkerArgument, TypeError) as error:
        raise UsageError(f"--{flag}: {path}: its design inputs do not fit this walker "
                         f"({error})") from None
    return inputs


def check_design_inputs(source_inputs: dict[str, list[float]],
                        design_ranges: dict[str, list[float]], path: Path, flag: str) -> None:
    """A study over a range of designs needs a policy that observes every ranged parameter:
    a fixed-design policy cannot tell the bodies it is given apart."""
    unobserved = [name for name in design_ranges if name not in source_inputs]
    if not unobserved:
        return
    observed = ", ".join(source_inputs) or "no design parameters (a fixed-design policy)"
    ranges = " ".join(f"--{name}={low:g}:{high:g}" for name, (low, high) in design_ranges.items()
                      if name in unobserved)
    raise UsageError(f"{flag}: {path} observes {observed}, so it cannot train over {ranges}; "
                     f"start from a policy conditioned on them, or from scratch")

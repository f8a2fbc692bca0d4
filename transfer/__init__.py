"""Transfer learning: start a study from a policy trained for another walker.

The trainer calls these functions:

- `load_source(config)` once: the `--initial_model` checkpoint, read and checked once for all
  that follows.
- `design_inputs(config, source)`: what the walkers append to their observations.
- `prepare(policy, reward_scaler, config, schedules, source)` once, on the freshly built policy:
  copies in the source's weights, observation normaliser and reward scaling statistics, applies
  `--reset_final_layer` and `--add_noise_layers`, freezes layers for `--transfer_learning`, and
  returns a summary to print ("" without a model).
- `apply_thaw_schedule(policy, strategy, schedules, frame)` before every update: sets which
  layers train at that frame and returns the layers that just thawed, for the log.

The optimiser is built over all parameters; frozen ones simply never get a gradient.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
from common.checkpoint import design_inputs_of, load_checkpoint, trained_env
from common.config import Config
from common.models import resolve_model_path
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler
from ppo.schedules import Schedules
from transfer.freezing import apply_thaw_schedule, first_trainable_layer, set_trainable
from transfer.loading import (
    check_design_inputs,
    checked_design_inputs,
    load_initial_policy,
    load_reward_scaling,
)
from transfer.perturb import add_noise, reset_final_layer

__all__ = [
    "add_noise",
    "apply_thaw_schedule",
    "Source",
    "design_inputs",
    "first_trainable_layer",
    "load_initial_policy",
    "load_source",
    "prepare",
    "reset_final_layer",
    "set_trainable",
]


@dataclass(frozen=True)
class Source:
    """The `--initial_model` a study starts from: where it is, and its checked contents."""

    path: Path
    checkpoint: dict[str, Any]


def load_source(config: Config) -> Source | None:
    if not config.has_initial_model:
        return None
    path = resolve_model_path(config.initial_model, Path(config.models_dir))
    return Source(path, load_checkpoint(path, "initial_model"))


def design_inputs(config: Config, source: Source | None) -> dict[str, list[float]]:
    """What the study's walkers append to their observations: the initial model's design
    inputs if it has any (the transferred layers read the observation laid out and scaled as it
    was trained with, whatever design or narrower range the study runs), else the study's own
    ranges (empty: a fixed design, nothing appended)."""
    ranges = config.design_ranges()
    if source is None:
        return ranges
    source_inputs = checked_design_inputs(source.checkpoint, config.env_kwargs(), source.path,
                                          "initial_model")
    check_design_inputs(source_inputs, ranges, source.path, "--initial_model")
    return source_inputs


def prepare(policy: ActorCritic, reward_scaler: RewardScaler, config: Config,
            schedules: Schedules, source: Source | None) -> str:
    """Load, perturb and freeze `policy` as the transfer flags say; return a summary for the log.

    The reward scaler gets the statistics the initial model was trained with, when its
    checkpoint has them: the critic learnt returns on that scale, and a fresh scaler would
    change the scale of its targets under it. They count as at most
    `transfer.loading.CARRIED_SCALER_COUNT` frames, so that the new walker's returns take over.

    Reset and noise share one generator, drawn in a fixed order (reset first), from a stream of
    `SeedSequence(--seed)` of its own (`transfer_seed`): a study is reproducible, and neither
    its exploration noise nor its walkers draw the same numbers.
    """
    if source is None:
        return ""
    path, checkpoint = source.path, source.checkpoint
    load_initial_policy(policy, checkpoint, path)
    scaling = load_reward_scaling(reward_scaler, checkpoint, path)
    generator = torch.Generator().manual_seed(transfer_seed(config.seed))
    if config.reset_final_layer:
        reset_final_layer(policy, generator)
    if config.add_noise_layers:
        add_noise(policy, config.add_noise_layers, config.add_noise_alpha, generator)
    apply_thaw_schedule(policy, config.transfer_learning, schedules, frame=0)
    # Fine-tuning a fixed-design policy on another design is the transfer itself: the summary
    # says it. A conditioned one is told the body, which may lie outside what it learned.
    source_env = trained_env(checkpoint)
    if design_inputs_of(checkpoint) and (
            warning := envs.outside_warning(path.name, source_env, config.env_kwargs())):
        print(warning, file=sys.stderr, flush=True)  # on stderr: quiet or not
    lines = [describe_source(path, checkpoint), scaling, describe_designs(checkpoint, config),
             describe_changes(config),
             describe_schedule(config.transfer_learning, schedules,
                               len(linear_layers(policy.actor)))]
    return "\n".join(line for line in lines if line)


TRANSFER_STREAM = 2**32
"""The spawn key of the transfer generator's stream: the walkers' streams are keyed by update
counts (`walker_seeds`), which never reach it; the study's own generator is seeded by `--seed`."""


def transfer_seed(seed: int) -> int:
    return int(np.random.SeedSequence(seed, spawn_key=(TRANSFER_STREAM,))
               .generate_state(1, np.uint64)[0])


def describe_source(path: Path, checkpoint: dict[str, Any]) -> str:
    """Where the model came from and, when the checkpoint says, what it was trained for."""
    details = []
    if isinstance(checkpoint.get("score"), int | float):
        details.append(f"score {checkpoint['score']:.1f}")
    if isinstance(checkpoint.get("frames"), int):
        details.append(f"{checkpoint['frames']:,} frames")
    suffix = f" ({', '.join(details)})" if details else ""
    return f"transfer: loaded {path}{suffix}"


def describe_designs(checkpoint: dict[str, Any], config: Config) -> str:
    """Source and target walkers, and what differs between them."""
    source = trained_env(checkpoint)
    target = {**config.env_kwargs(), "design_inputs": design_inputs_of(checkpoint) or None}
    differences = envs.design_differences(source, target)
    return (f"transfer: source walker {envs.describe_design(source)}\n"
            f"transfer: target walker {envs.describe_design(target)}\n"
            f"transfer: design differs in {'; '.join(differences) or 'nothing'}")


def describe_changes(config: Config) -> str:
    changes = []
    if config.reset_final_layer:
        changes.append("re-initialised the final layer")
    if config.add_noise_layers:
        changes.append(f"added noise (alpha {config.add_noise_alpha:g}) to the final "
                       f"{config.add_noise_layers} layer(s)")
    return f"transfer: {' and '.join(changes)} of actor and critic" if changes else ""


def describe_schedule(strategy: str, schedules: Schedules, num_layers: int) -> str:
    """Which of the `num_layers` Linear layers (counted from the input) train, and from when."""
    # With an initial model, "none" is `initialize` (the weights are loaded either way): say so.
    strategy = "initialize" if strategy == "none" else strategy
    if strategy == "initialize":
        return (f"transfer: initialize: started from the loaded weights; all {num_layers} "
                f"layers of actor and critic train")
    final_only = (f"transfer: {strategy}: only the final layer ({num_layers}/{num_layers}) "
                  f"of actor and critic trains")
    if strategy == "freeze_all_but_final":
        return f"{final_only}; the other {num_layers - 1} stay frozen"
    thaws = [f"{num_layers - rank} at frame {frame:,}"
             for rank, frame in enumerate(schedules.thaw_frames, start=1)]
    return f"{final_only} now; the others thaw one by one: layer {', '.join(thaws)}"

"""What a study needs from the machine, estimated before it starts, and what the machine has.

The estimate is deliberately rough and on the high side: its job is to refuse settings that
cannot possibly run (`--hidden_layers=[100000,100000]` wants terabytes) with a message, instead
of a MemoryError, an out-of-memory kill or a swapping machine an hour later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from ppo.gradient import SHARD_ROWS

BYTES_PER_PARAMETER = 4 * 10
"""float32 weights, their gradients, Adam's two moments, the rollout's NumPy snapshot, and the
copies made while a checkpoint with the optimiser's state is serialised."""
ACTIVATION_COPIES = 4
"""Per unit and minibatch row: pre-activation, tanh output and their gradients."""
BYTES_PER_WALKER = 1_000_000
BYTES_PER_WALKER_PER_TERRAIN_SCALE = 200_000
"""Measured: about 0.6 MB per walker at terrain scale 2, 13 MB at scale 100."""
BYTES_PER_WORKER = 100_000_000
"""A forked worker's own pages (its interpreter state diverges from the trainer's)."""
MEMORY_FRACTION = 0.5
"""A study may plan to use at most half of the machine's memory (`--help` says "half")."""
CAN_FORK = hasattr(os, "fork")
"""Whether walker workers can be forked (not on Windows): without, a study steps in-process."""
ESTIMATE_INPUTS = 64
ESTIMATE_OUTPUTS = 8
"""Upper bounds on the policy's inputs (24 observations today) and outputs (4 actions) for the
estimate; they matter little next to the hidden layers."""


def network_parameters(hidden_layers: Sequence[int], inputs: int = ESTIMATE_INPUTS,
                       outputs: int = ESTIMATE_OUTPUTS) -> int:
    """Weights and biases of actor and critic together."""
    actor = [inputs, *hidden_layers, outputs]
    critic = [inputs, *hidden_layers, 1]
    return sum((fan_in + 1) * fan_out for sizes in (actor, critic)
               for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True))


def gradient_shard_bytes(hidden_layers: Sequence[int], minibatch_size: int) -> int:
    """The update's shared arrays (`ppo.gradient.shared_layout`): the weights, and a gradient
    for each shard of SHARD_ROWS rows of a minibatch."""
    return 4 * network_parameters(hidden_layers) * (1 + math.ceil(minibatch_size / SHARD_ROWS))


def batch_bytes_per_frame(inputs: int = ESTIMATE_INPUTS, outputs: int = ESTIMATE_OUTPUTS) -> int:
    """Rollout storage per frame: raw and normalised observations, actions and their noise,
    eight float32 scalars, the flattened batch's advantages and returns, and the batch's copy
    that the update shares with the workers (observations, actions and three scalars)."""
    return 4 * (2 * inputs + 2 * outputs + 8 + 2 + inputs + outputs + 3)


def memory_needs(hidden_layers: Sequence[int], frames_per_batch: int, minibatch_size: int,
                 num_envs: int, terrain_length_scale: float, num_workers: int
                 ) -> dict[str, int]:
    """Estimated bytes, by the flag that drives each part."""
    return {
        "hidden_layers": gradient_shard_bytes(hidden_layers, minibatch_size)
        + BYTES_PER_PARAMETER * network_parameters(hidden_layers)
        + 4 * ACTIVATION_COPIES * 2 * minibatch_size * sum(hidden_layers),
        "batch_size": frames_per_batch * batch_bytes_per_frame(),
        "num_envs": num_envs * int(BYTES_PER_WALKER
                                   + BYTES_PER_WALKER_PER_TERRAIN_SCALE * terrain_length_scale),
        "num_workers": num_workers * BYTES_PER_WORKER,
    }


def machine_memory() -> int | None:
    """Bytes of memory this process may use: physical memory, or a cgroup limit below it."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    limit = cgroup_memory_limit()
    return min(physical, limit) if limit else physical


def cgroup_memory_limit() -> int | None:
    """A container's memory limit (cgroup v2, then v1), if one is set."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            return int(text)
    return None


def memory_budget() -> int | None:
    total = machine_memory()
    return int(total * MEMORY_FRACTION) if total else None


def describe_bytes(count: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if count >= size:
            return f"{count / size:.3g} {unit}"
    return f"{count / 1e3:.3g} kB"

"""Which Linear layers train at a given frame, enforced with `requires_grad`.

Freezing by `requires_grad=False` (rather than a zero learning rate) is what makes "frozen" mean
bit-identical: a frozen parameter never gets a gradient, and every torch optimiser skips a
parameter whose `.grad` is None, so neither momentum nor weight decay can move it. A layer that
thaws later starts with empty optimiser state, as if it had just been added.
"""

from __future__ import annotations

import math
from fractions import Fraction

from torch import nn

from ppo.config import TRANSFER_STRATEGIES, Config
from ppo.errors import UsageError
from ppo.network import ActorCritic, linear_layers
from transfer.layers import layer_label, named_networks


def thaw_frame(rank: int, total_frames: int, tl_end: float, num_layers: int) -> int:
    """freeze_then_thaw: the first frame at which the `rank`-th frozen layer from the output trains.

    The `num_layers - 1` non-final layers thaw evenly over `tl_end * total_frames`. Computed in
    exact fractions of `tl_end` as written (0.1 is 1/10, not the float just above it), so a
    threshold that lands on an update's frame count, as 0.1 * 1e6 does, is not missed by a batch.
    """
    exact = Fraction(str(tl_end)) * total_frames * rank / (num_layers - 1)
    return math.ceil(exact)


def frozen_layer_count(frame: int, total_frames: int, tl_end: float, num_layers: int) -> int:
    """freeze_then_thaw: how many layers, counted from the input, are still frozen at `frame`."""
    frozen_at_start = num_layers - 1
    thawed = sum(
        1 for rank in range(1, frozen_at_start + 1)
        if frame >= thaw_frame(rank, total_frames, tl_end, num_layers)
    )
    return frozen_at_start - thawed


def first_trainable_layer(strategy: str, frame: int, total_frames: int, tl_end: float,
                          num_layers: int) -> int:
    """Index (input first) of the first Linear layer that trains; all later layers train too."""
    if strategy in ("none", "initialize"):
        return 0
    if strategy == "freeze_all_but_final":
        return num_layers - 1
    if strategy == "freeze_then_thaw":
        return frozen_layer_count(frame, total_frames, tl_end, num_layers)
    raise UsageError(f"--transfer_learning: must be one of {TRANSFER_STRATEGIES}, got {strategy!r}")


def set_trainable(network: nn.Sequential, first_trainable: int, network_name: str) -> list[str]:
    """Train the Linear layers from index `first_trainable` on, freeze those before it.

    Returns the labels of layers that were frozen and now train. Freezing also drops any
    gradient left from the last step, so nothing stale can reach the optimiser.
    """
    layers = linear_layers(network)
    thawed = []
    for index, layer in enumerate(layers):
        trainable = index >= first_trainable
        was_trainable = all(param.requires_grad for param in layer.parameters())
        for param in layer.parameters():
            param.requires_grad_(trainable)
            if not trainable:
                param.grad = None
        if trainable and not was_trainable:
            thawed.append(layer_label(network_name, index, len(layers)))
    return thawed


def apply_thaw_schedule(policy: ActorCritic, config: Config, frame: int) -> list[str]:
    """Set which layers of actor and critic train at `frame`; returns the layers that just thawed.

    Stateless and idempotent (the state is `requires_grad` itself), so the trainer can call it
    before every update, and a resumed study gets the right layers at its resume frame.
    """
    thawed = []
    for name, network in named_networks(policy):
        first = first_trainable_layer(config.transfer_learning, frame, config.total_frames,
                                      config.tl_end, len(linear_layers(network)))
        thawed += set_trainable(network, first, name)
    return thawed

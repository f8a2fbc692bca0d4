"""Which Linear layers train at a given frame, enforced with `requires_grad`; the frames at
which `freeze_then_thaw` thaws them are the study's `Schedules`, fixed when it starts.

Freezing by `requires_grad=False` (rather than a zero learning rate) is what makes "frozen" mean
bit-identical: a frozen parameter never gets a gradient, and every torch optimiser skips a
parameter whose `.grad` is None, so neither momentum nor weight decay can move it. A layer that
thaws later starts with empty optimiser state, as if it had just been added.
"""

from __future__ import annotations

from torch import nn

from common.config import TRANSFER_STRATEGIES
from common.errors import UsageError
from ppo.network import ActorCritic, linear_layers
from ppo.schedules import Schedules
from transfer.layers import layer_label, named_networks


def first_trainable_layer(strategy: str, frame: int, schedules: Schedules,
                          num_layers: int) -> int:
    """Index (input first) of the first Linear layer that trains; all later layers train too."""
    if strategy in ("none", "initialize"):
        return 0
    if strategy == "freeze_all_but_final":
        return num_layers - 1
    if strategy == "freeze_then_thaw":
        return schedules.frozen_layer_count(frame)
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


def apply_thaw_schedule(policy: ActorCritic, strategy: str, schedules: Schedules,
                        frame: int) -> list[str]:
    """Set which layers of actor and critic train at `frame` under `strategy` (the study's
    `--transfer_learning`) and its thaw frames; returns the layers that just thawed.

    Stateless and idempotent (the state is `requires_grad` itself), so the trainer can call it
    before every update, and a resumed study gets the right layers at its resume frame.
    """
    thawed = []
    for name, network in named_networks(policy):
        first = first_trainable_layer(strategy, frame, schedules, len(linear_layers(network)))
        thawed += set_trainable(network, first, name)
    return thawed

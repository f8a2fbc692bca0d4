"""Naming the Linear layers of the policy's two networks, for messages and schedules."""

from __future__ import annotations

from torch import nn

from ppo.network import ActorCritic

NETWORK_NAMES = ("actor", "critic")


def named_networks(policy: ActorCritic) -> list[tuple[str, nn.Sequential]]:
    """Both networks with their names: every transfer step treats actor and critic alike."""
    return list(zip(NETWORK_NAMES, policy.networks, strict=True))


def layer_label(network_name: str, index: int, num_layers: int) -> str:
    """Label such as `actor layer 4/5`: counted from the input, so the final layer is `5/5`."""
    return f"{network_name} layer {index + 1}/{num_layers}"

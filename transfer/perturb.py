"""Changing a loaded policy before training: re-initialising the final layer, adding noise.

Both draw from a `torch.Generator` the caller seeds, never the global RNG: the study's
other random streams stay the same whether or not these options are used. Random numbers are
drawn on the CPU and copied, so the result does not depend on the policy's device.
"""

from __future__ import annotations

import torch
from torch import nn

from common.errors import UsageError
from ppo.network import OUTPUT_GAINS, ActorCritic, init_linear, linear_layers
from transfer.layers import named_networks


def reset_final_layer(policy: ActorCritic, generator: torch.Generator) -> None:
    """Re-initialise the final Linear layer of actor and critic as a fresh policy would have it."""
    for name, network in named_networks(policy):
        final = linear_layers(network)[-1]
        # skip_init: building the scratch layer must not consume the global RNG.
        fresh = nn.utils.skip_init(nn.Linear, final.in_features, final.out_features,
                                   dtype=final.weight.dtype)
        init_linear(fresh, OUTPUT_GAINS[name], generator)
        with torch.no_grad():
            final.weight.copy_(fresh.weight)
            final.bias.copy_(fresh.bias)


def add_scaled_noise(param: torch.Tensor, alpha: float, generator: torch.Generator) -> None:
    """Add N(0, (alpha * std(param))^2) noise to every element of `param`, in place.

    The population std (correction=0) makes a one-element tensor, such as the critic's output
    bias, get std 0 and so no noise, where the sample std would be NaN and poison the policy.
    """
    with torch.no_grad():
        scale = alpha * param.std(correction=0)
        noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
        param.add_(noise.to(param.device) * scale)


def add_noise(policy: ActorCritic, num_layers: int, alpha: float,
              generator: torch.Generator) -> None:
    """Add scaled Gaussian noise to weight and bias of the final `num_layers` Linear layers of
    actor and critic; each tensor is scaled by its own std, so noise is relative to the layer."""
    available = len(linear_layers(policy.actor))
    if not 0 <= num_layers <= available:
        raise UsageError(
            f"--add_noise_layers: must be in [0, {available}] (the number of layers), "
            f"got {num_layers}"
        )
    for _, network in named_networks(policy):
        layers = linear_layers(network)
        for layer in layers[len(layers) - num_layers:]:
            add_scaled_noise(layer.weight, alpha, generator)
            add_scaled_noise(layer.bias, alpha, generator)

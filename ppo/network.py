"""The actor-critic policy, with its observation normaliser, as one saveable module."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ppo.normalize import RunningNormalizer

OUTPUT_GAINS = {"actor": 0.01, "critic": 1.0}
"""Orthogonal-init gains of the final layers: a near-zero actor output starts every action at
the middle of its range; the critic's output starts at the scale of the (scaled) returns."""


class NumpyTanh(torch.autograd.Function):
    """tanh computed by NumPy, with tanh's gradient 1 - tanh(x)^2.

    This torch build's float32 tanh is not vectorised, NumPy's is: on a minibatch's hidden
    activations NumPy's is many times faster (measured: benchmarks/README.md). The rollout's
    NumPy copy of the policy (`ppo.inference`) uses the same function.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.tanh(x.detach().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh, through NumPy on the CPU (see NumpyTanh), torch's elsewhere and while traced: a
    tracer (the ONNX export's) records a NumPy call as a constant, not as an operation."""
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) \
            and not torch.jit.is_tracing():
        return NumpyTanh.apply(x)
    return torch.tanh(x)


class Tanh(nn.Tanh):
    """nn.Tanh computed by `tanh`; an nn.Tanh to everything that inspects the network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x)


def mlp(sizes: Sequence[int], output_gain: float, squash_output: bool = False) -> nn.Sequential:
    """Tanh MLP, orthogonal initialisation: gain sqrt(2) inside, `output_gain` at the output;
    `squash_output`: tanh on the output too."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        is_output = i == len(sizes) - 2
        linear = nn.Linear(fan_in, fan_out)
        init_linear(linear, output_gain if is_output else math.sqrt(2))
        layers.append(linear)
        if not is_output or squash_output:
            layers.append(Tanh())
    return nn.Sequential(*layers)


def init_linear(layer: nn.Linear, gain: float, generator: torch.Generator | None = None) -> None:
    nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
    nn.init.zeros_(layer.bias)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs over normalised observations.

    The actor's output is the mean action, squashed by tanh into the walker's action range
    [-1, 1] (the tanh is the actor's last module, so every user of the actor gets it);
    exploration noise has a std set by the study (fixed or scheduled), not learned, as in the
    spec. `hidden_layers` applies to both networks. The normaliser's statistics follow only
    the first `tracked_inputs` observation columns (all by default): see `RunningNormalizer`.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_layers: Sequence[int],
                 tracked_inputs: int | None = None) -> None:
        super().__init__()
        self.hidden_layers = tuple(hidden_layers)
        self.obs_normalizer = RunningNormalizer(obs_dim, tracked_inputs)
        self.actor = mlp([obs_dim, *hidden_layers, act_dim], output_gain=OUTPUT_GAINS["actor"],
                         squash_output=True)
        self.critic = mlp([obs_dim, *hidden_layers, 1], output_gain=OUTPUT_GAINS["critic"])

    @property
    def networks(self) -> tuple[nn.Sequential, nn.Sequential]:
        return self.actor, self.critic

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        """(batch, obs_dim) raw observations -> (batch, act_dim) mean actions."""
        return self.actor(self.obs_normalizer(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """(batch, obs_dim) raw observations -> (batch,) values."""
        return self.critic(self.obs_normalizer(obs)).squeeze(-1)


def linear_layers(network: nn.Sequential) -> list[nn.Linear]:
    """The network's Linear layers, input first; the last one is the "final layer"."""
    return [module for module in network if isinstance(module, nn.Linear)]

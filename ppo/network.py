"""The actor-critic policy, with its observation normaliser, as one saveable module."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

OBS_CLIP = 10.0
"""Normalised observations are clipped to +-OBS_CLIP: a rare outlier must not saturate tanh."""

OUTPUT_GAINS = {"actor": 0.01, "critic": 1.0}
"""Orthogonal-init gains of the final layers: a near-zero actor output starts every action at
the middle of its range; the critic's output starts at the scale of the (scaled) returns."""


def mlp(sizes: Sequence[int], output_gain: float) -> nn.Sequential:
    """Tanh MLP, orthogonal initialisation: gain sqrt(2) inside, `output_gain` at the output."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        is_output = i == len(sizes) - 2
        linear = nn.Linear(fan_in, fan_out)
        init_linear(linear, output_gain if is_output else math.sqrt(2))
        layers.append(linear)
        if not is_output:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def init_linear(layer: nn.Linear, gain: float, generator: torch.Generator | None = None) -> None:
    nn.init.orthogonal_(layer.weight, gain=gain, generator=generator)
    nn.init.zeros_(layer.bias)


class RunningNormalizer(nn.Module):
    """Running mean and variance of observations (Chan et al.'s parallel update).

    The statistics are buffers, so they live in the policy's state_dict: a policy saved
    without the normaliser it was trained with would see inputs on the wrong scale.
    """

    def __init__(self, size: int, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch of raw observations, shape (n, size), into the statistics."""
        batch_t = torch.as_tensor(batch, dtype=torch.float64, device=self.mean.device)
        batch_count = batch_t.shape[0]
        batch_mean = batch_t.mean(dim=0)
        batch_var = batch_t.var(dim=0, unbiased=False)
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta.square() * self.count * batch_count / total) / total
        self.count = total

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var + self.epsilon).to(obs.dtype)
        return ((obs - self.mean.to(obs.dtype)) / std).clamp(-OBS_CLIP, OBS_CLIP)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs over normalised observations.

    The actor outputs the mean action through tanh (the walker's actions live in [-1, 1]);
    exploration noise has a std set by the study (fixed or scheduled), not learned, as in the
    spec. `hidden_layers` applies to both networks.
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden_layers: Sequence[int]) -> None:
        super().__init__()
        self.hidden_layers = tuple(hidden_layers)
        self.obs_normalizer = RunningNormalizer(obs_dim)
        self.actor = mlp([obs_dim, *hidden_layers, act_dim], output_gain=OUTPUT_GAINS["actor"])
        self.critic = mlp([obs_dim, *hidden_layers, 1], output_gain=OUTPUT_GAINS["critic"])

    @property
    def networks(self) -> tuple[nn.Sequential, nn.Sequential]:
        return self.actor, self.critic

    def mean_action(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.actor(self.obs_normalizer(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.obs_normalizer(obs)).squeeze(-1)


def linear_layers(network: nn.Sequential) -> list[nn.Linear]:
    """The network's Linear layers, input first; the last one is the "final layer"."""
    return [module for module in network if isinstance(module, nn.Linear)]

"""Running statistics that keep what the networks see on a steady scale: observations (the
policy's `RunningNormalizer`) and rewards (`RewardScaler`)."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from torch import nn

Number = TypeVar("Number", float, torch.Tensor)

OBS_CLIP = 10.0
"""Normalised observations are clipped to +-OBS_CLIP: a rare outlier must not saturate tanh."""


def merge_moments(mean: Number, var: Number, count: Number, batch_mean: Number,
                  batch_var: Number, batch_count: int) -> tuple[Number, Number, Number]:
    """Mean, variance and count of the union of two samples, from those of each (Chan et al.'s
    parallel update). Plain arithmetic, so it serves floats and tensors alike."""
    total = count + batch_count
    delta = batch_mean - mean
    merged_mean = mean + delta * batch_count / total
    merged_var = (var * count + batch_var * batch_count
                  + delta**2 * count * batch_count / total) / total
    return merged_mean, merged_var, total


class RunningNormalizer(nn.Module):
    """Running mean and variance of observations; normalises and clips them.

    The statistics are buffers, so they live in the policy's state_dict: a policy saved
    without the normaliser it was trained with would see inputs on the wrong scale.

    Only the first `tracked` columns follow the data; the others keep the statistics they have
    (mean 0 and variance 1 when new, a loaded policy's otherwise). A walker's design inputs
    come after its body's observation, already scaled to [-1, 1]: were their statistics to follow
    the data, fine-tuning at one design would shrink their variance towards 0 and the same body
    would read as ever more extreme values to the policy.
    """

    def __init__(self, size: int, tracked: int | None = None, epsilon: float = 1e-8) -> None:
        super().__init__()
        self.epsilon = epsilon
        self.tracked = size if tracked is None else min(tracked, size)
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch of raw observations, shape (n, size), into the tracked statistics."""
        batch_t = torch.as_tensor(batch[:, :self.tracked], dtype=torch.float64,
                                  device=self.mean.device)
        tracked = slice(0, self.tracked)
        mean, var, self.count = merge_moments(
            self.mean[tracked], self.var[tracked], self.count, batch_t.mean(dim=0),
            batch_t.var(dim=0, unbiased=False), batch_t.shape[0])
        self.mean = torch.cat([mean, self.mean[self.tracked:]])
        self.var = torch.cat([var, self.var[self.tracked:]])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(self.var + self.epsilon).to(obs.dtype)
        return ((obs - self.mean.to(obs.dtype)) / std).clamp(-OBS_CLIP, OBS_CLIP)


class RewardScaler:
    """Divides rewards by a running std of the discounted return, per environment.

    The walker's rewards range from about 0.1 per step to a fall penalty of -50; scaling
    keeps the critic's targets near unit size whatever the penalty, which PPO needs to learn
    at one learning rate. Only the learning signal is scaled: reported episode rewards are raw.
    The statistics shape what the critic learns, so they are saved with the policy and travel
    with it to a transfer study.
    """

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.epsilon = epsilon
        self.discounted_return = np.zeros(num_envs)
        self.mean = 0.0
        self.var = 1.0
        self.count = epsilon

    def __call__(self, rewards: np.ndarray, episode_ended: np.ndarray) -> np.ndarray:
        returns = self.discounted_return
        returns *= self.gamma
        returns += rewards
        # np.mean and np.var's arithmetic (sum, then divide) without their per-call overhead,
        # which dominates on a few values: this runs every environment step.
        batch_mean = float(returns.sum()) / returns.size
        batch_var = float(np.square(returns - batch_mean).sum()) / returns.size
        self.mean, self.var, self.count = merge_moments(self.mean, self.var, self.count,
                                                        batch_mean, batch_var, returns.size)
        scaled = rewards / math.sqrt(self.var + self.epsilon)
        returns[episode_ended] = 0.0
        return np.clip(scaled, -10.0, 10.0)

    def state_dict(self) -> dict[str, float]:
        # Plain floats: numpy scalars are refused by `torch.load(weights_only=True)`.
        return {"mean": float(self.mean), "var": float(self.var), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Restore the statistics. The running returns restart at 0: the study that loads them
        starts new episodes, so the saved returns (if any) belong to none of them."""
        self.discounted_return = np.zeros_like(self.discounted_return)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]

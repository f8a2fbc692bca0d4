"""The policy's forward pass in NumPy, for the rollout.

The rollout runs actor and critic on a few rows (one per walker) every environment step. On
arrays that small a torch call costs several microseconds of dispatch for well under one of
arithmetic, and a NumPy call a fraction of that: the same pass in NumPy takes about a quarter
of the time. The weights do not change during a rollout, so they are copied once per rollout.

The update stays in torch and recomputes the log-probabilities of the stored actions from the
stored normalised observations; the two passes agree to float32 rounding (different matrix
kernels), which moves PPO's first probability ratios by about 1e-7.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ppo.network import ActorCritic, linear_layers
from ppo.normalize import OBS_CLIP


class NumpyMLP:
    """A frozen copy of a network built by `ppo.network.mlp`: linear layers with tanh between
    them, and on the output too where the network has it (the actor)."""

    def __init__(self, network: nn.Sequential) -> None:
        self.layers = [(layer.weight.detach().cpu().numpy().T.copy(),
                        layer.bias.detach().cpu().numpy().copy())
                       for layer in linear_layers(network)]
        self.squash_output = isinstance(network[-1], nn.Tanh)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # In place after each product (the same operations, the same bits): on the rollout's
        # few rows a step, allocating new arrays costs more than the arithmetic.
        *hidden, (weight, bias) = self.layers
        for hidden_weight, hidden_bias in hidden:
            x = x @ hidden_weight
            x += hidden_bias
            np.tanh(x, out=x)
        x = x @ weight
        x += bias
        return np.tanh(x, out=x) if self.squash_output else x


class PolicySnapshot:
    """Normaliser, actor and critic of an `ActorCritic` as it is now, on float32 arrays."""

    def __init__(self, policy: ActorCritic) -> None:
        normalizer = policy.obs_normalizer
        # Cast exactly as RunningNormalizer.forward does, so normalised observations match.
        self.obs_mean = normalizer.mean.cpu().numpy().astype(np.float32)
        self.obs_std = np.sqrt(normalizer.var.cpu().numpy() + normalizer.epsilon
                               ).astype(np.float32)
        self.actor = NumpyMLP(policy.actor)
        self.critic = NumpyMLP(policy.critic)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.obs_mean) / self.obs_std, -OBS_CLIP, OBS_CLIP)

    def mean_action(self, norm_obs: np.ndarray) -> np.ndarray:
        return self.actor(norm_obs)

    def value(self, norm_obs: np.ndarray) -> np.ndarray:
        return self.critic(norm_obs)[:, 0]

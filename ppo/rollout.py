"""Rollout storage, generalised advantage estimation and reward scaling."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    episode_ended: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """Generalised advantage estimates, all arrays shaped (num_steps, num_envs).

    `next_values[t]` is the value of the state that *followed* step t: for an episode that
    ended at t that is its final observation, not the first observation of the next episode.
    A terminated episode has no future (its next value counts as 0). A truncated one (time
    limit) does: it is bootstrapped with the value function, because the walker would have
    carried on. Either way the advantage does not flow back across the episode boundary.
    """
    # Everything but the recursion itself is done on whole arrays first: the loop is the
    # cost, and at one walker it runs once per frame.
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    carried = gamma * gae_lambda * (1.0 - episode_ended)
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        running = deltas[t] + carried[t] * running
        advantages[t] = running
    return advantages


class RolloutBuffer:
    """Preallocated (num_steps, num_envs, ...) arrays for one batch of experience.

    Observations are stored already normalised, with the statistics in force while the
    batch was collected, so that the update recomputes exactly the log-probabilities the
    actions were sampled with.
    """

    def __init__(self, num_steps: int, num_envs: int, obs_dim: int, act_dim: int) -> None:
        shape = (num_steps, num_envs)
        self.obs = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, act_dim), dtype=np.float32)
        self.log_probs = np.zeros(shape, dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.values = np.zeros(shape, dtype=np.float32)
        self.next_values = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.episode_ended = np.zeros(shape, dtype=np.float32)

    @property
    def num_steps(self) -> int:
        return self.obs.shape[0]

    def batch(self, gamma: float, gae_lambda: float) -> Batch:
        """Advantages and returns, flattened to (num_steps * num_envs, ...)."""
        advantages = compute_gae(self.rewards, self.values, self.next_values, self.terminated,
                                 self.episode_ended, gamma, gae_lambda)
        returns = advantages + self.values
        return Batch(
            obs=self.obs.reshape(-1, self.obs.shape[-1]),
            actions=self.actions.reshape(-1, self.actions.shape[-1]),
            log_probs=self.log_probs.reshape(-1),
            advantages=advantages.reshape(-1),
            returns=returns.reshape(-1),
        )


@dataclass
class Batch:
    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray


class RewardScaler:
    """Divides rewards by a running std of the discounted return, per environment.

    The walker's rewards range from about 0.1 per step to a fall penalty of -50; scaling
    keeps the critic's targets near unit size whatever the penalty, which PPO needs to learn
    at one learning rate. Only the learning signal is scaled: reported episode rewards are raw.
    """

    def __init__(self, num_envs: int, gamma: float, epsilon: float = 1e-8) -> None:
        self.gamma = gamma
        self.epsilon = epsilon
        self.discounted_return = np.zeros(num_envs)
        self.mean = 0.0
        self.var = 1.0
        self.count = epsilon

    def __call__(self, rewards: np.ndarray, episode_ended: np.ndarray) -> np.ndarray:
        self.discounted_return *= self.gamma
        self.discounted_return += rewards
        self._update(self.discounted_return)
        scaled = rewards / math.sqrt(self.var + self.epsilon)
        self.discounted_return[episode_ended] = 0.0
        return np.clip(scaled, -10.0, 10.0)

    def _update(self, batch: np.ndarray) -> None:
        # np.mean and np.var's arithmetic (sum, then divide) without their per-call overhead,
        # which dominates on a few values: this runs every environment step.
        batch_count = batch.size
        batch_mean = float(batch.sum()) / batch_count
        batch_var = float(np.square(batch - batch_mean).sum()) / batch_count
        total = self.count + batch_count
        delta = batch_mean - self.mean
        self.mean += delta * batch_count / total
        self.var = (self.var * self.count + batch_var * batch_count
                    + delta**2 * self.count * batch_count / total) / total
        self.count = total

    def state_dict(self) -> dict[str, object]:
        # Plain floats: numpy scalars are refused by `torch.load(weights_only=True)`.
        return {"discounted_return": self.discounted_return.tolist(), "mean": float(self.mean),
                "var": float(self.var), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the statistics. The running returns restart at 0: a resumed study starts
        new episodes (perhaps with another `num_envs`), so the saved ones belong to none."""
        self.discounted_return = np.zeros_like(self.discounted_return)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]

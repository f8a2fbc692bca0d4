"""PPO, one iteration top to bottom: collect a rollout, estimate advantages (GAE), the clipped
loss, the update.

    rollout   (num_steps, num_envs, ...)   `collect_rollout` fills a RolloutBuffer
    advantage (num_steps, num_envs)        `compute_gae`, then flattened by `advantages_and_returns`
    batch     b_* (num_steps * num_envs, ...)
    update    `train_steps` gradient steps of `ppo_loss`, each on a minibatch mb_* drawn from b_*

The study around it (building, checkpoints, results, signals, resume) is `ppo.trainer`; the
reusable parts are the policy (`ppo.network`), its NumPy copy that the rollout runs
(`ppo.inference`), the running statistics (`ppo.normalize`) and what an update reports about
itself (`ppo.diagnostics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ppo.config import OPTIMIZERS, Config
from ppo.diagnostics import LossTerms, UpdateDiagnostics
from ppo.errors import StudyFailed
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler
from ppo.vector import StepResult, WalkerPool

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

FUSED_OPTIMIZERS = frozenset({"adam"})
"""Optimizers whose step runs as one fused kernel over all parameters (torch >= 2.4 on CPU):
on the policy's twenty small tensors Adam's step takes ~0.1 ms fused against ~0.5 ms."""


class UpdateInterrupted(Exception):
    """A stop was requested during an update; the policy is half updated: do not save it."""


class TrainingDiverged(StudyFailed):
    """A loss or gradient became NaN or infinite; continuing would only overwrite good state
    with garbage."""


def gaussian_log_prob(actions, mean, std: float):
    """Log-density of `actions` (..., act_dim) under independent Normals N(mean, std^2), summed
    over the action dimensions: shape (...). NumPy arrays (the rollout) or torch tensors (the
    loss) alike, so both compute exactly the same formula.

    Written out rather than via torch.distributions: it runs every environment step, and the
    distribution object's construction and validation cost more than the arithmetic.
    """
    return (-0.5 * ((actions - mean) / std) ** 2).sum(-1) - actions.shape[-1] * (
        math.log(std) + LOG_SQRT_2PI)


# ----- what learns ------------------------------------------------------------------------------


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
        """Scaled rewards: the learning signal (see RewardScaler)."""
        self.values = np.zeros(shape, dtype=np.float32)
        self.next_values = np.zeros(shape, dtype=np.float32)
        """Value of the state that followed each step (see compute_gae)."""
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.episode_ended = np.zeros(shape, dtype=np.float32)
        """Terminated or truncated."""

    @property
    def num_steps(self) -> int:
        return self.obs.shape[0]


@dataclass
class Learner:
    """The policy and everything that learns with it, for one study."""

    config: Config
    policy: ActorCritic
    optimizer: torch.optim.Optimizer
    buffer: RolloutBuffer
    reward_scaler: RewardScaler
    generator: torch.Generator
    """Draws the exploration noise and the minibatches; its state is saved with the study."""


def make_optimizer(config: Config, policy: ActorCritic) -> torch.optim.Optimizer:
    """Over every parameter: frozen ones (transfer) simply never get a gradient."""
    name = config.optimizer.lower()
    fused = {"fused": True} if name in FUSED_OPTIMIZERS else {}
    optimizer_class = getattr(torch.optim, OPTIMIZERS[name])
    return optimizer_class(policy.parameters(), lr=config.learning_rate, **fused)


def make_learner(config: Config, policy: ActorCritic, reward_scaler: RewardScaler,
                 generator: torch.Generator) -> Learner:
    """Optimiser and rollout storage for `policy` (already on its device)."""
    obs_dim = linear_layers(policy.actor)[0].in_features
    act_dim = linear_layers(policy.actor)[-1].out_features
    return Learner(config, policy, make_optimizer(config, policy),
                   RolloutBuffer(config.steps_per_env, config.num_envs, obs_dim, act_dim),
                   reward_scaler, generator)


# ----- 1. collect a rollout ---------------------------------------------------------------------

StepCallback = Callable[[StepResult, np.ndarray], bool]
"""Called after every step with the walkers' step (raw rewards, final observations...) and
which of their episodes ended, (num_envs,); returns False to stop the rollout."""


def collect_rollout(learner: Learner, walkers: WalkerPool, obs: np.ndarray, action_std: float,
                    on_step: StepCallback) -> tuple[np.ndarray, np.ndarray] | None:
    """Fill the learner's buffer by stepping every walker num_steps times from `obs`
    (num_envs, obs_dim), with Gaussian noise of `action_std` on the policy's mean action.

    Returns the observations to continue from and the rollout's raw observations, shape
    (num_steps, num_envs, obs_dim), for `absorb_observations`; None if `on_step` stopped it
    (a partial rollout is never trained on).

    The policy runs in NumPy on a snapshot of its weights (see `ppo.inference`), one batched
    pass of actor and critic per step over all walkers, and the rollout's noise is drawn in
    one go. The value of what followed step t is the critic's value of step t + 1's
    observation, which that step computes anyway; only final observations (an episode ended)
    and the last step need a critic pass of their own.
    """
    buffer = learner.buffer
    policy = PolicySnapshot(learner.policy)
    noise = action_std * torch.randn(buffer.actions.shape, generator=learner.generator).numpy()
    raw_obs = np.zeros((buffer.num_steps, *obs.shape), dtype=np.float32)
    last_step = buffer.num_steps - 1
    for step in range(buffer.num_steps):
        raw_obs[step] = obs
        norm_obs = buffer.obs[step] = policy.normalize(obs)
        mean = policy.mean_action(norm_obs)
        action = buffer.actions[step] = mean + noise[step]
        buffer.log_probs[step] = gaussian_log_prob(action, mean, action_std)
        buffer.values[step] = policy.value(norm_obs)
        if step > 0:
            np.copyto(buffer.next_values[step - 1], buffer.values[step],
                      where=buffer.episode_ended[step - 1] == 0)

        result = walkers.step(action)
        obs, terminated = result.obs, result.terminated
        ended = terminated | result.truncated
        buffer.rewards[step] = learner.reward_scaler(result.rewards, ended)
        buffer.terminated[step] = terminated
        buffer.episode_ended[step] = ended
        if step == last_step or ended.any():
            # For an episode that ended, what followed is its final observation (its value
            # is used only if it was truncated), not the next episode's first.
            rows = slice(None) if step == last_step else np.flatnonzero(ended)
            buffer.next_values[step, rows] = policy.value(
                policy.normalize(result.final_obs[rows]))
        if not on_step(result, ended):
            return None
    return obs, raw_obs


def absorb_observations(policy: ActorCritic, raw_obs: np.ndarray) -> None:
    """Fold a rollout's raw observations (..., obs_dim) into the policy's normaliser.

    Not while the input layer is frozen (transfer): the normaliser is part of that layer, and
    it must keep seeing inputs on the scale it was trained with.
    """
    if linear_layers(policy.actor)[0].weight.requires_grad:
        policy.obs_normalizer.update(raw_obs.reshape(-1, raw_obs.shape[-1]))


# ----- 2. advantages ----------------------------------------------------------------------------


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


@dataclass
class Batch:
    """A rollout flattened to (num_steps * num_envs, ...), step-major, with its targets."""

    obs: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray


def advantages_and_returns(buffer: RolloutBuffer, gamma: float, gae_lambda: float) -> Batch:
    """GAE over the buffer; returns (the critic's targets) are advantages plus values."""
    advantages = compute_gae(buffer.rewards, buffer.values, buffer.next_values,
                             buffer.terminated, buffer.episode_ended, gamma, gae_lambda)
    returns = advantages + buffer.values
    return Batch(
        obs=buffer.obs.reshape(-1, buffer.obs.shape[-1]),
        actions=buffer.actions.reshape(-1, buffer.actions.shape[-1]),
        log_probs=buffer.log_probs.reshape(-1),
        advantages=advantages.reshape(-1),
        returns=returns.reshape(-1),
    )


# ----- 3. the clipped loss ----------------------------------------------------------------------


def ppo_loss(policy: ActorCritic, mb_obs: torch.Tensor, mb_actions: torch.Tensor,
             mb_old_log_probs: torch.Tensor, mb_advantages: torch.Tensor,
             mb_returns: torch.Tensor, action_std: float, config: Config) -> LossTerms:
    """Clipped surrogate plus weighted value loss on a minibatch of (minibatch_size, ...) rows
    of already-normalised observations, with the parts the diagnostics read.

    There is no entropy bonus: the action std is set by the study, not learned, so the
    policy's entropy is a constant with no gradient.
    """
    log_probs = gaussian_log_prob(mb_actions, policy.actor(mb_obs), action_std)
    log_ratio = log_probs - mb_old_log_probs
    ratio = torch.exp(log_ratio)
    advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)
    clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip)
    policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    value_loss = 0.5 * (policy.critic(mb_obs).squeeze(-1) - mb_returns).square().mean()
    return LossTerms(policy_loss + config.value_coef * value_loss, policy_loss, value_loss,
                     log_ratio)


# ----- 4. the update ----------------------------------------------------------------------------


def update(learner: Learner, batch: Batch, action_std: float,
           stop_requested: Callable[[], bool] = lambda: False) -> dict[str, float]:
    """`train_steps` gradient steps of the clipped loss, each on `minibatch_size` rows drawn
    without replacement from the batch (reshuffled when used up), gradients clipped to
    `max_grad_norm`. Raises TrainingDiverged before a non-finite step touches the weights,
    and UpdateInterrupted between steps once `stop_requested()` (a long update must not make
    a stop wait for it).

    Returns the update's diagnostics (`UpdateDiagnostics.summary`): the steps only keep their
    tensors, read back once at the end, so the loop never waits on the device for them."""
    config, policy, optimizer = learner.config, learner.policy, learner.optimizer
    device = torch.device(config.device)
    b_obs, b_actions, b_log_probs, b_advantages, b_returns = (
        torch.as_tensor(array, device=device) for array in vars(batch).values()
    )
    batch_size = len(b_obs)
    order = torch.randperm(batch_size, generator=learner.generator)
    cursor = 0
    diagnostics = UpdateDiagnostics(config.clip)
    for _ in range(config.train_steps):
        if stop_requested():
            raise UpdateInterrupted
        if cursor + config.minibatch_size > batch_size:
            order, cursor = torch.randperm(batch_size, generator=learner.generator), 0
        mb = order[cursor:cursor + config.minibatch_size].to(device)
        cursor += config.minibatch_size
        terms = ppo_loss(policy, b_obs[mb], b_actions[mb], b_log_probs[mb], b_advantages[mb],
                         b_returns[mb], action_std, config)
        loss = terms.total
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"the loss became {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in policy.parameters() if p.grad is not None], config.max_grad_norm
        )
        if not torch.isfinite(grad_norm):  # a finite loss can still overflow its gradient
            raise TrainingDiverged(f"the gradient norm became {grad_norm.item()}")
        diagnostics.add(terms, grad_norm)
        optimizer.step()
    # The critic's values at collection time are the returns less the advantages.
    return diagnostics.summary(b_returns - b_advantages, b_returns)

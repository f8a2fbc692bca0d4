"""PPO, one iteration top to bottom: collect a rollout, estimate advantages (GAE), the clipped
loss, the update.

    rollout   (num_steps, num_envs, ...)   `collect_rollout` fills a RolloutBuffer
    advantage (num_steps, num_envs)        `compute_gae`, then flattened by `advantages_and_returns`
    batch     b_* (num_steps * num_envs, ...)
    update    `train_steps` gradient steps of `ppo_loss`, each on a minibatch mb_* drawn from b_*

The algorithm reads only its own settings (`PPOSettings`, which the study builds from its
configuration) and gets its experience from a `RolloutSource` (the study passes its walker pool,
`workers.vector.WalkerPool`); it raises its own errors (`TrainingDiverged`, `UpdateInterrupted`),
which the study translates. Nothing here imports the study, the workers or evaluation.

The study around it (building, checkpoints, results, signals, resume) is `study.trainer`; the
reusable parts are the policy (`ppo.network`), its NumPy copy that the rollout runs
(`ppo.inference`), the running statistics (`ppo.normalize`) and what an update reports about
itself (`ppo.diagnostics`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ppo import gradient
from ppo.diagnostics import LossTerms, UpdateDiagnostics
from ppo.gradient import LossSettings, PolicyShape, ShardTask, gaussian_log_prob
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler

FUSED_OPTIMIZERS = frozenset({"Adam"})
"""Optimizers whose step runs as one fused kernel over all parameters (torch >= 2.4 on CPU):
the policy's twenty small tensors cost a per-tensor step far more in dispatch than in
arithmetic (measured: docs/speed.md)."""


class UpdateInterrupted(Exception):
    """A stop was requested during an update; the policy is half updated: do not save it."""


class TrainingDiverged(ArithmeticError):
    """A loss or gradient became NaN or infinite; continuing would only overwrite good state
    with garbage. (The study reports it as its own failure: `study.trainer.StudyDiverged`.)"""


@dataclass(frozen=True)
class PPOSettings:
    """The hyperparameters the algorithm reads, and nothing else; the study builds them from
    its configuration (`study.trainer.ppo_settings`)."""

    num_envs: int
    """Walkers stepped together: the rollout's second dimension."""
    num_steps: int
    """Steps per walker in a rollout (--steps_per_env): the rollout's first dimension."""
    optimizer: str
    """The torch.optim class, by name ("Adam", "SGD", ...)."""
    learning_rate: float
    clip_coef: float
    """PPO's ratio clip (--clip)."""
    value_coef: float
    """Weight of the value loss in the total loss."""
    train_steps: int
    """Gradient steps per update."""
    minibatch_size: int
    """Rows per gradient step."""
    max_grad_norm: float
    """Gradients are clipped to this global norm."""
    gamma: float
    gae_lambda: float
    device: str
    """Where the update runs ("cpu", "cuda"...)."""


class RolloutSource(Protocol):
    """Whatever steps the walkers for the algorithm (the study's `workers.vector.WalkerPool`).

    `samples` holds shared (max_num_steps, num_envs, ...) arrays; the algorithm writes the
    rollout's exploration noise into `samples["noise"]` before `start_rollout`.
    """

    samples: dict[str, np.ndarray]

    def start_rollout(self, policy: PolicySnapshot, num_steps: int) -> None:
        """Start `num_steps` steps of every walker by `policy` plus `samples["noise"]`."""

    def finish_rollout(self) -> dict[str, np.ndarray] | None:
        """The rollout started last (see `workers.sampler.sample_layout` for its arrays), or
        None if a stop cut it short."""


class GradientSource(Protocol):
    """Whoever computes a gradient step's shards (`ppo.gradient`) on the CPU: the study's
    walker pool, in its workers while they are idle; `LocalGradients` here.

    `gradient_arrays` holds the arrays of `ppo.gradient.shared_layout`; the update writes the
    batch, the minibatch and the weights into them before `compute_gradients`.
    """

    gradient_arrays: dict[str, np.ndarray]

    def compute_gradients(self, task: ShardTask) -> None:
        """Run every shard of `task`, by whoever; return when they are written."""


class LocalGradients:
    """Every shard computed in this process, in private arrays."""

    def __init__(self, layout: dict[str, tuple[np.dtype, tuple[int, ...]]]) -> None:
        self.gradient_arrays = {name: np.zeros(shape, dtype)
                                for name, (dtype, shape) in layout.items()}

    def compute_gradients(self, task: ShardTask) -> None:
        task.run(self.gradient_arrays)


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

    settings: PPOSettings
    policy: ActorCritic
    optimizer: torch.optim.Optimizer
    buffer: RolloutBuffer
    reward_scaler: RewardScaler
    generator: torch.Generator
    """Draws the exploration noise and the minibatches; its state is saved with the study."""
    gradients: GradientSource
    """Computes the update's gradients on the CPU (the study passes its walker pool)."""


def make_optimizer(settings: PPOSettings, policy: ActorCritic) -> torch.optim.Optimizer:
    """Over every parameter: frozen ones (transfer) simply never get a gradient."""
    fused = {"fused": True} if settings.optimizer in FUSED_OPTIMIZERS else {}
    optimizer_class = getattr(torch.optim, settings.optimizer)
    return optimizer_class(policy.parameters(), lr=settings.learning_rate, **fused)


def flat_parameters(policy: ActorCritic) -> list[nn.Parameter]:
    """The policy's weights in `ppo.gradient.PolicyShape`'s order (the normaliser has none)."""
    return [parameter for network in policy.networks for layer in linear_layers(network)
            for parameter in (layer.weight, layer.bias)]


def policy_shape(policy: ActorCritic) -> PolicyShape:
    """Where `flat_parameters`' weights sit in a flat vector (`ppo.gradient`'s view of them).

    `ppo.gradient` computes the networks `ppo.network.mlp` builds: linear layers with tanh
    between them, and after the actor's last; anything else would get a wrong gradient, so it
    is refused here."""
    def shapes(network: nn.Sequential, squashed: bool) -> tuple[tuple[int, int], ...]:
        layers = linear_layers(network)
        kinds = [nn.Linear, nn.Tanh] * len(layers)
        kinds = kinds if squashed else kinds[:-1]
        if len(network) != len(kinds) or not all(
                isinstance(module, kind) for module, kind in zip(network, kinds, strict=True)):
            raise ValueError(f"ppo.gradient computes tanh MLPs only, not {network}")
        return tuple((layer.out_features, layer.in_features) for layer in layers)
    return PolicyShape(shapes(policy.actor, squashed=True), shapes(policy.critic, False))


def gradient_layout(settings: PPOSettings, shape: PolicyShape
                    ) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """The arrays a `GradientSource` holds for these settings and a policy of `shape`."""
    return gradient.shared_layout(shape, settings.num_steps * settings.num_envs,
                                  settings.minibatch_size)


def make_learner(settings: PPOSettings, policy: ActorCritic, reward_scaler: RewardScaler,
                 generator: torch.Generator, gradients: GradientSource | None = None
                 ) -> Learner:
    """Optimiser and rollout storage for `policy` (already on its device); gradients computed
    by `gradients`, or in this process."""
    shape = policy_shape(policy)
    obs_dim, act_dim = shape.actor[0][1], shape.actor[-1][0]
    return Learner(settings, policy, make_optimizer(settings, policy),
                   RolloutBuffer(settings.num_steps, settings.num_envs, obs_dim, act_dim),
                   reward_scaler, generator,
                   gradients or LocalGradients(gradient_layout(settings, shape)))


# ----- 1. collect a rollout ---------------------------------------------------------------------

StepCallback = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]
"""Called for every step with the walkers' raw rewards (num_envs,), final observations
(num_envs, obs_dim) and which of their episodes ended (num_envs,); returns False to stop the
rollout."""


def start_rollout(learner: Learner, walkers: RolloutSource, action_std: float) -> None:
    """Start stepping every walker num_steps times from where it is, with Gaussian noise of
    `action_std` on the mean action of the policy as it is now; `finish_rollout` waits for it.

    The steps run where the walkers are (`RolloutSource.start_rollout`; the study's pool,
    `workers.vector.WalkerPool`, runs `workers.sampler`): with worker processes each runs the
    policy on its own walkers for the whole rollout, and this returns at once; otherwise the
    rollout runs here before it returns.
    The policy runs in NumPy on a snapshot of its weights (see `ppo.inference`); the
    rollout's noise is drawn here in one go.
    """
    buffer = learner.buffer
    walkers.samples["noise"][:buffer.num_steps] = action_std * torch.randn(
        buffer.actions.shape, generator=learner.generator).numpy()
    walkers.start_rollout(PolicySnapshot(learner.policy), buffer.num_steps)


def finish_rollout(learner: Learner, walkers: RolloutSource, action_std: float,
                   on_step: StepCallback) -> np.ndarray | None:
    """Fill the learner's buffer from the rollout started last (with `action_std`).

    Returns the rollout's raw observations, shape (num_steps, num_envs, obs_dim), for
    `absorb_observations`; None if a stop (the walkers' `stop_requested`, or `on_step`) cut it
    short (a partial rollout is never trained on).

    What needs every walker's step at once is done here, in step order: the log-probabilities,
    the values of what followed each step, reward scaling, and `on_step`. The value of what
    followed step t is step t + 1's value; for an episode that ended at t it is that of its
    final observation (used only if it was truncated), not of the next episode's first.
    """
    samples = walkers.finish_rollout()
    if samples is None:
        return None
    buffer = learner.buffer
    ended = samples["terminated"] | samples["truncated"]
    buffer.obs[:], buffer.actions[:], buffer.values[:] = (
        samples["obs"], samples["actions"], samples["values"])
    buffer.log_probs[:] = gaussian_log_prob(samples["actions"], samples["mean_actions"],
                                            action_std)
    buffer.terminated[:], buffer.episode_ended[:] = samples["terminated"], ended
    buffer.next_values[:-1] = buffer.values[1:]
    buffer.next_values[-1] = samples["final_values"][-1]
    np.copyto(buffer.next_values, samples["final_values"], where=ended)
    for step in range(buffer.num_steps):
        buffer.rewards[step] = learner.reward_scaler(samples["rewards"][step], ended[step])
        if not on_step(samples["rewards"][step], samples["final_obs"][step], ended[step]):
            return None
    return samples["raw_obs"]


def collect_rollout(learner: Learner, walkers: RolloutSource, action_std: float,
                    on_step: StepCallback) -> np.ndarray | None:
    """`start_rollout` then `finish_rollout`: a whole rollout by the policy as it is now."""
    start_rollout(learner, walkers, action_std)
    return finish_rollout(learner, walkers, action_std, on_step)


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
             mb_returns: torch.Tensor, action_std: float, settings: PPOSettings) -> LossTerms:
    """Clipped surrogate plus weighted value loss on a minibatch of (minibatch_size, ...) rows
    of already-normalised observations, with the parts the diagnostics read.

    There is no entropy bonus: the action std is set by the study, not learned, so the
    policy's entropy is a constant with no gradient.
    """
    log_probs = gaussian_log_prob(mb_actions, policy.actor(mb_obs), action_std)
    log_ratio = log_probs - mb_old_log_probs
    ratio = torch.exp(log_ratio)
    advantages = ((mb_advantages - mb_advantages.mean())
                  / (mb_advantages.std() + gradient.ADVANTAGE_EPSILON))
    clipped = torch.clamp(ratio, 1 - settings.clip_coef, 1 + settings.clip_coef)
    policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    value_loss = 0.5 * (policy.critic(mb_obs).squeeze(-1) - mb_returns).square().mean()
    return LossTerms(policy_loss + settings.value_coef * value_loss, policy_loss, value_loss,
                     log_ratio)


# ----- 4. the update ----------------------------------------------------------------------------


GradientStep = Callable[[torch.Tensor], LossTerms]
"""Sets the policy's gradients to those of the loss on the given batch rows (a minibatch);
returns the loss's terms. Raises TrainingDiverged for a non-finite loss."""


def draw_minibatches(generator: torch.Generator, batch_size: int, minibatch_size: int,
                     steps: int) -> Iterator[torch.Tensor]:
    """The batch rows of each gradient step: drawn without replacement, reshuffled when used
    up (a batch shorter than a minibatch gives all its rows each step). Drawn as the steps
    come, so that a long update holds one permutation at a time."""
    order, cursor = torch.randperm(batch_size, generator=generator), 0
    for _ in range(steps):
        if cursor + minibatch_size > batch_size:
            order, cursor = torch.randperm(batch_size, generator=generator), 0
        yield order[cursor:cursor + minibatch_size]
        cursor += minibatch_size


def sharded_gradients(learner: Learner, batch: Batch, action_std: float) -> GradientStep:
    """Gradient steps by `ppo.gradient`'s NumPy shards, computed by `learner.gradients` (the
    study's idle workers): what the update on the CPU uses. Frozen layers get no gradient."""
    source, policy, settings = learner.gradients, learner.policy, learner.settings
    arrays = source.gradient_arrays
    for name, values in zip(gradient.BATCH_ARRAYS, (batch.obs, batch.actions, batch.log_probs,
                                                     batch.advantages, batch.returns),
                            strict=True):
        arrays[name][:len(values)] = values
    shape, parameters = policy_shape(policy), flat_parameters(policy)
    weights = torch.from_numpy(arrays["weights"])
    loss = LossSettings(action_std, settings.clip_coef, settings.value_coef)

    def step(minibatch: torch.Tensor) -> LossTerms:
        rows, shards = len(minibatch), gradient.num_shards(len(minibatch))
        arrays["minibatch"][:rows] = minibatch.numpy()
        torch.cat([parameter.detach().reshape(-1) for parameter in parameters], out=weights)
        source.compute_gradients(ShardTask(shape, loss, rows, tuple(range(shards))))
        policy_loss, value_loss = arrays["loss_sums"][:shards].sum(axis=0) / rows
        total = policy_loss + settings.value_coef * value_loss
        if not math.isfinite(total):
            raise TrainingDiverged(f"the loss became {total}")
        flat = torch.from_numpy(arrays["gradients"][:shards].sum(axis=0))  # in shard order
        offset = 0
        for parameter in parameters:
            size = parameter.numel()
            parameter.grad = (flat[offset:offset + size].view_as(parameter)
                              if parameter.requires_grad else None)
            offset += size
        return LossTerms(*(torch.tensor(value) for value in (total, policy_loss, value_loss)),
                         torch.from_numpy(arrays["log_ratios"][:rows].copy()))
    return step


def autograd_gradients(learner: Learner, batch: Batch, action_std: float) -> GradientStep:
    """Gradient steps by torch's autograd through `ppo_loss` on the policy's device: what the
    update off the CPU (a GPU) uses, and the definition `ppo.gradient` is tested against."""
    settings, policy, optimizer = learner.settings, learner.policy, learner.optimizer
    device = torch.device(settings.device)
    b_obs, b_actions, b_log_probs, b_advantages, b_returns = (
        torch.as_tensor(array, device=device) for array in vars(batch).values())

    def step(minibatch: torch.Tensor) -> LossTerms:
        mb = minibatch.to(device)
        terms = ppo_loss(policy, b_obs[mb], b_actions[mb], b_log_probs[mb], b_advantages[mb],
                         b_returns[mb], action_std, settings)
        if not torch.isfinite(terms.total):
            raise TrainingDiverged(f"the loss became {terms.total.item()}")
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        return terms
    return step


GradientMethod = Callable[[Learner, Batch, float], GradientStep]
"""`sharded_gradients` or `autograd_gradients`: gradient steps on a batch with an action std."""


def update(learner: Learner, batch: Batch, action_std: float,
           stop_requested: Callable[[], bool] = lambda: False,
           gradient_method: GradientMethod | None = None) -> dict[str, float]:
    """`train_steps` gradient steps of the clipped loss (fewer on a batch shorter than
    `num_steps x num_envs` frames, in proportion), each on `minibatch_size` rows drawn
    without replacement from the batch (reshuffled when used up), gradients clipped to
    `max_grad_norm`. Raises TrainingDiverged before a non-finite step touches the weights,
    and UpdateInterrupted between steps once `stop_requested()` (a long update must not make
    a stop wait for it).

    By default the gradients are NumPy's shards on the CPU (`sharded_gradients`), torch's
    autograd elsewhere (`autograd_gradients`). Returns the update's diagnostics
    (`UpdateDiagnostics.summary`): the steps only keep their tensors, read back once at the
    end, so the loop never waits on the device for them."""
    settings, policy, optimizer = learner.settings, learner.policy, learner.optimizer
    batch_size = len(batch.obs)
    # The last batch of a study is shortened to what is left of the budget, to as few as
    # num_envs frames. It gets gradient steps in proportion to its frames (at least one), so
    # that every frame is trained on as often as in a full batch: the full `train_steps` on
    # 16 frames would be 80 steps fitted to them alone, and each step moves the weights about
    # as far (Adam) whatever the minibatch. Folding it into the batch before instead would
    # make that batch longer than the others (fewer passes over it) and need the trainer to
    # look ahead; scaling keeps every batch's passes per frame the same.
    full_batch = settings.num_steps * settings.num_envs
    train_steps = max(1, round(settings.train_steps * batch_size / full_batch))
    if gradient_method is None:
        gradient_method = sharded_gradients if settings.device == "cpu" else autograd_gradients
    gradient_step = gradient_method(learner, batch, action_std)
    # Frozen layers (transfer) get no gradient; which layers those are changes only between
    # updates (a thaw), so the list is made once, not at every step.
    trainable = [parameter for parameter in policy.parameters() if parameter.requires_grad]
    diagnostics = UpdateDiagnostics(settings.clip_coef)
    for minibatch in draw_minibatches(learner.generator, batch_size, settings.minibatch_size,
                                      train_steps):
        if stop_requested():
            raise UpdateInterrupted
        terms = gradient_step(minibatch)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
        if not torch.isfinite(grad_norm):  # a finite loss can still overflow its gradient
            raise TrainingDiverged(f"the gradient norm became {grad_norm.item()}")
        diagnostics.add(terms, grad_norm)
        optimizer.step()
    returns, advantages = (torch.as_tensor(array, device=settings.device)
                           for array in (batch.returns, batch.advantages))
    # The critic's values at collection time are the returns less the advantages.
    return diagnostics.summary(returns - advantages, returns)

"""The clipped loss's gradient in NumPy, in shards of fixed rows, for the update on the CPU.

A gradient step of the default update (actor and critic, four layers of 32, 1,000 rows) costs
torch mostly fixed cost per operation, so halving the rows barely halves its time; the same
forward and backward written with NumPy scale with the rows, so the rows can be split into
shards and the shards computed by different processes (the study's walker workers, idle
during the update) at little extra cost (measured: benchmarks/README.md, issue 27).

A minibatch's gradient is the sum of its shards' gradients, each over SHARD_ROWS consecutive
rows of the minibatch, summed in shard order. A shard's numbers depend only on its rows (a
matrix product rounds a row according to how many rows it is computed with and where the row
sits, `workers.sampler`), so any split of the shards between processes gives the same
gradient bit for bit: a seed gives the same study with 0, 1 or 3 workers.

`ppo.algorithm.ppo_loss` through autograd is the definition; the tests check this gradient
against it. The update still clips and steps with torch (`ppo.algorithm.update`:
the optimizer and its state are torch's).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SHARD_ROWS = 250
"""Rows per shard: small enough that a default minibatch makes 4 of them, large enough that a
shard costs about a quarter of the minibatch's gradient (little lost to fixed costs)."""

ADVANTAGE_EPSILON = 1e-8
"""Added to the minibatch's advantage std before dividing by it (`ppo.algorithm.ppo_loss` too)."""

LOSS_PARTS = ("policy_loss_sum", "value_loss_sum")
"""What each shard reports beside its gradient: its rows' sums of the two losses."""

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)

Layers = list[tuple[np.ndarray, np.ndarray]]
"""(weight (out, in), bias (out,)) of each linear layer, input first."""


@dataclass(frozen=True)
class PolicyShape:
    """Where each linear layer's weight and bias sit in the flat parameter vector: the actor's
    layers, then the critic's, each weight then its bias (`ppo.algorithm.flat_parameters`'
    order)."""

    actor: tuple[tuple[int, int], ...]
    """(out, in) of each actor layer, input first."""
    critic: tuple[tuple[int, int], ...]

    @classmethod
    def build(cls, obs_dim: int, hidden_layers: Sequence[int], act_dim: int) -> PolicyShape:
        """The shape `ActorCritic(obs_dim, act_dim, hidden_layers)` has."""
        sizes = [obs_dim, *hidden_layers]
        hidden = tuple(zip(sizes[1:], sizes[:-1], strict=True))
        return cls((*hidden, (act_dim, sizes[-1])), (*hidden, (1, sizes[-1])))

    @property
    def size(self) -> int:
        return sum(out * (fan_in + 1) for out, fan_in in (*self.actor, *self.critic))

    def split(self, flat: np.ndarray) -> tuple[Layers, Layers]:
        """Views of `flat` (size,) as the actor's and the critic's layers."""
        offset = 0

        def take(shapes: tuple[tuple[int, int], ...]) -> Layers:
            nonlocal offset
            layers = []
            for out, fan_in in shapes:
                weight = flat[offset:offset + out * fan_in].reshape(out, fan_in)
                offset += out * fan_in
                layers.append((weight, flat[offset:offset + out]))
                offset += out
            return layers

        return take(self.actor), take(self.critic)


@dataclass(frozen=True)
class LossSettings:
    """What the loss needs besides the data; fixed for an update."""

    action_std: float
    clip_coef: float
    value_coef: float


BATCH_ARRAYS = ("obs", "actions", "old_log_probs", "advantages", "returns")


@dataclass
class MinibatchRows:
    """A minibatch's rows of the batch: normalised observations, actions, the behaviour
    policy's log-probabilities, advantages, returns (BATCH_ARRAYS)."""

    obs: np.ndarray
    actions: np.ndarray
    old_log_probs: np.ndarray
    advantages: np.ndarray
    returns: np.ndarray

    @classmethod
    def gather(cls, batch: dict[str, np.ndarray], rows: np.ndarray) -> MinibatchRows:
        return cls(*(batch[name][rows] for name in BATCH_ARRAYS))

    def with_normalized_advantages(self) -> MinibatchRows:
        """The advantages as `ppo.algorithm.ppo_loss` normalises them: over the whole
        minibatch, unbiased std (shards slice the result, so never use statistics of their
        own)."""
        advantages = self.advantages
        spread = advantages.std(ddof=1) + np.float32(ADVANTAGE_EPSILON)
        return dataclasses.replace(self, advantages=(advantages - advantages.mean()) / spread)

    def shard(self, index: int) -> MinibatchRows:
        rows = slice(index * SHARD_ROWS, (index + 1) * SHARD_ROWS)
        return MinibatchRows(*(getattr(self, name)[rows] for name in BATCH_ARRAYS))


def gaussian_log_prob(actions, mean, std: float):
    """Log-density of `actions` (..., act_dim) under independent Normals N(mean, std^2), summed
    over the action dimensions: shape (...). NumPy arrays (the rollout, the update's gradient
    shards) or torch tensors (the loss) alike, so all compute exactly the same formula.

    Written out rather than via torch.distributions: it runs every environment step, and the
    distribution object's construction and validation cost more than the arithmetic.
    """
    return (-0.5 * ((actions - mean) / std) ** 2).sum(-1) - actions.shape[-1] * (
        math.log(std) + LOG_SQRT_2PI)


def num_shards(minibatch_size: int) -> int:
    return math.ceil(minibatch_size / SHARD_ROWS)


def forward(layers: Layers, x: np.ndarray, squash_output: bool) -> list[np.ndarray]:
    """Every layer's output (tanh applied where the network has it), the input first."""
    outputs = [x]
    for i, (weight, bias) in enumerate(layers):
        x = x @ weight.T + bias
        if i < len(layers) - 1 or squash_output:
            x = np.tanh(x)
        outputs.append(x)
    return outputs


def backward(layers: Layers, outputs: list[np.ndarray], grad: np.ndarray, squash_output: bool,
             into: Layers) -> None:
    """Back-propagate `grad` (of the loss by the network's output) and write each layer's
    weight and bias gradients into `into` (views of the shard's flat gradient)."""
    for i in reversed(range(len(layers))):
        if i < len(layers) - 1 or squash_output:
            grad = grad * (1 - outputs[i + 1] * outputs[i + 1])  # tanh's derivative
        weight_grad, bias_grad = into[i]
        np.matmul(grad.T, outputs[i], out=weight_grad)
        np.sum(grad, axis=0, out=bias_grad)
        if i:
            grad = grad @ layers[i][0]


def shard_gradient(shape: PolicyShape, weights: np.ndarray, rows: MinibatchRows,
                   minibatch_size: int, loss: LossSettings, grad_out: np.ndarray
                   ) -> tuple[float, float, np.ndarray]:
    """The gradient of the shard's rows' share of the minibatch's loss (their terms over the
    whole minibatch's size) into `grad_out` (shape.size,); returns the rows' policy-loss and
    value-loss sums and their log-ratios. `rows.advantages` are already normalised.

    The policy term is -min(r A, clip(r) A): its derivative by r is A where the unclipped
    term is the smaller (or they tie), else 0. r = exp(log pi - log pi_old), so d r / d log pi
    is r, and a Gaussian's d log pi / d mean is (action - mean) / std^2.
    """
    actor, critic = shape.split(weights)
    actor_grad, critic_grad = shape.split(grad_out)
    std = np.float32(loss.action_std)
    scale = np.float32(1.0 / minibatch_size)

    actor_outputs = forward(actor, rows.obs, squash_output=True)
    mean = actor_outputs[-1]
    log_ratio = gaussian_log_prob(rows.actions, mean, loss.action_std) - rows.old_log_probs
    ratio = np.exp(log_ratio)
    advantages = rows.advantages
    unclipped = ratio * advantages
    clipped = np.clip(ratio, 1 - loss.clip_coef, 1 + loss.clip_coef) * advantages
    surrogate_grad = np.where(unclipped <= clipped, advantages, np.float32(0))
    log_prob_grad = -scale * surrogate_grad * ratio
    # d log pi / d mean = (action - mean) / std^2
    mean_grad = log_prob_grad[:, None] * ((rows.actions - mean) / std) / std
    backward(actor, actor_outputs, mean_grad, True, actor_grad)

    critic_outputs = forward(critic, rows.obs, squash_output=False)
    error = critic_outputs[-1][:, 0] - rows.returns
    backward(critic, critic_outputs, (np.float32(loss.value_coef) * scale * error)[:, None],
             False, critic_grad)
    policy_loss_sum = -float(np.minimum(unclipped, clipped).sum(dtype=np.float64))
    value_loss_sum = 0.5 * float((error * error).sum(dtype=np.float64))
    return policy_loss_sum, value_loss_sum, log_ratio


def shared_layout(shape: PolicyShape, batch_rows: int, minibatch_size: int
                  ) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of the arrays an update shares with whoever computes its shards:
    the batch (BATCH_ARRAYS, its first rows used when it is shorter), the step's minibatch
    (batch row indices), the weights as they are at the step, and per shard the gradient and
    loss sums; the minibatch rows' log-ratios."""
    float32, shards = np.dtype(np.float32), num_shards(minibatch_size)
    obs_dim, act_dim = shape.actor[0][1], shape.actor[-1][0]
    return {"obs": (float32, (batch_rows, obs_dim)),
            "actions": (float32, (batch_rows, act_dim)),
            "old_log_probs": (float32, (batch_rows,)),
            "advantages": (float32, (batch_rows,)),
            "returns": (float32, (batch_rows,)),
            "minibatch": (np.dtype(np.int64), (minibatch_size,)),
            "weights": (float32, (shape.size,)),
            "gradients": (float32, (shards, shape.size)),
            "loss_sums": (np.dtype(np.float64), (shards, len(LOSS_PARTS))),
            "log_ratios": (float32, (minibatch_size,))}


@dataclass(frozen=True)
class ShardTask:
    """Some shards of the gradient step now described by the shared arrays: the minibatch's
    first `rows` entries, the weights. Small and picklable: it is what a worker is sent."""

    shape: PolicyShape
    loss: LossSettings
    rows: int
    shards: tuple[int, ...]

    def run(self, arrays: dict[str, np.ndarray]) -> None:
        step_gradients(self.shape, arrays["weights"],
                       {name: arrays[name] for name in BATCH_ARRAYS},
                       arrays["minibatch"][:self.rows], self.shards, self.loss,
                       arrays["gradients"], arrays["loss_sums"], arrays["log_ratios"])


def step_gradients(shape: PolicyShape, weights: np.ndarray, batch: dict[str, np.ndarray],
                   minibatch: np.ndarray, shards: Sequence[int], loss: LossSettings,
                   gradients: np.ndarray, loss_sums: np.ndarray, log_ratios: np.ndarray
                   ) -> None:
    """Shards `shards` of one gradient step on the batch rows `minibatch`: shard s's gradient
    into `gradients[s]`, its loss sums into `loss_sums[s]` and its rows' log-ratios into
    their places in `log_ratios` (minibatch,). Whoever computes them, in whatever company,
    writes the same numbers.

    A diverging policy overflows exp and the rest: no NumPy warning, in the trainer or in
    any worker; the update sees the non-finite loss and stops the study in one line."""
    rows = MinibatchRows.gather(batch, minibatch).with_normalized_advantages()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for index in shards:
            part = rows.shard(index)
            *sums, log_ratios[index * SHARD_ROWS:index * SHARD_ROWS + len(part.obs)] = (
                shard_gradient(shape, weights, part, len(minibatch), loss, gradients[index]))
            loss_sums[index] = sums


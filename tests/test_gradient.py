"""The update's NumPy gradient (`ppo.gradient`): the same gradient as torch's autograd through
`ppo.algorithm.ppo_loss`, and the same bits whoever computes which shards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ppo import gradient
from ppo.algorithm import (
    PPOSettings,
    flat_parameters,
    gaussian_log_prob,
    policy_shape,
    ppo_loss,
)
from ppo.diagnostics import LossTerms
from ppo.gradient import LossSettings, PolicyShape, ShardTask
from ppo.network import ActorCritic

OBS_DIM, ACT_DIM, ROWS = 26, 4, 2000
LOSS = LossSettings(action_std=0.4, clip_coef=0.2, value_coef=0.7)


def policy_and_batch(hidden: tuple[int, ...] = (32, 32)) -> tuple[ActorCritic, dict]:
    """A policy away from its initialisation, and a batch whose ratios fall on both sides of
    the clip range with advantages of both signs (every branch of the surrogate)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, hidden)
    with torch.no_grad():
        for parameter in policy.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    obs = rng.normal(size=(ROWS, OBS_DIM)).astype(np.float32)
    with torch.no_grad():
        mean = policy.actor(torch.as_tensor(obs))
    actions = (mean + LOSS.action_std * torch.randn(ROWS, ACT_DIM)).numpy()
    log_probs = gaussian_log_prob(actions, mean.numpy(), LOSS.action_std)
    return policy, {
        "obs": obs, "actions": actions,
        "old_log_probs": (log_probs + rng.normal(scale=0.3, size=ROWS)).astype(np.float32),
        "advantages": rng.normal(size=ROWS).astype(np.float32),
        "returns": rng.normal(size=ROWS).astype(np.float32)}


def autograd(policy: ActorCritic, batch: dict, minibatch: np.ndarray) -> tuple[float, np.ndarray]:
    """The definition: ppo_loss's value and its autograd gradient, flat in PolicyShape order."""
    settings = PPOSettings(num_envs=1, num_steps=ROWS, optimizer="Adam", learning_rate=0.0,
                           clip_coef=LOSS.clip_coef, value_coef=LOSS.value_coef, train_steps=1,
                           minibatch_size=len(minibatch), max_grad_norm=1.0, gamma=0.99,
                           gae_lambda=0.95, device="cpu")
    policy.zero_grad(set_to_none=True)
    terms = ppo_loss(policy, *(torch.as_tensor(batch[name][minibatch])
                               for name in gradient.BATCH_ARRAYS), LOSS.action_std, settings)
    terms.total.backward()
    flat = torch.cat([p.grad.reshape(-1) for p in flat_parameters(policy)])
    return terms.total.item(), flat.numpy()


def shared_arrays(policy: ActorCritic, batch: dict, minibatch: np.ndarray) -> dict:
    shape = policy_shape(policy)
    layout = gradient.shared_layout(shape, ROWS, len(minibatch))
    arrays = {name: np.zeros(size, dtype) for name, (dtype, size) in layout.items()}
    for name in gradient.BATCH_ARRAYS:
        arrays[name][:] = batch[name]
    arrays["minibatch"][:] = minibatch
    arrays["weights"][:] = torch.cat([p.detach().reshape(-1)
                                      for p in flat_parameters(policy)]).numpy()
    return arrays


def task(policy: ActorCritic, rows: int, shards: tuple[int, ...] | None = None) -> ShardTask:
    return ShardTask(policy_shape(policy), LOSS, rows,
                     tuple(range(gradient.num_shards(rows))) if shards is None else shards)


@pytest.mark.parametrize("rows", [1000, 600, 37])
def test_the_sharded_gradient_is_autograds_gradient_of_the_loss(rows):
    """Whole shards, a part shard (600 = 250 + 250 + 100) and a minibatch of one part
    shard: the summed shards are ppo_loss's gradient to float32 rounding, and so are the
    loss and the log-ratios the diagnostics read."""
    policy, batch = policy_and_batch()
    minibatch = np.random.default_rng(1).permutation(ROWS)[:rows]
    arrays = shared_arrays(policy, batch, minibatch)
    task(policy, rows).run(arrays)
    shards = gradient.num_shards(rows)
    policy_loss, value_loss = arrays["loss_sums"][:shards].sum(axis=0) / rows
    expected_loss, expected_gradient = autograd(policy, batch, minibatch)

    assert policy_loss + LOSS.value_coef * value_loss == pytest.approx(expected_loss, rel=1e-5)
    summed = arrays["gradients"][:shards].sum(axis=0)
    assert np.abs(summed - expected_gradient).max() <= 1e-5 * np.abs(expected_gradient).max()
    with torch.no_grad():
        new = gaussian_log_prob(torch.as_tensor(batch["actions"][minibatch]),
                                policy.actor(torch.as_tensor(batch["obs"][minibatch])),
                                LOSS.action_std)
    np.testing.assert_allclose(arrays["log_ratios"][:rows],
                               new.numpy() - batch["old_log_probs"][minibatch], atol=1e-5)


def test_clipped_terms_give_the_actor_no_gradient():
    """Ratios far outside the clip range on the side the advantage pushes: the surrogate is
    flat there, so only the critic gets a gradient."""
    policy, batch = policy_and_batch((16,))
    minibatch = np.arange(300)
    batch["old_log_probs"] = batch["old_log_probs"].copy()
    new_log_probs = autograd_log_probs(policy, batch, minibatch)
    sign = np.sign(batch["advantages"][minibatch])
    batch["old_log_probs"][minibatch] = new_log_probs - 5.0 * sign  # ratio e^(+-5)
    arrays = shared_arrays(policy, batch, minibatch)
    task(policy, len(minibatch)).run(arrays)
    actor, critic = policy_shape(policy).split(arrays["gradients"][:2].sum(axis=0))
    assert all(not weight.any() and not bias.any() for weight, bias in actor)
    assert any(weight.any() for weight, _ in critic)


def autograd_log_probs(policy: ActorCritic, batch: dict, minibatch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        mean = policy.actor(torch.as_tensor(batch["obs"][minibatch]))
    return gaussian_log_prob(batch["actions"][minibatch], mean.numpy(), LOSS.action_std)


def test_each_shard_has_the_same_bits_whoever_computes_it_and_in_whatever_company():
    """Shards computed all at once, one by one in reverse, or two processes' shares: every
    shard's gradient, loss sums and log-ratios are bit-identical. This is what lets the
    study's workers share the update without the study depending on how many there are."""
    policy, batch = policy_and_batch()
    minibatch = np.random.default_rng(2).permutation(ROWS)[:1000]
    shards = gradient.num_shards(1000)
    splits = [[tuple(range(shards))], [(s,) for s in reversed(range(shards))],
              [tuple(range(shards))[0::2], tuple(range(shards))[1::2]]]
    results = []
    for split in splits:
        arrays = shared_arrays(policy, batch, minibatch)
        for part in split:
            task(policy, 1000, part).run(arrays)
        results.append({name: arrays[name].copy()
                        for name in ("gradients", "loss_sums", "log_ratios")})
    for other in results[1:]:
        for name, values in results[0].items():
            assert np.array_equal(values, other[name]), name


def test_the_policy_shape_is_the_networks_parameter_layout():
    policy = ActorCritic(OBS_DIM, ACT_DIM, (32, 16, 8))
    shape = policy_shape(policy)
    assert shape == PolicyShape.build(OBS_DIM, (32, 16, 8), ACT_DIM)
    parameters = flat_parameters(policy)
    assert shape.size == sum(p.numel() for p in policy.parameters()) == sum(
        p.numel() for p in parameters)
    flat = torch.cat([p.detach().reshape(-1) for p in parameters]).numpy()
    actor, critic = shape.split(flat)
    layers = [*policy.actor[::2], *policy.critic[::2]]
    for (weight, bias), layer in zip([*actor, *critic], layers, strict=True):
        assert np.array_equal(weight, layer.weight.detach().numpy())
        assert np.array_equal(bias, layer.bias.detach().numpy())
    assert math.prod(actor[-1][0].shape) == ACT_DIM * 8


def test_an_update_by_the_shards_follows_the_autograd_update():
    """Eight gradient steps from the same weights and minibatches (Adam, clipping): the two
    ways end at the same weights to float32 rounding, far closer than the steps moved them."""
    from ppo.algorithm import Batch, autograd_gradients, make_learner, sharded_gradients, update
    from ppo.normalize import RewardScaler

    policy, arrays = policy_and_batch()
    batch = Batch(arrays["obs"], arrays["actions"], arrays["old_log_probs"],
                  arrays["advantages"], arrays["returns"])
    settings = PPOSettings(num_envs=1, num_steps=ROWS, optimizer="Adam", learning_rate=1e-3,
                           clip_coef=LOSS.clip_coef, value_coef=LOSS.value_coef, train_steps=8,
                           minibatch_size=600, max_grad_norm=0.5, gamma=0.99,
                           gae_lambda=0.95, device="cpu")
    start = [p.detach().clone() for p in policy.parameters()]
    weights = []
    for method in (sharded_gradients, autograd_gradients):
        with torch.no_grad():
            for parameter, value in zip(policy.parameters(), start, strict=True):
                parameter.copy_(value)
        learner = make_learner(settings, policy, RewardScaler(1, 0.99),
                               torch.Generator().manual_seed(3))
        update(learner, batch, LOSS.action_std, gradient_method=method)
        weights.append(torch.cat([p.detach().reshape(-1) for p in policy.parameters()]))
    moved = (weights[1] - torch.cat([p.reshape(-1) for p in start])).abs().max()
    assert (weights[0] - weights[1]).abs().max() < 1e-3 * moved


def test_a_network_the_numpy_gradient_does_not_compute_is_refused():
    """Anything but the tanh MLPs `ppo.network.mlp` builds would get a wrong gradient."""
    policy = ActorCritic(OBS_DIM, ACT_DIM, (16,))
    policy.critic.insert(1, torch.nn.LayerNorm(16))
    with pytest.raises(ValueError, match="tanh MLPs only"):
        policy_shape(policy)


def test_a_diverged_shard_warns_nothing():
    """Overflowing ratios make a non-finite loss, which the update reports in one line: the
    shards themselves print no NumPy warning (in every worker, it would be many lines)."""
    import warnings

    policy, batch = policy_and_batch()
    batch["old_log_probs"] = np.full(ROWS, -1e4, dtype=np.float32)  # ratio e^10000
    minibatch = np.arange(500)
    arrays = shared_arrays(policy, batch, minibatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task(policy, 500).run(arrays)
    assert not np.isfinite(arrays["loss_sums"][:2]).all()


def settings_for(minibatch_size: int, clip_coef: float) -> PPOSettings:
    return PPOSettings(num_envs=1, num_steps=ROWS, optimizer="Adam", learning_rate=1e-3,
                       clip_coef=clip_coef, value_coef=LOSS.value_coef, train_steps=1,
                       minibatch_size=minibatch_size, max_grad_norm=0.5, gamma=0.99,
                       gae_lambda=0.95, device="cpu")


def step_gradients_both_ways(policy: ActorCritic, arrays: dict, rows: np.ndarray,
                             clip_coef: float = LOSS.clip_coef
                             ) -> list[tuple[LossTerms, list[torch.Tensor | None]]]:
    """One gradient step's loss terms and every parameter's .grad, by the NumPy shards and by
    autograd, from the same weights (the update's own two `GradientMethod`s)."""
    from ppo.algorithm import Batch, autograd_gradients, make_learner, sharded_gradients
    from ppo.normalize import RewardScaler

    batch = Batch(arrays["obs"], arrays["actions"], arrays["old_log_probs"],
                  arrays["advantages"], arrays["returns"])
    learner = make_learner(settings_for(len(rows), clip_coef), policy, RewardScaler(1, 0.99),
                           torch.Generator().manual_seed(0))
    results = []
    for method in (sharded_gradients, autograd_gradients):
        policy.zero_grad(set_to_none=True)
        terms = method(learner, batch, LOSS.action_std)(torch.as_tensor(rows))
        results.append((terms, [None if p.grad is None else p.grad.clone()
                                for p in flat_parameters(policy)]))
    return results


def assert_same_gradients(numpy_grads: list, autograd_grads: list) -> None:
    """Parameter by parameter: both None (frozen), or equal to float32 rounding relative to
    that parameter's own scale (a small term cannot hide behind a large one)."""
    for mine, reference in zip(numpy_grads, autograd_grads, strict=True):
        assert (mine is None) == (reference is None)
        if reference is not None:
            scale = reference.abs().max().item()
            assert (mine - reference).abs().max().item() <= 1e-5 * scale


def test_each_term_of_the_loss_and_its_gradient_is_autograds():
    """The policy and value losses separately (what the diagnostics report), the actor's
    gradient (the policy term's alone: actor and critic are separate networks) and the
    critic's (the weighted value term's), each parameter against autograd's."""
    policy, arrays = policy_and_batch()
    rows = np.random.default_rng(4).permutation(ROWS)[:600]
    (mine, numpy_grads), (reference, autograd_grads) = step_gradients_both_ways(
        policy, arrays, rows)
    for name in ("total", "policy_loss", "value_loss"):
        assert getattr(mine, name).item() == pytest.approx(getattr(reference, name).item(),
                                                           rel=1e-5), name
    np.testing.assert_allclose(mine.log_ratio.numpy(), reference.log_ratio.detach().numpy(),
                               atol=1e-5)
    assert all(grad.abs().max() > 0 for grad in autograd_grads)  # every parameter is tested
    assert_same_gradients(numpy_grads, autograd_grads)


def test_frozen_layers_get_no_gradient_and_thawed_ones_autograds():
    """Transfer freezes the first layers (no gradient at all, not a zero one) and thaws them
    later: frozen, thawed one by one, then all trainable, the shards give what autograd
    gives, parameter by parameter."""
    policy, arrays = policy_and_batch((32, 32, 32))
    rows = np.arange(500)
    layers = [*policy.actor[::2], *policy.critic[::2]]
    policy.requires_grad_(False)
    for thawed in range(1, len(layers) + 1):  # at least one layer trains
        layers[-thawed].requires_grad_(True)  # the last first, as a thaw schedule goes
        (_, numpy_grads), (_, autograd_grads) = step_gradients_both_ways(policy, arrays, rows)
        frozen = sum(grad is None for grad in numpy_grads)
        assert frozen == 2 * (len(layers) - thawed)  # weight and bias of each frozen layer
        assert_same_gradients(numpy_grads, autograd_grads)


def coarse_log_ratio(sign: int) -> float:
    """A log-ratio near +-0.2 that is a multiple of 1/64 (so that it is exact in float32) and
    whose exponential is the same float32 in NumPy and in torch (their exp can differ by
    an ulp)."""
    for k in range(12, 20):
        log_ratio = np.full(400, sign * k / 64, dtype=np.float32)
        if np.array_equal(np.exp(log_ratio), torch.exp(torch.from_numpy(log_ratio)).numpy()):
            return sign * k / 64
    raise AssertionError("no log-ratio with the same exponential in NumPy and torch")


@pytest.mark.parametrize("edge", [0, -1, 1])
def test_ratios_exactly_at_one_and_at_the_clip_edges(edge):
    """Every row's ratio exactly 1, or exactly on the lower or upper edge of the clip range
    (the surrogate's kink: the unclipped and clipped terms tie there, autograd splits min's
    gradient between them and clamp passes its share): the shards' gradient is autograd's.

    Built so that both paths see the same bits: the actor's last layer is zero, so its mean is
    exactly 0 and the new log-probabilities are the same; the old ones are those less a
    log-ratio exact in float32, and the clip range's edge is its exponential."""
    log_ratio = coarse_log_ratio(edge) if edge else 0.0
    ratio = np.exp(np.float32(log_ratio))
    clip_coef = abs(float(ratio) - 1) or LOSS.clip_coef  # 1 +- clip_coef is exactly `ratio`
    policy, arrays = policy_and_batch((16, 16))
    with torch.no_grad():
        policy.actor[-2].weight.zero_()
        policy.actor[-2].bias.zero_()
    new_log_probs = gaussian_log_prob(arrays["actions"], np.zeros_like(arrays["actions"]),
                                      LOSS.action_std).astype(np.float32)
    old_log_probs = arrays["old_log_probs"] = new_log_probs - np.float32(log_ratio)
    exact = np.flatnonzero(new_log_probs - old_log_probs == np.float32(log_ratio))
    assert len(exact) > ROWS // 2  # the rows whose subtraction gives the log-ratio back
    (mine, numpy_grads), (reference, autograd_grads) = step_gradients_both_ways(
        policy, arrays, exact[:400], clip_coef)
    assert np.all(np.exp(mine.log_ratio.numpy()) == ratio)
    assert torch.all(torch.exp(reference.log_ratio) == torch.tensor(ratio))
    assert_same_gradients(numpy_grads, autograd_grads)
    actor_last = next(index for index, parameter in enumerate(flat_parameters(policy))
                      if parameter is policy.actor[-2].weight)
    assert numpy_grads[actor_last].abs().max() > 0  # the tie keeps the policy's gradient

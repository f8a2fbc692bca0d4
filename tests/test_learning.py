"""Tests that fail when learning breaks: a wrong sign in the loss, a critic that does not fit, an
update that moves the policy the wrong way. Each runs the project's own update (`update`) or
whole study (`train`) on fixed inputs, so the numbers are the same on every run."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from conftest import tiny_flags

from common.config import Config, parse_config
from ppo.algorithm import Batch, gaussian_log_prob, make_learner, update
from ppo.network import ActorCritic
from ppo.normalize import RewardScaler
from study.trainer import ppo_settings, train

OBS_DIM, ACT_DIM = 24, 4  # the walker's
ACTION_STD = 0.5
FRAMES = 256


def synthetic_batch(policy: ActorCritic, seed: int = 0) -> Batch:
    """A batch as the rollout would give it: actions drawn around the policy's mean actions,
    their log-probabilities under it; advantages +1 for half the rows and -1 for the other half
    (their signs survive the per-minibatch normalisation); returns a function of the
    observation the critic can learn."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(FRAMES, OBS_DIM)).astype(np.float32)
    with torch.no_grad():
        mean = policy.actor(torch.from_numpy(obs))
    actions = (mean + ACTION_STD * torch.from_numpy(
        rng.normal(size=(FRAMES, ACT_DIM)).astype(np.float32)))
    log_probs = gaussian_log_prob(actions, mean, ACTION_STD)
    advantages = np.where(np.arange(FRAMES) % 2 == 0, 1.0, -1.0).astype(np.float32)
    returns = (2.0 * obs[:, 0] - obs[:, 1] + 1.0).astype(np.float32)
    return Batch(obs=obs, actions=actions.numpy(), log_probs=log_probs.numpy(),
                 advantages=advantages, returns=returns)


def learner_and_batch(**settings) -> tuple:
    """A fresh policy, its learner (Adam, as a study has), and a batch of one full rollout."""
    config = replace(Config(save_name="learning"), **{
        "batch_size": FRAMES, "num_envs": 1, "minibatch_size": 64, "train_steps": 8,
        "learning_rate": 1e-3, **settings})
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (32, 32))
    learner = make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                           torch.Generator().manual_seed(0))
    return learner, synthetic_batch(policy)


def log_probs_under(policy: ActorCritic, batch: Batch) -> np.ndarray:
    with torch.no_grad():
        mean = policy.actor(torch.from_numpy(batch.obs))
        return gaussian_log_prob(torch.from_numpy(batch.actions), mean, ACTION_STD).numpy()


def test_one_update_makes_positive_advantage_actions_likelier_and_the_others_less_likely():
    learner, batch = learner_and_batch()
    before = log_probs_under(learner.policy, batch)
    update(learner, batch, ACTION_STD)
    change = log_probs_under(learner.policy, batch) - before
    favoured, disfavoured = change[batch.advantages > 0], change[batch.advantages < 0]
    assert favoured.mean() > 0.01 and disfavoured.mean() < -0.01
    # Not only on average: most of the actions of each kind moved the right way.
    assert (favoured > 0).mean() > 0.6 and (disfavoured < 0).mean() > 0.6


def value_loss_on(learner, batch: Batch) -> float:
    """The critic's squared error on the whole batch, computed here rather than read from the
    loss: a loss of the wrong sign would report its own divergence as falling."""
    with torch.no_grad():
        values = learner.policy.critic(torch.from_numpy(batch.obs)).squeeze(-1)
        return 0.5 * (values - torch.from_numpy(batch.returns)).square().mean().item()


def test_updates_on_a_fixed_batch_lower_the_value_loss():
    learner, batch = learner_and_batch(learning_rate=3e-3)
    losses = [value_loss_on(learner, batch)]
    for _ in range(5):
        update(learner, batch, ACTION_STD)
        losses.append(value_loss_on(learner, batch))
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(after < before for before, after in zip(losses, losses[1:], strict=False)), losses


LEARNS_IN_SECONDS = (
    "--total_frames=30000",
    "--batch_size=2000",
    "--minibatch_size=250",
    "--train_steps=40",
    "--learning_rate=1e-3",
    "--hidden_layers=[32,32]",
    "--max_time_steps=100",  # a short episode: standing up and leaning forward pays at once
    "--tensorboard=none",
)
"""A setting on which PPO learns within 15 batches (about 6 s a seed on a loaded core).
Measured over seeds 1-5, the mean return of the last 4,000 frames' episodes against the first
batch's rose by 27, 37, 34, 30 and 18; with the policy loss's sign flipped it changed by
-31, -6, +11, -12 and -27."""
LEARNING_SEEDS = (1, 2, 3)


def return_gain(tmp_path: Path, seed: int) -> float:
    """Mean return of the episodes that ended in the study's last 4,000 frames, less that of
    those in its first batch (the untrained policy)."""
    config = parse_config(tiny_flags(tmp_path, *LEARNS_IN_SECONDS, f"--seed={seed}",
                                     save_name=f"learns_{seed}"))
    train(config)
    results = pickle.loads((tmp_path / "r" / f"learns_{seed}.p").read_bytes())
    frames = np.asarray(results["episodes"]["frames"])
    rewards = np.asarray(results["episodes"]["reward"])
    first = rewards[frames <= config.frames_per_batch]
    last = rewards[frames > config.total_frames - 2 * config.frames_per_batch]
    assert len(first) >= 10 and len(last) >= 20, "too few episodes to compare"
    return float(last.mean() - first.mean())


def test_a_short_study_improves_its_return(tmp_path: Path):
    gains = [return_gain(tmp_path, seed) for seed in LEARNING_SEEDS]
    assert np.mean(gains) > 15, gains
    assert min(gains) > 0, gains

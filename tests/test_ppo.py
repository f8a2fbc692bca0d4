"""PPO pieces: GAE, reward scaling, observation normalisation, the loss, checkpoints,
reproducibility, and `run.py` smoke runs that check (and reload) every file a study writes."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_py, study_results, tiny_flags

from common.checkpoint import load_checkpoint, policy_from_checkpoint, save_policy
from common.config import Config
from common.errors import UsageError
from common.results import COLUMNS
from ppo.algorithm import (
    Batch,
    RolloutBuffer,
    advantages_and_returns,
    compute_gae,
    gaussian_log_prob,
    make_learner,
    ppo_loss,
    update,
)
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler, RunningNormalizer
from ppo.schedules import Schedules
from study.trainer import ppo_settings, train

OBS_DIM, ACT_DIM = 24, 4  # the walker's

# ----- GAE ---------------------------------------------------------------------------------


def gae_case() -> dict[str, np.ndarray]:
    """2 environments x 4 steps, (num_steps, num_envs) arrays; worked out by hand below.

    gamma = 0.5, lambda = 0.5, so gamma * lambda = 0.25.
    delta_t = r_t + gamma * next_value_t * (1 - terminated_t) - value_t
    A_t     = delta_t + gamma * lambda * (1 - ended_t) * A_{t+1}   (A_4 = 0: end of rollout)

    env 0: truncated (time limit) at t=2: bootstrapped from its final observation's value 10,
           but the advantage does not flow back across the boundary. t=3 is mid-episode and
           bootstraps from next_value 3 at the end of the rollout.
      t=3: delta = 4 + 0.5*3  - 2   = 3.5          A = 3.5
      t=2: delta = 3 + 0.5*10 - 1.5 = 6.5          A = 6.5 + 0.25*0*3.5  = 6.5
      t=1: delta = 2 + 0.5*1.5 - 1  = 1.75         A = 1.75 + 0.25*6.5   = 3.375
      t=0: delta = 1 + 0.5*1  - 0.5 = 1.0          A = 1.0 + 0.25*3.375  = 1.84375
    env 1: terminated (fell) at t=2: its next value 7 must be ignored (no future).
      t=3: delta = 1 + 0.5*2 - 1    = 1.0          A = 1.0
      t=2: delta = -5 + 0     - 1   = -6.0         A = -6.0 + 0.25*0*1.0 = -6.0
      t=1: delta = 1 + 0.5*1 - 1    = 0.5          A = 0.5 + 0.25*(-6)   = -1.0
      t=0: delta = 1 + 0.5*1 - 1    = 0.5          A = 0.5 + 0.25*(-1)   = 0.25
    """
    columns = {  # per env, then transposed to (num_steps, num_envs)
        "rewards": ([1, 2, 3, 4], [1, 1, -5, 1]),
        "values": ([0.5, 1, 1.5, 2], [1, 1, 1, 1]),
        "next_values": ([1, 1.5, 10, 3], [1, 1, 7, 2]),
        "terminated": ([0, 0, 0, 0], [0, 0, 1, 0]),
        "episode_ended": ([0, 0, 1, 0], [0, 0, 1, 0]),
        "advantages": ([1.84375, 3.375, 6.5, 3.5], [0.25, -1.0, -6.0, 1.0]),
    }
    return {name: np.array(pair, dtype=np.float32).T for name, pair in columns.items()}


def test_gae_matches_hand_computed_case_with_termination_and_truncation():
    case = gae_case()
    advantages = compute_gae(case["rewards"], case["values"], case["next_values"],
                             case["terminated"], case["episode_ended"], gamma=0.5, gae_lambda=0.5)
    assert advantages.shape == (4, 2)
    np.testing.assert_allclose(advantages, case["advantages"], rtol=0, atol=1e-6)


def test_gae_with_lambda_one_is_the_bootstrapped_discounted_return_minus_value():
    rewards = np.array([[1.0], [2.0], [3.0]], dtype=np.float32)
    values = np.array([[0.5], [0.25], [2.0]], dtype=np.float32)
    next_values = np.array([[0.25], [2.0], [4.0]], dtype=np.float32)
    zeros = np.zeros_like(rewards)
    advantages = compute_gae(rewards, values, next_values, zeros, zeros, gamma=0.5, gae_lambda=1.0)
    # returns: G2 = 3 + 0.5*4 = 5; G1 = 2 + 0.5*5 = 4.5; G0 = 1 + 0.5*4.5 = 3.25
    np.testing.assert_allclose(advantages[:, 0], [3.25 - 0.5, 4.5 - 0.25, 5 - 2.0], atol=1e-6)


def test_rollout_buffer_batch_flattens_step_major_and_returns_are_advantage_plus_value():
    case = gae_case()
    buffer = RolloutBuffer(num_steps=4, num_envs=2, obs_dim=3, act_dim=2)
    for name in ("rewards", "values", "next_values", "terminated", "episode_ended"):
        getattr(buffer, name)[:] = case[name]
    buffer.obs[:] = np.arange(4 * 2 * 3).reshape(4, 2, 3)
    batch = advantages_and_returns(buffer, gamma=0.5, gae_lambda=0.5)
    assert batch.obs.shape == (8, 3) and batch.actions.shape == (8, 2)
    np.testing.assert_allclose(batch.advantages, case["advantages"].reshape(-1), atol=1e-6)
    np.testing.assert_allclose(batch.returns, (case["advantages"] + case["values"]).reshape(-1),
                               atol=1e-6)
    np.testing.assert_array_equal(batch.obs[1], [3, 4, 5])  # step 0, env 1


# ----- reward scaling and observation normalisation ---------------------------------------


def test_reward_scaler_divides_by_std_of_discounted_return_and_resets_at_episode_end():
    gamma = 0.9
    rng = np.random.default_rng(0)
    scaler = RewardScaler(num_envs=2, gamma=gamma)
    discounted = np.zeros(2)
    seen: list[np.ndarray] = []
    for step in range(50):
        rewards = rng.normal(size=2)
        ended = np.array([step % 7 == 6, step % 11 == 10])
        scaled = scaler(rewards, ended)
        discounted = discounted * gamma + rewards
        seen.append(discounted.copy())
        expected_var = np.var(np.concatenate(seen))
        np.testing.assert_allclose(scaler.var, expected_var, rtol=1e-6)
        np.testing.assert_allclose(scaled, rewards / np.sqrt(expected_var + 1e-8), rtol=1e-5)
        discounted[ended] = 0.0
        np.testing.assert_array_equal(scaler.discounted_return, discounted)


def test_reward_scaler_clips_and_its_state_survives_weights_only_loading(tmp_path: Path):
    scaler = RewardScaler(num_envs=1, gamma=0.99)
    for _ in range(300):
        scaler(np.array([0.01]), np.array([True]))
    # The outlier enters the running variance too, so it scales to about sqrt(301) > 10.
    assert scaler(np.array([1e6]), np.array([True]))[0] == 10.0
    torch.save(scaler.state_dict(), tmp_path / "state.pt")
    restored = RewardScaler(num_envs=1, gamma=0.99)
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.state_dict() == scaler.state_dict()
    # A study resumed with another number of environments: statistics kept, returns restart.
    wider = RewardScaler(num_envs=3, gamma=0.99)
    wider.load_state_dict(scaler.state_dict())
    assert wider.var == scaler.var and wider.discounted_return.tolist() == [0.0, 0.0, 0.0]
    assert wider(np.ones(3), np.array([False, True, False])).shape == (3,)


def test_running_normalizer_matches_numpy_over_concatenated_batches():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=(n, 5)) for n in (1, 7, 100, 33)]
    normalizer = RunningNormalizer(5)
    for batch in batches:
        normalizer.update(batch)
    everything = np.concatenate(batches)
    np.testing.assert_allclose(normalizer.mean.numpy(), everything.mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(normalizer.var.numpy(), everything.var(axis=0), rtol=1e-7)
    assert normalizer.count.item() == pytest.approx(len(everything))

    obs = torch.tensor(rng.normal(3.0, 2.0, size=(4, 5)), dtype=torch.float32)
    expected = (obs.numpy() - everything.mean(0)) / np.sqrt(everything.var(0) + 1e-8)
    np.testing.assert_allclose(normalizer(obs).numpy(), expected, rtol=1e-5, atol=1e-6)
    outlier = torch.full((1, 5), 1e6)
    assert torch.all(normalizer(outlier) == 10.0)  # clipped


def test_rollout_numpy_policy_reproduces_the_torch_policy_it_was_taken_from():
    """The rollout samples with a NumPy copy of the policy; the update recomputes with torch.
    They must agree (to float32 rounding), or PPO's ratios would start away from 1."""
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (32, 32, 32))
    rng = np.random.default_rng(2)
    policy.obs_normalizer.update(rng.normal(2.0, 3.0, size=(500, OBS_DIM)))
    for layer in linear_layers(policy.actor)[-1:]:  # a trained-looking, not near-zero, output
        torch.nn.init.normal_(layer.weight, std=0.5)
    snapshot = PolicySnapshot(policy)
    obs = rng.normal(2.0, 3.0, size=(8, OBS_DIM)).astype(np.float32)
    obs[0, :3] = [1e6, -1e6, 0.0]  # clipped by both
    norm_obs = snapshot.normalize(obs)
    with torch.no_grad():
        torch_norm_obs = policy.obs_normalizer(torch.from_numpy(obs))
        torch_mean = policy.mean_action(torch.from_numpy(obs))
        torch_value = policy.value(torch.from_numpy(obs))
    assert norm_obs.dtype == np.float32
    np.testing.assert_array_equal(norm_obs, torch_norm_obs.numpy())
    mean = snapshot.mean_action(norm_obs)
    assert mean.std() > 0.1  # a policy whose actions differ between observations
    np.testing.assert_allclose(mean, torch_mean.numpy(), atol=2e-6)
    value = snapshot.value(norm_obs)
    np.testing.assert_allclose(value, torch_value.numpy(), rtol=1e-5, atol=1e-5)

    actions = (mean + 0.3 * rng.normal(size=mean.shape)).astype(np.float32)
    torch_log_prob = gaussian_log_prob(torch.from_numpy(actions), torch.from_numpy(mean), 0.3)
    np.testing.assert_allclose(gaussian_log_prob(actions, mean, 0.3),
                               torch_log_prob.numpy(), rtol=1e-6)

    policy.obs_normalizer.update(rng.normal(size=(10, OBS_DIM)))
    with torch.no_grad():
        linear_layers(policy.critic)[0].weight.add_(1.0)
    assert np.array_equal(snapshot.normalize(obs), norm_obs), "a snapshot, not a live view"
    assert np.array_equal(snapshot.value(norm_obs), value)


# ----- the loss ----------------------------------------------------------------------------


def test_ppo_loss_at_the_sampling_policy_is_the_weighted_value_loss(tiny_config):
    config = tiny_config()
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (16, 16))
    obs = torch.randn(64, OBS_DIM)
    actions = torch.randn(64, ACT_DIM).clamp(-1, 1)
    with torch.no_grad():
        mean = policy.actor(obs)  # the mean action (the actor ends in tanh)
        old_log_probs = torch.distributions.Normal(mean, 0.5).log_prob(actions).sum(-1)
        values = policy.critic(obs).squeeze(-1)
    advantages, returns = torch.randn(64), torch.randn(64)
    loss = ppo_loss(policy, obs, actions, old_log_probs, advantages, returns, 0.5,
                    ppo_settings(config)).total
    # ratio = 1 and normalised advantages have mean 0, so only the value loss remains.
    expected = config.value_coef * 0.5 * (values - returns).square().mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)


def test_ppo_loss_clips_the_ratio(tiny_config):
    """Ratio far above 1 + clip where the advantage is positive and far below 1 - clip where
    it is negative: every term is clipped, so the actor gets no gradient."""
    config = tiny_config()
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (16,))
    obs, actions = torch.randn(8, OBS_DIM), torch.zeros(8, ACT_DIM)
    with torch.no_grad():
        mean = policy.actor(obs)  # the mean action (the actor ends in tanh)
        log_probs = torch.distributions.Normal(mean, 0.5).log_prob(actions).sum(-1)
    advantages = torch.linspace(-1, 1, 8)  # sign unchanged by the loss's normalisation
    old_log_probs = log_probs - 5.0 * advantages.sign()  # ratio = e^(+-5)
    loss = ppo_loss(policy, obs, actions, old_log_probs, advantages,
                    policy.critic(obs).squeeze(-1).detach(), 0.5, ppo_settings(config)).total
    loss.backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in policy.actor.parameters())


# ----- action noise schedule ---------------------------------------------------------------


def test_action_std_schedule_is_linear_then_constant(tiny_config):
    config = tiny_config("--total_frames=1000", "--action_std_start=0.8",
                         "--action_std_final=0.2", "--action_std_end=0.5")
    schedules = Schedules.resolve(config)
    assert schedules.action_std_end_frame == 500
    assert [schedules.action_std_at(f) for f in (0, 250, 500, 1000)] == pytest.approx(
        [0.8, 0.5, 0.2, 0.2])
    fixed = Schedules.resolve(tiny_config())
    assert fixed.action_std_at(0) == fixed.action_std_at(10**9) == 0.5  # the fixed --action_std
    instant = tiny_config("--action_std_start=0.8", "--action_std_final=0.2",
                          "--action_std_end=0")
    assert Schedules.resolve(instant).action_std_at(0) == pytest.approx(0.2)


# ----- checkpoints ---------------------------------------------------------------------------


def trained_looking_policy(hidden: tuple[int, ...] = (16, 16)) -> ActorCritic:
    """Random weights and normaliser statistics, so a round trip that dropped any would show."""
    torch.manual_seed(3)
    policy = ActorCritic(OBS_DIM, ACT_DIM, hidden)
    with torch.no_grad():
        for param in policy.parameters():
            param.normal_(0, 0.3)
    policy.obs_normalizer.update(np.random.default_rng(3).normal(2, 3, size=(300, OBS_DIM)))
    return policy


def test_checkpoint_round_trip_reproduces_actions(tmp_path: Path):
    policy = trained_looking_policy()
    path = tmp_path / "models" / "walker.pt"
    env = {"env": "Bipedal_Custom_Leg_Length-v0", "leg_length": 30.0}
    save_policy(path, policy, env, frames=12345, score=250.5)
    assert [p.name for p in path.parent.iterdir()] == ["walker.pt"]  # no temporary left

    raw = torch.load(path, weights_only=True)  # loadable without trusting the file
    assert raw["hidden_layers"] == [16, 16] and raw["frames"] == 12345
    assert raw["score"] == 250.5 and raw["env"] == env
    assert {"torch", "numpy", "gymnasium", "python"} <= set(raw["versions"])

    restored = policy_from_checkpoint(load_checkpoint(path))
    obs = torch.tensor(np.random.default_rng(4).normal(2, 3, size=(32, OBS_DIM)),
                       dtype=torch.float32)
    with torch.no_grad():
        assert torch.equal(restored.mean_action(obs), policy.mean_action(obs))
        assert torch.equal(restored.value(obs), policy.value(obs))
    assert torch.equal(restored.obs_normalizer.mean, policy.obs_normalizer.mean)


def test_load_checkpoint_rejects_files_that_are_not_policies(tmp_path: Path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for name in ("tensor.pt", "text.pt", "missing.pt"):
        with pytest.raises(UsageError):
            load_checkpoint(tmp_path / name)


# ----- whole studies -------------------------------------------------------------------------


@pytest.mark.parametrize("num_envs", [1, 2])
def test_same_seed_gives_identical_results(tmp_path: Path, tiny_config, num_envs: int):
    """In-process, so the second run is not slowed by interpreter start-up."""
    runs = []
    for name in ("a", "b"):
        config = tiny_config(f"--num_envs={num_envs}", "--seed=7", folder=tmp_path / name)
        outcome = train(config)
        assert outcome.frames == 2000 and outcome.stopped_by_signal is None
        runs.append((study_results(tmp_path / name),
                     torch.load(tmp_path / name / "m" / "tiny.last.pt", weights_only=True)))
    (first, first_last), (second, second_last) = runs
    assert len(first["episodes"]["reward"]) > 0
    for column in COLUMNS:
        if column != "wall_time":
            assert first["episodes"][column] == second["episodes"][column], column
    assert first["frames"] == second["frames"] == 2000
    assert first["episodes"]["action_std"] == [0.5] * len(first["episodes"]["action_std"])
    for key, tensor in first_last["state_dict"].items():
        assert torch.equal(tensor, second_last["state_dict"][key]), key


def test_best_checkpoint_holds_the_statistics_its_weights_ran_with(tmp_path: Path, tiny_config):
    """One batch: the best checkpoint holds the weights that collected it, so it must hold the
    normaliser as it was during that rollout (nothing seen yet), not after absorbing it; the
    last checkpoint (the next rollout's) has absorbed the batch's 1000 observations. (The rule
    of --best_by=running_average; by evaluation, see the next test.)"""
    train(tiny_config("--total_frames=1000", "--best_by=running_average"))
    best = load_checkpoint(tmp_path / "m" / "tiny.pt")
    last = load_checkpoint(tmp_path / "m" / "tiny.last.pt")
    assert best["frames"] == last["frames"] == 1000
    assert best["state_dict"]["obs_normalizer.count"].item() == pytest.approx(1e-8)
    assert torch.all(best["state_dict"]["obs_normalizer.mean"] == 0)
    assert last["state_dict"]["obs_normalizer.count"].item() == pytest.approx(1000)
    # Both carry the reward scaling statistics, which a transfer study restores.
    assert best["reward_scaler"]["count"] == pytest.approx(1000) and best["reward_scaler"][
        "var"] > 0


def test_best_checkpoint_by_evaluation_holds_the_policy_that_was_evaluated(tmp_path: Path,
                                                                           tiny_config):
    """By evaluation the best policy is the one evaluated after the update, normaliser
    included: here the last batch's, the same weights and statistics as the last checkpoint."""
    train(tiny_config("--total_frames=1000", "--eval_every=1000"))
    best = load_checkpoint(tmp_path / "m" / "tiny.pt")
    last = load_checkpoint(tmp_path / "m" / "tiny.last.pt")
    assert best["frames"] == last["frames"] == 1000
    assert best["score_kind"].endswith("deterministic episodes") and best["score"] > -math.inf
    for key, tensor in last["state_dict"].items():
        assert torch.equal(best["state_dict"][key], tensor), key


def test_a_different_seed_gives_different_results(tmp_path: Path, tiny_config):
    rewards = []
    for seed in (1, 2):
        train(tiny_config("--total_frames=1000", f"--seed={seed}", folder=tmp_path / str(seed)))
        rewards.append(study_results(tmp_path / str(seed))["episodes"]["reward"])
    assert rewards[0] != rewards[1]


def read_csv(path: Path) -> tuple[list[str], list[list[float]]]:
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], [[float(value) for value in row] for row in rows[1:]]


def test_run_py_smoke_writes_loadable_files_and_follows_the_action_std_schedule(tmp_path: Path):
    """Two workers, a noise schedule 0.8 -> 0.2 over the first half: the second batch (frames
    1000-2000) runs entirely at 0.2, the first at 0.8."""
    done = run_py(tiny_flags(tmp_path, "--num_envs=2", "--action_std_start=0.8",
                             "--action_std_final=0.2", "--action_std_end=0.5",
                             save_name="smoke"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    models, results = tmp_path / "m", tmp_path / "r"
    assert sorted(p.name for p in models.iterdir()) == ["smoke.last.pt", "smoke.pt"]
    assert sorted(p.name for p in results.iterdir()) == ["smoke.csv", "smoke.p",
                                                         "smoke_config.json",
                                                         "smoke_evaluations.csv",
                                                         "smoke_updates.csv"]
    assert str(results / "smoke.p") in done.stdout

    best = load_checkpoint(models / "smoke.pt")
    assert best["hidden_layers"] == [32, 32, 32, 32]
    assert best["env"]["leg_length"] == 34.0 and best["env"]["max_time_steps"] == 200
    policy = policy_from_checkpoint(best)
    with torch.no_grad():
        action = policy.mean_action(torch.zeros(1, OBS_DIM))
    assert action.shape == (1, ACT_DIM) and torch.all(action.abs() <= 1)
    last = torch.load(models / "smoke.last.pt", weights_only=True)
    assert last["frames"] == 2000 and "optimizer" in last

    document = study_results(tmp_path, "smoke")
    assert set(document) == {"config", "frames", "best_score", "wall_time", "schedules",
                             "transfer", "episodes", "updates", "evaluations", "best_by",
                             "score_kind"}
    assert document["schedules"] == {"action_std_start": 0.8, "action_std_final": 0.2,
                                     "action_std_end_frame": 1000, "thaw_frames": []}
    assert document["frames"] == 2000 and document["transfer"] == ""
    assert document["config"]["num_envs"] == 2 and document["config"]["save_name"] == "smoke"
    assert isinstance(document["best_score"], float) and document["wall_time"] > 0
    episodes = document["episodes"]
    assert tuple(episodes) == ("frames", "length", "reward", "wall_time", "action_std",
                               "leg_length", "thigh_length", "shin_length", "leg_width",
                               "motor_torque", *(f"{side}_{segment}_{size}"
                                                 for size in ("length", "width")
                                                 for segment in ("thigh", "shin")
                                                 for side in ("left", "right")))
    count = len(episodes["frames"])
    # The default walker's design, on every episode (a design range would show each draw).
    assert set(zip(*(episodes[name] for name in tuple(episodes)[5:]), strict=True)) == {
        (34.0, 34.0, 34.0, 8.0, 80.0, 34.0, 34.0, 34.0, 34.0, 8.0, 8.0, 6.4, 6.4)}
    assert count >= 4 and all(len(values) == count for values in episodes.values())
    assert episodes["frames"] == sorted(episodes["frames"]) and episodes["frames"][-1] <= 2000
    assert all(1 <= length <= 200 for length in episodes["length"])
    assert all(math.isfinite(reward) for reward in episodes["reward"])
    expected_std = [0.8 if frames <= 1000 else 0.2 for frames in episodes["frames"]]
    assert episodes["action_std"] == pytest.approx(expected_std)
    assert set(expected_std) == {0.8, 0.2}, "both batches should complete episodes"

    header, rows = read_csv(results / "smoke.csv")
    assert header == list(episodes)
    assert rows == [list(row) for row in zip(*episodes.values(), strict=True)]


def weight_change_after_one_update(max_grad_norm: float) -> float:
    """Global norm of what one update (4 SGD steps at learning rate 0.1) moved the weights."""
    config = replace(Config(save_name="clip"), optimizer="sgd", learning_rate=0.1,
                     batch_size=200, num_envs=1, train_steps=4, minibatch_size=50,
                     max_grad_norm=max_grad_norm)
    torch.manual_seed(0)
    policy = ActorCritic(24, 4, config.hidden_layers)
    learner = make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                           torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.normal(size=(200, 24)).astype(np.float32),
                  actions=rng.uniform(-1, 1, (200, 4)).astype(np.float32),
                  log_probs=rng.normal(-3, 1, 200).astype(np.float32),
                  advantages=rng.normal(size=200).astype(np.float32),
                  returns=rng.normal(10, 5, 200).astype(np.float32))
    before = [p.detach().clone() for p in policy.parameters()]
    update(learner, batch, action_std=0.5)
    return float(torch.sqrt(sum(((p.detach() - b) ** 2).sum()
                                for p, b in zip(policy.parameters(), before, strict=True))))


def test_max_grad_norm_bounds_every_step():
    # SGD moves the weights by learning rate x the clipped gradient: at most 0.1 x 1e-3 a step.
    assert weight_change_after_one_update(1e-3) <= 4 * 0.1 * 1e-3 * (1 + 1e-5)
    assert weight_change_after_one_update(1e6) > 100 * 4 * 0.1 * 1e-3  # the unclipped steps


def gradient_steps_of_one_update(batch_frames: int) -> int:
    """Adam steps one update takes on a batch of `batch_frames` rows, when a full batch is
    1,000 frames and `--train_steps=80`."""
    config = replace(Config(save_name="steps"), batch_size=1000, num_envs=1, train_steps=80,
                     minibatch_size=250)
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (16,))
    learner = make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                           torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.normal(size=(batch_frames, OBS_DIM)).astype(np.float32),
                  actions=rng.uniform(-1, 1, (batch_frames, ACT_DIM)).astype(np.float32),
                  log_probs=rng.normal(-3, 1, batch_frames).astype(np.float32),
                  advantages=rng.normal(size=batch_frames).astype(np.float32),
                  returns=rng.normal(size=batch_frames).astype(np.float32))
    update(learner, batch, action_std=0.5)
    first_weight = linear_layers(policy.actor)[0].weight
    return int(learner.optimizer.state[first_weight]["step"])


def test_a_shortened_last_batch_gets_gradient_steps_in_proportion_to_its_frames():
    """The budget's last batch may hold only num_envs frames: 80 steps on 16 frames would fit
    the policy to them alone."""
    assert gradient_steps_of_one_update(1000) == 80
    assert gradient_steps_of_one_update(500) == 40
    assert gradient_steps_of_one_update(16) == 1  # 80 x 16 / 1000 = 1.28
    assert gradient_steps_of_one_update(2) == 1  # at least one


def actor_and_critic_after_one_update(value_coef: float, max_grad_norm: float
                                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's and the critic's weights, flattened, after one Adam update (4 steps)."""
    config = replace(Config(save_name="coef"), batch_size=200, num_envs=1, train_steps=4,
                     minibatch_size=50, learning_rate=1e-2, value_coef=value_coef,
                     max_grad_norm=max_grad_norm)
    torch.manual_seed(0)
    policy = ActorCritic(OBS_DIM, ACT_DIM, (16,))
    learner = make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                           torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.normal(size=(200, OBS_DIM)).astype(np.float32),
                  actions=rng.uniform(-1, 1, (200, ACT_DIM)).astype(np.float32),
                  log_probs=rng.normal(-3, 1, 200).astype(np.float32),
                  advantages=rng.normal(size=200).astype(np.float32),
                  returns=rng.normal(10, 5, 200).astype(np.float32))
    update(learner, batch, action_std=0.5)
    return (torch.nn.utils.parameters_to_vector(policy.actor.parameters()).detach(),
            torch.nn.utils.parameters_to_vector(policy.critic.parameters()).detach())


def test_value_coef_acts_only_through_the_shared_gradient_clip_under_adam():
    """What --help says of --value_coef: with Adam, unclipped, its scale cancels (the actor
    does not see it at all, the critic's steps are the same); clipped, it changes both."""
    actor_low, critic_low = actor_and_critic_after_one_update(0.5, max_grad_norm=1e9)
    actor_high, critic_high = actor_and_critic_after_one_update(5.0, max_grad_norm=1e9)
    assert torch.equal(actor_low, actor_high)
    assert torch.allclose(critic_low, critic_high, rtol=0, atol=1e-5)
    actor_low, critic_low = actor_and_critic_after_one_update(0.5, max_grad_norm=0.05)
    actor_high, critic_high = actor_and_critic_after_one_update(5.0, max_grad_norm=0.05)
    assert not torch.allclose(actor_low, actor_high, rtol=0, atol=1e-5)
    assert not torch.allclose(critic_low, critic_high, rtol=0, atol=1e-5)

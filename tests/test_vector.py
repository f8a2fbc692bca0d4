"""WalkerPool: results independent of the worker count, same-step autoreset, clean shutdown."""

from __future__ import annotations

import dataclasses
import os
import time

import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import ENV_ID
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic
from study.trainer import Study, walker_seeds
from workers.sampler import BlockedPolicy
from workers.vector import CLOSE_GRACE_S, WalkerPool

# Short episodes, so that a few dozen steps see episodes end and restart.
SHORT = dict(leg_length=34, terrain_length_scale=1, fall_penalty=-100, max_time_steps=25)
GYMNASIUM_ARGS = dict(leg_length=34, terrain_length_scale=1, fall_penalty=-100,
                      max_time_steps=1600)


def random_actions(steps: int, num_envs: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (steps, num_envs, 4)).astype(np.float32)


def run_pool(num_workers: int, actions: np.ndarray, seed: int = 5) -> list[np.ndarray]:
    """Every array the pool returned, in order."""
    pool = WalkerPool(ENV_ID, SHORT, actions.shape[1], num_workers)
    try:
        arrays = [pool.reset(range(seed, seed + pool.num_envs))]
        for step_actions in actions:
            result = pool.step(step_actions)
            arrays += [result.obs, result.rewards, result.terminated, result.truncated,
                       result.final_obs]
    finally:
        pool.close()
    return arrays


@pytest.mark.parametrize("num_workers", [2, 3])
def test_worker_processes_give_the_same_results_as_stepping_in_process(num_workers):
    actions = random_actions(60, 5)
    in_process = run_pool(0, actions)
    with_workers = run_pool(num_workers, actions)
    assert len(in_process) == len(with_workers)
    for ours, theirs in zip(in_process, with_workers, strict=True):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    # The run really covered autoresets (25-step episodes over 60 steps).
    truncated = in_process[4::5]
    assert sum(int(flags.sum()) for flags in truncated) >= 5


@pytest.mark.parametrize(("num_envs", "cores", "expected"), [
    (1, 8, 0), (3, 8, 0), (4, 8, 4), (8, 2, 2), (8, 16, 8), (8, 1, 0), (8, None, 0)])
def test_default_workers_are_one_per_core_where_they_pay_for_their_round_trips(
        monkeypatch, tiny_config, num_envs, cores, expected):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert tiny_config(f"--num_envs={num_envs}").worker_processes == expected
    assert tiny_config(f"--num_envs={num_envs}", "--num_workers=1").worker_processes == 1


def test_env_i_is_reset_with_the_ith_seed():
    pool = WalkerPool(ENV_ID, SHORT, 3, 2)
    try:
        obs = pool.reset([10, 7, 2**40])
        with pytest.raises(ValueError, match="3 walkers need 3 seeds"):
            pool.reset([1, 2])
    finally:
        pool.close()
    for i, seed in enumerate([10, 7, 2**40]):
        env = gym.make(ENV_ID, **SHORT)
        assert np.array_equal(obs[i], env.reset(seed=seed)[0])


def test_walker_seeds_are_independent_streams_per_seed_and_per_start():
    """Walker streams come from SeedSequence(seed): seeds 1 and 2 share none of them (with
    `seed + i` they shared 7 of 8), the same seed gives the same ones, and a resumed study
    (a later start) gets new ones rather than replaying its first episodes."""
    first, second = walker_seeds(1, 8), walker_seeds(2, 8)
    assert first == walker_seeds(1, 8) and len(set(first)) == 8
    assert not set(first) & set(second)
    assert walker_seeds(1, 3) == first[:3]  # walker i's stream does not depend on num_envs
    assert not set(walker_seeds(1, 8, start=5)) & set(first)


def step_reference(env: gym.Env, actions: np.ndarray) -> tuple[list[np.ndarray], list[bool]]:
    """Observations and ended flags of one walker stepped by hand, resetting like the pool."""
    observations, ended = [], []
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        observations.append(obs)
        ended.append(terminated or truncated)
        if terminated or truncated:
            observations.append(env.reset()[0])  # unseeded, as the pool's autoreset
    return observations, ended


@pytest.mark.parametrize("num_workers", [0, 2])
def test_truncated_episode_returns_its_final_observation_and_the_next_first(num_workers):
    actions = random_actions(SHORT["max_time_steps"] + 3, 2)
    pool = WalkerPool(ENV_ID, SHORT, 2, num_workers)
    try:
        pool.reset(range(pool.num_envs))
        results = [pool.step(step_actions) for step_actions in actions]
    finally:
        pool.close()
    for i in range(2):
        reference = gym.make(ENV_ID, **SHORT)
        reference.reset(seed=i)
        observations, _ = step_reference(reference, actions[:, i])
        last = SHORT["max_time_steps"] - 1
        ended_step = results[last]
        assert ended_step.truncated[i] and not ended_step.terminated[i]
        assert np.array_equal(ended_step.final_obs[i], observations[last])
        assert np.array_equal(ended_step.obs[i], observations[last + 1])
        assert not np.array_equal(ended_step.obs[i], ended_step.final_obs[i])
        # Steps where nothing ended: final_obs is the observation itself.
        for step in (0, last - 1, last + 1):
            assert np.array_equal(results[step].final_obs[i], results[step].obs[i])
            assert not (results[step].terminated[i] or results[step].truncated[i])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_terminated_episode_returns_its_final_observation(num_workers):
    """Gymnasium's walker, seed 0, these random actions: it falls at step 59."""
    actions = random_actions(80, 1, seed=0)
    pool = WalkerPool(ENV_ID, GYMNASIUM_ARGS, 1, num_workers)
    reference = gym.make("BipedalWalker-v3")
    reference.reset(seed=0)
    try:
        pool.reset(range(pool.num_envs))
        steps = 0
        for step_actions in actions:
            result = pool.step(step_actions)
            ref_obs, ref_reward, terminated, _, _ = reference.step(step_actions[0])
            steps += 1
            assert result.rewards[0] == ref_reward
            assert np.array_equal(result.final_obs[0], ref_obs)
            if terminated:
                break
    finally:
        pool.close()
    assert result.terminated[0] and steps == 59 and result.rewards[0] == -100
    assert np.array_equal(result.obs[0], reference.reset()[0])


def test_close_leaves_no_live_processes():
    pool = WalkerPool(ENV_ID, SHORT, 4, 2)
    workers = list(pool.workers)
    assert len(workers) == 2 and all(worker.is_alive() for worker in workers)
    pool.reset(range(pool.num_envs))
    pool.step(random_actions(1, 4)[0])
    pool.close()
    assert not any(worker.is_alive() for worker in workers)
    assert all(worker.describe_exit() == "exited with status 0" for worker in workers)
    pool.close()  # a second close is harmless


class FailingWalker(gym.Env):
    """Raises on its third step."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.steps = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps == 3:
            raise ValueError("the walker broke")
        return np.zeros(3, np.float32), 0.0, False, False, {}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_environment_error_reaches_the_caller(num_workers):
    if "FailingWalker-v0" not in gym.registry:
        gym.register("FailingWalker-v0", entry_point=FailingWalker)
    pool = WalkerPool("FailingWalker-v0", {}, 2, num_workers)
    try:
        pool.reset(range(pool.num_envs))
        pool.step(np.zeros((2, 2), np.float32))
        pool.step(np.zeros((2, 2), np.float32))
        error = RuntimeError if num_workers else ValueError
        with pytest.raises(error, match="the walker broke"):
            pool.step(np.zeros((2, 2), np.float32))
    finally:
        pool.close()
    assert not any(worker.is_alive() for worker in pool.workers)


def study_outcome(config) -> tuple[dict[str, list], list[torch.Tensor]]:
    """A study's episodes (but their wall times) and final weights."""
    study = Study(config)
    study.run()
    assert not any(worker.is_alive() for worker in study.walkers.workers)
    episodes = {k: v for k, v in study.log.columns.items() if k != "wall_time"}
    return episodes, [p.detach().clone() for p in study.policy.parameters()]


def test_a_study_does_not_depend_on_the_number_of_worker_processes(tiny_config):
    """Same seed and environments, 0, 1 or 3 workers, rollouts and gradient shards computed
    here or in the workers: the same episodes and weights."""
    # Minibatches of 600 rows: three gradient shards (250, 250, 100), shared out between
    # the workers during the update.
    base = tiny_config("--num_envs=3", "--max_time_steps=60", "--minibatch_size=600")
    (episodes, weights), *others = [
        study_outcome(dataclasses.replace(base, num_workers=workers, save_name=f"w{workers}"))
        for workers in (0, 1, 3)]
    assert len(episodes["reward"]) >= 3
    for other_episodes, other_weights in others:
        assert other_episodes == episodes
        assert all(torch.equal(a, b) for a, b in zip(weights, other_weights, strict=True))


def test_close_ends_a_rollout_under_way_in_the_workers():
    pool = WalkerPool(ENV_ID, SHORT, 3, 2, rollout_steps=20_000)
    try:
        pool.reset(range(pool.num_envs))
        pool.start_rollout(PolicySnapshot(ActorCritic(pool.observation_shape[0], 4, (8,))),
                           20_000)
    finally:
        started = time.monotonic()
        pool.close()
    # Not waiting for 20,000 steps (a minute), nor for the grace before a kill.
    assert time.monotonic() - started < CLOSE_GRACE_S
    assert all(worker.describe_exit() == "exited with status 0" for worker in pool.workers)


def test_policy_passes_do_not_depend_on_how_the_walkers_are_split():
    """Matrix products round a row by its place in the block it is computed with: the blocked
    passes give every walker the same numbers whichever rows a process computes."""
    num_envs, obs_dim = 37, 28  # blocks of 16: slices below cross block boundaries
    torch.manual_seed(0)
    policy = PolicySnapshot(ActorCritic(obs_dim, 4, (32, 32)))
    norm_obs = policy.normalize(np.random.default_rng(0).normal(
        size=(num_envs, obs_dim)).astype(np.float32) * 3)
    everyone = BlockedPolicy(policy, slice(0, num_envs), obs_dim)
    mean, value = everyone.mean_action(norm_obs), everyone.value(norm_obs)
    for rows in (slice(0, 5), slice(5, 19), slice(14, 33), slice(36, 37), slice(16, 32)):
        part = BlockedPolicy(policy, rows, obs_dim)
        assert np.array_equal(part.mean_action(norm_obs[rows]), mean[rows])
        assert np.array_equal(part.value(norm_obs[rows]), value[rows])
    # Not a vacuous check: plain matrix products on the same rows do round differently.
    rows = slice(5, 19)
    assert not all(np.array_equal(policy.value(norm_obs[r]), policy.value(norm_obs)[r])
                   for r in (rows, slice(0, 1), slice(14, 33)))


def rollout_samples(num_workers: int, stop_requested=lambda: False, steps: int = 40
                    ) -> dict[str, np.ndarray] | None:
    """One rollout of 3 short-episode walkers under a fixed random policy, shorter than the
    longest the pool was made for (as a study's last batch can be)."""
    torch.manual_seed(3)
    pool = WalkerPool(ENV_ID, SHORT, 3, num_workers, stop_requested, rollout_steps=steps + 5)
    try:
        pool.reset(range(1, 1 + pool.num_envs))
        policy = PolicySnapshot(ActorCritic(pool.observation_shape[0], 4, (16, 16)))
        pool.samples["noise"][:steps] = random_actions(steps, 3, seed=2) * 0.5
        pool.start_rollout(policy, steps)
        samples = pool.finish_rollout()
        return None if samples is None else {k: v.copy() for k, v in samples.items()}
    finally:
        pool.close()
        assert not any(worker.is_alive() for worker in pool.workers)


def test_rollouts_in_workers_match_those_in_process():
    in_process = rollout_samples(0)
    assert in_process["truncated"].sum() >= 3  # episodes ended and restarted within it
    assert all(len(array) == 40 for array in in_process.values())
    for workers in (2, 3):
        samples = rollout_samples(workers)
        for name, array in in_process.items():
            assert np.array_equal(samples[name], array), (workers, name)


def test_a_stop_ends_a_rollout_in_the_workers_early():
    """The workers end it themselves at their next step: nobody is killed for it."""
    asked = []

    def stop_requested() -> bool:
        asked.append(True)
        return len(asked) > 1

    started = time.monotonic()
    assert rollout_samples(2, stop_requested, steps=20_000) is None
    assert time.monotonic() - started < 20  # 20,000 steps of 2 walkers would take a minute

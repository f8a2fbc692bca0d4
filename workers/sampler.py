"""A rollout's steps: the policy snapshot chooses actions, the walkers take them, for as many
steps as the rollout has. The same code runs where the walkers are.

By default every worker process runs it on its own walkers for the whole rollout: no
message crosses between trainer and workers per step, so each core steps its walkers like an
independent process would, and a core per worker keeps helping however many there are.
Without workers the training process runs it on all walkers.

Either way the samples are the same numbers. The policy is the same snapshot for the whole
rollout, and every pass runs on blocks of POLICY_BLOCK rows with a walker always at the same
place in the same block: a matrix product rounds a row differently depending on how many
rows it is computed with and where the row sits among them (OpenBLAS's kernels), not on the
other rows' values. Everything else is elementwise. What needs all walkers at once (reward
scaling, the log-probabilities, episode bookkeeping) is left to the trainer, after the
rollout (`ppo.algorithm.finish_rollout`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ppo.inference import PolicySnapshot

POLICY_BLOCK = 16
"""Rows per policy pass. Walker i is computed at row i % POLICY_BLOCK of block
i // POLICY_BLOCK, whoever computes it; a worker passes only the blocks its walkers are in."""


def sample_layout(num_steps: int, num_envs: int, obs_dim: int, act_dim: int
                  ) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of a rollout's samples, (num_steps, num_envs, ...):

    raw_obs       observations the steps started from, for the normaliser
    obs           the same, normalised with the snapshot's statistics (what the update sees)
    mean_actions  the actor's output; actions are these plus the noise
    actions, values
    final_values  the critic's value of each step's final observation (the state that
                  followed, before any reset); needed where an episode ended, and at the
                  last step
    rewards, terminated, truncated   raw, as the walkers returned them
    final_obs     final observations (the design columns of ended episodes)
    noise         exploration noise, written by the trainer before the rollout
    """
    steps, obs_shape, act_shape = (num_steps, num_envs), (obs_dim,), (act_dim,)
    float32, layout = np.dtype(np.float32), {}
    for name in ("raw_obs", "obs", "final_obs"):
        layout[name] = (float32, (*steps, *obs_shape))
    for name in ("mean_actions", "actions", "noise"):
        layout[name] = (float32, (*steps, *act_shape))
    for name in ("values", "final_values"):
        layout[name] = (float32, steps)
    layout["rewards"] = (np.dtype(np.float64), steps)
    layout["terminated"] = (np.dtype(np.bool_), steps)
    layout["truncated"] = (np.dtype(np.bool_), steps)
    return layout


class BlockedPolicy:
    """The snapshot's actor and critic for the walkers `rows`, computed in POLICY_BLOCK blocks
    of the whole pool's walkers, so that a walker's numbers do not depend on who computes
    them; the rows of other walkers in those blocks are zeros."""

    def __init__(self, policy: PolicySnapshot, rows: slice, obs_dim: int) -> None:
        self.policy = policy
        first_block = rows.start // POLICY_BLOCK
        blocks = math.ceil(rows.stop / POLICY_BLOCK) - first_block
        self.inside = slice(rows.start - first_block * POLICY_BLOCK,
                            rows.stop - first_block * POLICY_BLOCK)
        self.blocks = np.zeros((blocks, POLICY_BLOCK, obs_dim), dtype=np.float32)

    def _passes(self, network: Callable[[np.ndarray], np.ndarray], norm_obs: np.ndarray
                ) -> np.ndarray:
        flat = self.blocks.reshape(-1, self.blocks.shape[-1])
        flat[self.inside] = norm_obs
        outputs = [network(block) for block in self.blocks]
        # Most workers' walkers sit in one block: no copy to join it to others.
        joined = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        return joined[self.inside]

    def mean_action(self, norm_obs: np.ndarray) -> np.ndarray:
        return self._passes(self.policy.mean_action, norm_obs)

    def value(self, norm_obs: np.ndarray) -> np.ndarray:
        return self._passes(self.policy.value, norm_obs)


StepWalkers = Callable[[np.ndarray], dict[str, np.ndarray]]
"""Steps the walkers with actions (walkers, act_dim); returns their "obs" (reset where an
episode ended), "final_obs", "rewards", "terminated" and "truncated"."""


def run_policy(policy: PolicySnapshot, rows: slice, obs: np.ndarray, step: StepWalkers,
               samples: dict[str, np.ndarray], keep_going: Callable[[], bool]) -> bool:
    """Fill `samples` (this process's walkers' columns of `sample_layout`'s arrays, their
    "noise" already drawn) by stepping the walkers `rows` of the pool from `obs`.

    Returns False, leaving the samples partial, as soon as `keep_going` says no (asked before
    every step).
    """
    blocked = BlockedPolicy(policy, rows, obs.shape[-1])
    num_steps = len(samples["obs"])
    for t in range(num_steps):
        if not keep_going():
            return False
        samples["raw_obs"][t] = obs
        norm_obs = samples["obs"][t] = policy.normalize(obs)
        mean = samples["mean_actions"][t] = blocked.mean_action(norm_obs)
        samples["values"][t] = blocked.value(norm_obs)
        actions = samples["actions"][t] = mean + samples["noise"][t]
        result = step(actions)
        for name in ("final_obs", "rewards", "terminated", "truncated"):
            samples[name][t] = result[name]
        if t == num_steps - 1 or result["terminated"].any() or result["truncated"].any():
            samples["final_values"][t] = blocked.value(policy.normalize(result["final_obs"]))
        obs = result["obs"]
    return True

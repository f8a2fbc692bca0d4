"""Where the synchronous update caps throughput on more cores: measured per-step costs, then
arithmetic (issue 27, item 4; benchmarks/README.md, "Scaling beyond this machine").

Measures, in CPU seconds of this process (`time.process_time`, so another job on the machine
slows the wall clock but hardly these figures): one raw walker step with random actions, and one
gradient step of the default network at several minibatch sizes, through `ppo.algorithm.update`
with every gradient shard computed in this process. Fits a gradient step's cost as
`fixed + per_row x rows`, then, for 2, 8, 16 and 64 cores with one worker per core, gives the
default study's update share of the wall time and what keeps it under a third.

Then the wall time of one default update (80 gradient steps of 1,000 rows on a 10,000-frame
batch) three ways, taken in turns: torch's autograd (`ppo.algorithm.autograd_gradients`, the
update before issue 27), NumPy's shards in this process, and NumPy's shards computed by a walker
pool's 2 workers (what a default study does). Wall time: it needs an otherwise idle machine.
Writes benchmarks/update_scaling.json.

    python benchmarks/update_scaling.py
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import envs  # noqa: E402
from common.config import Config  # noqa: E402
from ppo import algorithm  # noqa: E402
from ppo.algorithm import Batch, GradientSource, make_learner, update  # noqa: E402
from ppo.network import ActorCritic  # noqa: E402
from ppo.normalize import RewardScaler  # noqa: E402
from study.trainer import pool_gradient_layout, ppo_settings  # noqa: E402
from workers.vector import WalkerPool  # noqa: E402

ROWS = (250, 500, 1000, 2000, 4000)
STEPS = 40
"""Gradient steps timed per minibatch size (after one warm-up update)."""
CORES = (2, 8, 16, 64)
WORKER_EFFICIENCY = 0.85
"""A worker's rollout runs at this share of raw stepping (its policy pass; benchmarks/README.md)."""
TARGET_SHARE = 1 / 3
UPDATE_REPEATS = 7
"""Default updates timed per way (in turns, after one warm-up each)."""


def walker_step_seconds(steps: int = 3000) -> float:
    env = gym.make(envs.ENV_ID)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, envs.ACT_DIM)).astype(
        np.float32)
    started = time.process_time()
    for action in actions:
        if any(env.step(action)[2:4]):
            env.reset()
    return (time.process_time() - started) / steps


def random_batch(frames: int) -> Batch:
    rng = np.random.default_rng(0)
    return Batch(obs=rng.normal(size=(frames, envs.BODY_OBS_DIM)).astype(np.float32),
                 actions=rng.normal(size=(frames, envs.ACT_DIM)).astype(np.float32),
                 log_probs=rng.normal(size=frames).astype(np.float32) - 4,
                 advantages=rng.normal(size=frames).astype(np.float32),
                 returns=rng.normal(size=frames).astype(np.float32))


def learner_for(config: Config, gradients: GradientSource | None = None) -> algorithm.Learner:
    torch.manual_seed(0)
    policy = ActorCritic(envs.BODY_OBS_DIM, envs.ACT_DIM, config.hidden_layers)
    return make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                        torch.Generator().manual_seed(0), gradients)


def gradient_step_seconds(rows: int) -> float:
    """CPU seconds per gradient step of the default network on `rows`-row minibatches."""
    config = replace(Config(save_name="bench"), batch_size=rows * 10, num_envs=1,
                     minibatch_size=rows, train_steps=STEPS)
    learner, batch = learner_for(config), random_batch(rows * 10)
    update(learner, batch, 0.5)  # warm-up
    started = time.process_time()
    update(learner, batch, 0.5)
    return (time.process_time() - started) / STEPS


def default_update_seconds() -> dict[str, list[float]]:
    """Wall seconds of default updates: torch's autograd, NumPy shards here, NumPy shards in a
    pool's 2 workers; in turns, so that a slower spell of the machine hits each alike."""
    config = Config(save_name="bench")
    batch = random_batch(config.batch_size)
    pool = WalkerPool(config.env, {**config.env_kwargs(), "design_inputs": {}},
                      config.num_envs, 2, gradient_layout=partial(pool_gradient_layout, config))
    methods = {"torch_autograd": algorithm.autograd_gradients}
    try:
        learners = {"torch_autograd": learner_for(config),
                    "numpy_in_process": learner_for(config),
                    "numpy_2_workers": learner_for(config, pool)}
        seconds: dict[str, list[float]] = {name: [] for name in learners}
        for repeat in range(UPDATE_REPEATS + 1):
            for name, learner in learners.items():
                started = time.perf_counter()
                update(learner, batch, 0.5, gradient_method=methods.get(name))
                if repeat:  # the first is a warm-up
                    seconds[name].append(time.perf_counter() - started)
    finally:
        pool.close()
    return seconds


def scaling(step: float, fixed: float, per_row: float, batch: int, train_steps: int,
            minibatch: int) -> list[dict]:
    """Per core count: update share, train/machine, and what keeps the update under a third."""
    rate = WORKER_EFFICIENCY / step  # frames per second per worker
    update_s = train_steps * (fixed + per_row * minibatch)
    passes = train_steps * minibatch / batch
    rows = []
    for cores in CORES:
        rollout_s = batch / (cores * rate)
        # Batch that keeps this update (fixed steps and rows) under a third: rollout >= 2 update.
        batch_needed = 2 * update_s * cores * rate
        # Passes over the data that keep it under a third whatever the batch (large batches:
        # the per-row cost dominates): passes x per_row x rate x cores <= 1/2.
        passes_allowed = 0.5 / (per_row * rate * cores)
        rows.append({
            "cores": cores,
            "rollout_s": rollout_s,
            "update_s": update_s,
            "update_share": update_s / (update_s + rollout_s),
            "train_over_machine": WORKER_EFFICIENCY * rollout_s / (update_s + rollout_s),
            "batch_for_a_third": batch_needed,
            "train_steps_for_a_third_at_this_batch": rollout_s / 2 / (fixed + per_row * minibatch),
            "passes_for_a_third": passes_allowed,
            "passes_now": passes,
        })
    return rows


def main() -> int:
    torch.set_num_threads(1)  # as a study's trainer runs
    step = walker_step_seconds()
    costs = {rows: gradient_step_seconds(rows) for rows in ROWS}
    per_row, fixed = np.polyfit(list(costs), list(costs.values()), 1)
    default = Config(save_name="bench")
    table = scaling(step, fixed, per_row, default.batch_size, default.train_steps,
                    default.minibatch_size)
    updates = default_update_seconds()
    report = {"walker_step_us": step * 1e6,
              "gradient_step_ms": {str(rows): cost * 1e3 for rows, cost in costs.items()},
              "fit": {"fixed_ms": fixed * 1e3, "per_row_us": per_row * 1e6},
              "default": {"batch": default.batch_size, "train_steps": default.train_steps,
                          "minibatch": default.minibatch_size},
              "scaling": table,
              "default_update_ms": {name: [value * 1e3 for value in values]
                                    for name, values in updates.items()}}
    out = REPO_ROOT / "benchmarks" / "update_scaling.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"walker step {step * 1e6:.0f} us (CPU); gradient step "
          f"{fixed * 1e3:.2f} ms + {per_row * 1e6:.2f} us/row")
    print("cores | update share | train/machine | batch for 1/3 | steps for 1/3 | passes for 1/3")
    for row in table:
        print(f"{row['cores']:5} | {row['update_share']:12.0%} | {row['train_over_machine']:13.2f}"
              f" | {row['batch_for_a_third']:13,.0f} | "
              f"{row['train_steps_for_a_third_at_this_batch']:13.0f} | "
              f"{row['passes_for_a_third']:.1f} (now {row['passes_now']:.0f})")
    print(f"one default update (wall ms; min / median of {UPDATE_REPEATS}, in turns):")
    for name, values in updates.items():
        print(f"  {name:18} {min(values) * 1e3:6.0f} / {np.median(values) * 1e3:6.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

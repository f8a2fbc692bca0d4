"""Where the synchronous update caps throughput on more cores: measured per-step costs, then
arithmetic (issue 27, item 4; benchmarks/README.md, "Scaling beyond this machine").

Measures, in CPU seconds of this process (`time.process_time`, so another job on the machine
slows the wall clock but hardly these figures): one raw walker step with random actions, and one
gradient step of the default network at several minibatch sizes, through `ppo.algorithm.update`.
Fits a gradient step's cost as `fixed + per_row x rows`, then, for 2, 8, 16 and 64 cores with one
worker per core, gives the default study's update share of the wall time and what keeps it under
a third. Writes benchmarks/update_scaling.json.

    python benchmarks/update_scaling.py
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import envs  # noqa: E402
from ppo.algorithm import Batch, make_learner, update  # noqa: E402
from ppo.network import ActorCritic  # noqa: E402
from ppo.normalize import RewardScaler  # noqa: E402
from study.config import Config  # noqa: E402
from study.trainer import ppo_settings  # noqa: E402

ROWS = (250, 500, 1000, 2000, 4000)
STEPS = 40
"""Gradient steps timed per minibatch size (after one warm-up update)."""
CORES = (2, 8, 16, 64)
WORKER_EFFICIENCY = 0.85
"""A worker's rollout runs at this share of raw stepping (its policy pass; benchmarks/README.md)."""
TARGET_SHARE = 1 / 3


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


def gradient_step_seconds(rows: int) -> float:
    """CPU seconds per gradient step of the default network on `rows`-row minibatches."""
    config = replace(Config(save_name="bench"), batch_size=rows * 10, num_envs=1,
                     minibatch_size=rows, train_steps=STEPS)
    torch.manual_seed(0)
    policy = ActorCritic(envs.BODY_OBS_DIM, envs.ACT_DIM, config.hidden_layers)
    learner = make_learner(ppo_settings(config), policy, RewardScaler(1, config.gamma),
                           torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    frames = rows * 10
    batch = Batch(obs=rng.normal(size=(frames, envs.BODY_OBS_DIM)).astype(np.float32),
                  actions=rng.normal(size=(frames, envs.ACT_DIM)).astype(np.float32),
                  log_probs=rng.normal(size=frames).astype(np.float32) - 4,
                  advantages=rng.normal(size=frames).astype(np.float32),
                  returns=rng.normal(size=frames).astype(np.float32))
    update(learner, batch, 0.5)  # warm-up
    started = time.process_time()
    update(learner, batch, 0.5)
    return (time.process_time() - started) / STEPS


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
    report = {"walker_step_us": step * 1e6,
              "gradient_step_ms": {str(rows): cost * 1e3 for rows, cost in costs.items()},
              "fit": {"fixed_ms": fixed * 1e3, "per_row_us": per_row * 1e6},
              "default": {"batch": default.batch_size, "train_steps": default.train_steps,
                          "minibatch": default.minibatch_size},
              "scaling": table}
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

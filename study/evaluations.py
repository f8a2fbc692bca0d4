"""Evaluation during training, as Stable-Baselines3's EvalCallback does it: every `--eval_every`
frames (and at the end of the budget) the policy as it is after that batch's update plays
`--eval_episodes_during` episodes deterministically (the mean action), and with
`--best_by=eval` the best checkpoint is the policy of the best evaluation.

The episodes are the same at every evaluation of a study: episode i has the seed
`evaluation_seeds(seed, K)[i]`, from a stream of its own (`SeedSequence((seed, EVAL_STREAM))`),
which no training walker ever uses, and each is played in a fresh walker, whose terrain and,
over a design range, whose body are drawn from that seed alone. The episode loop is
`evaluation.evaluate.play`'s, the one `run.py --eval_episodes` uses: a checkpoint's recorded
score is what `--eval_episodes` gives for those seeds.

Where the study has walker worker processes, they play the episodes, each a contiguous share
of them, on all cores at once (`WalkerPool.call`); the trainer gathers the results in seed
order. An episode depends only on its seed and the policy, not on the process that plays it,
so the results are the same as played one after another here.

Nothing here draws from the study's random generators, so a resumed study evaluates exactly
as an uninterrupted one, on the same schedule.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import gymnasium as gym
import numpy as np

from common.config import Config
from common.results import SCORE_WINDOW
from evaluation.evaluate import EpisodeResult, play, summarize
from ppo.diagnostics import columns_to_csv
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic
from workers.vector import WalkerPool

EVAL_STREAM = 0x4556414C
"""ASCII "EVAL": the second word of the evaluation episodes' seed sequence (the training
walkers' sequences have the study's seed alone as entropy)."""
COLUMNS = ("frames", "mean_return", "std_return", "fall_rate", "finish_rate", "mean_length",
           "wall_time", "seconds")
"""`wall_time`: the study's seconds when the evaluation ended; `seconds`: what it took (wall
clock; its episodes shared among the worker processes where the study has them)."""
TENSORBOARD_TAGS = {"mean_return": "eval/mean_return", "std_return": "eval/std_return",
                    "fall_rate": "eval/fall_rate", "finish_rate": "eval/finish_rate",
                    "mean_length": "eval/mean_length"}


class EvaluationInterrupted(Exception):
    """A stop was requested during an evaluation: the batch is dropped, as one cut short."""


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """The reset seeds of a study's evaluation episodes (the same at every evaluation)."""
    stream = np.random.SeedSequence((seed, EVAL_STREAM))
    return [int(child.generate_state(1, np.uint32)[0]) for child in stream.spawn(episodes)]


def is_due(config: Config, frames_before: int, frames: int) -> bool:
    """Whether the batch that took the study from `frames_before` to `frames` ends with an
    evaluation: it crossed a multiple of `eval_every`, or spent the budget."""
    every = config.eval_every
    if every <= 0:
        return False
    return frames // every > frames_before // every or frames >= config.total_frames


def describe_protocol(config: Config) -> str:
    """For the banner: how the best checkpoint is picked and what its score means."""
    if config.eval_every <= 0:
        return (f"best policy by: running average of the last {SCORE_WINDOW} training episodes "
                "(exploration noise); no evaluation during training")
    seeds = evaluation_seeds(config.seed, config.eval_episodes_during)
    shown = ", ".join(map(str, seeds[:3])) + (", ..." if len(seeds) > 3 else "")
    evaluations = (f"evaluation every {config.eval_every:,} frames and at the end: "
                   f"{config.eval_episodes_during} deterministic episodes, seeds {shown} "
                   f"(fixed for the study)")
    rule = ("the best evaluation's mean return" if config.best_by == "eval"
            else f"running average of the last {SCORE_WINDOW} training episodes (exploration "
                 f"noise)")
    return f"{evaluations}\nbest policy by: {rule}"


def score_kind(config: Config) -> str:
    """What a best checkpoint's `score` is, as saved in it and shown by --list_models."""
    if config.best_by == "eval":
        return f"mean return of {config.eval_episodes_during} deterministic episodes"
    return f"running average of {SCORE_WINDOW} training episodes (exploration noise)"


def evaluate_policy(config: Config, policy: ActorCritic, design_inputs: dict[str, list[float]],
                    should_stop: Callable[[], bool], walkers: WalkerPool | None = None
                    ) -> list[EpisodeResult]:
    """The study's evaluation episodes with `policy` as it is now, played by the idle worker
    processes of `walkers` if it has any, else here; EvaluationInterrupted if a stop is
    requested before they end (here: between two episodes; in the workers: by the pool's own
    `stop_requested`, at their next step)."""
    seeds = evaluation_seeds(config.seed, config.eval_episodes_during)
    if walkers is not None and walkers.idle_workers:
        return play_in_workers(config, PolicySnapshot(policy), design_inputs, seeds, walkers)
    results = []
    for result in play(config, policy, len(seeds), design_inputs=design_inputs, seeds=seeds):
        results.append(result)
        if should_stop() and len(results) < len(seeds):
            raise EvaluationInterrupted
    return results


def play_in_workers(config: Config, policy: PolicySnapshot,
                    design_inputs: dict[str, list[float]] | None, seeds: Sequence[int],
                    walkers: WalkerPool) -> list[EpisodeResult]:
    """The episodes `seeds`, a contiguous share per idle worker of `walkers`, played at once;
    their results in seed order. EvaluationInterrupted if a stop cut a share short."""
    bounds = np.linspace(0, len(seeds), walkers.idle_workers + 1).round().astype(int)
    shares = [(config, policy, design_inputs, list(seeds[start:stop]))
              for start, stop in pairwise(bounds)]
    results = [result for played in walkers.call(play_share, shares) for result in played]
    if len(results) < len(seeds):
        raise EvaluationInterrupted
    return results


class ShareStopped(Exception):
    """Raised by `play_share`'s frame hook to end the episode under way at a stop request."""


def play_share(config: Config, policy: PolicySnapshot,
               design_inputs: dict[str, list[float]] | None, seeds: list[int],
               keep_going: Callable[[], bool]) -> list[EpisodeResult]:
    """A worker's share of an evaluation: `play`'s episodes with `seeds`, in the walker the
    trainer would build. `keep_going` is asked every step (the pool's sign that the worker is
    busy, not hung); once it says no, the episodes played so far, the one under way dropped."""
    def check(_env: gym.Env, _episode: int, _step: int, _return: float) -> None:
        if not keep_going():
            raise ShareStopped

    results = []
    with contextlib.suppress(ShareStopped):
        for result in play(config, policy, len(seeds), on_frame=check,
                           design_inputs=design_inputs, seeds=seeds):
            results.append(result)
    return results


class EvaluationLog:
    """Columns of COLUMNS, one entry per evaluation, as saved in checkpoints and results."""

    def __init__(self, columns: dict[str, list[float]] | None = None) -> None:
        columns = columns or {}
        count = len(columns.get("frames", []))
        self.columns: dict[str, list[float]] = {name: list(columns.get(name, [math.nan] * count))
                                                for name in COLUMNS}

    def __len__(self) -> int:
        return len(self.columns["frames"])

    def add(self, frames: int, results: list[EpisodeResult], wall_time: float, seconds: float
            ) -> dict[str, Any]:
        row = {**summarize(results, with_interval=False), "frames": frames,
               "wall_time": wall_time, "seconds": seconds}
        for name in COLUMNS:
            self.columns[name].append(row[name])
        return row

    def truncate(self, evaluations: int) -> None:
        for values in self.columns.values():
            del values[evaluations:]

    def row(self, index: int) -> dict[str, float]:
        return {name: self.columns[name][index] for name in COLUMNS}

    def best(self) -> float:
        return max(self.columns["mean_return"], default=-math.inf)

    def to_csv(self) -> str:
        return columns_to_csv(self.columns, COLUMNS)


def describe_evaluation(row: dict[str, Any], episodes: int, best: bool) -> str:
    """One console line per evaluation."""
    return (f"eval at {int(row['frames']):,} frames: mean return {row['mean_return']:.1f} "
            f"\u00b1 {row['std_return']:.1f} over {episodes} episodes, falls "
            f"{100 * row['fall_rate']:.0f}%, finished {100 * row['finish_rate']:.0f}%"
            + ("  (new best)" if best else ""))

"""Scoring one candidate design: a deterministic zero-shot evaluation of the conditioned policy
on that body, with the project's own evaluation (`run.py --eval_episodes=K`'s `load_policy` and
`play`: episode i on terrain seed `seed + i`, a fresh walker each, the actor's mean action).

Every candidate is played on the same K terrains (common random numbers), so differences
between candidates are differences between bodies, not between courses.

The score. A walker that finishes the course earns about the same return (~690 on the default
course) however fast it walks, so returns alone cannot rank designs that all finish. Each
finished episode therefore earns a bonus for the time it saved:
    score_i = return_i + finish_bonus x (1 - steps_i / max_time_steps)   if it finished
    score_i = return_i                                                    otherwise
(finish_bonus 100 by default: a walker that finishes in 1,000 of 1,500 steps gets +33). The
candidate's score is the mean over its episodes, with a 95% Student-t interval over episodes.

Energy: the mechanical work of the four motors, sum over steps and joints of
|motor torque x joint speed| x dt (Box2D units), measured from the joints after each step.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designsearch.project import (
    Config,
    EpisodeResult,
    design_inputs_of,
    interval95,
    load_policy,
    play,
    validate,
)
from designsearch.space import leg_area

FPS = 50.0
"""The walker's physics steps per second (Gymnasium's FPS): Box2D reports the motor's torque as
impulse x (1 / dt)."""


@dataclass(frozen=True)
class Course:
    """Where candidates are evaluated: run.py's course flags and the terrains' first seed."""

    terrain_length_scale: float
    max_time_steps: int
    fall_penalty: float
    seed: int


@dataclass(frozen=True)
class Job:
    """One candidate's evaluation, picklable for a worker process or a Ray task."""

    design: dict[str, float]
    episodes: int
    course: Course
    finish_bonus: float
    energy_weight: float
    policy_name: str
    policy_bytes: bytes = field(repr=False)
    """The checkpoint itself, so that a task on another node needs no shared filesystem."""


def episode_score(result: EpisodeResult, max_time_steps: int, finish_bonus: float) -> float:
    if result.outcome != "finished":
        return result.episode_return
    return result.episode_return + finish_bonus * (1.0 - result.length / max_time_steps)


def summarize(results: list[EpisodeResult], energies: list[float], design: Mapping[str, float],
              max_time_steps: int, finish_bonus: float, energy_weight: float) -> dict[str, Any]:
    """What the search records of a candidate (JSON-serialisable)."""
    returns = [r.episode_return for r in results]
    scores = [episode_score(r, max_time_steps, finish_bonus) for r in results]
    charged = [s - energy_weight * e for s, e in zip(scores, energies, strict=True)]
    finished = [r.length for r in results if r.outcome == "finished"]
    return {
        "episodes": len(results),
        "mean_return": float(np.mean(returns)),
        "return_ci": list(interval95(returns)),
        "score": float(np.mean(scores)),
        "score_ci": list(interval95(scores)),
        "scores": scores,
        "fall_rate": sum(r.fell for r in results) / len(results),
        "finish_rate": len(finished) / len(results),
        "steps_to_finish": float(np.mean(finished)) if finished else None,
        "energy": float(np.mean(energies)),
        "energy_score": float(np.mean(charged)),
        "energy_score_ci": list(interval95(charged)),
        "leg_area": leg_area(design),
        "returns": returns,
        "lengths": [r.length for r in results],
        "outcomes": [r.outcome for r in results],
    }


def candidate_config(design: Mapping[str, float], policy: str, episodes: int,
                     course: Course) -> Config:
    """run.py's configuration of `--initial_model=POLICY --eval_episodes=K` on this body."""
    config = Config(initial_model=policy, eval_episodes=episodes, seed=course.seed,
                    terrain_length_scale=course.terrain_length_scale,
                    max_time_steps=course.max_time_steps, fall_penalty=course.fall_penalty,
                    quiet=True, **design)
    validate(config)
    return config


def evaluate(job: Job) -> dict[str, Any]:
    """Play the job's K episodes; the candidate's summary. Runs in a worker or a Ray task."""
    import torch

    torch.set_num_threads(1)  # one core per candidate; the others evaluate other candidates
    with tempfile.TemporaryDirectory(prefix="design-") as folder:
        path = Path(folder) / f"{job.policy_name}.pt"
        path.write_bytes(job.policy_bytes)
        config = candidate_config(job.design, str(path), job.episodes, job.course)
        policy, checkpoint, _ = load_policy(config)
    energies: list[float] = []

    def meter(env: Any, _episode: int, step: int, _return: float) -> None:
        if step == 0:
            energies.append(0.0)
            return
        joints = env.unwrapped.joints
        energies[-1] += sum(abs(j.GetMotorTorque(FPS) * j.speed) for j in joints) / FPS

    results = list(play(config, policy, job.episodes, on_frame=meter,
                        design_inputs=design_inputs_of(checkpoint)))
    summary = summarize(results, energies, job.design, job.course.max_time_steps,
                        job.finish_bonus, job.energy_weight)
    summary["pid"] = os.getpid()
    return summary

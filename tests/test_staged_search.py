"""The staged search's logic on a cheap noisy objective with a known optimum (no walker): the
objective is injected where the walker's evaluation and training would run.

The toy: a design x = (leg_length - 24) / 22 in [0, 1] has a true worth f(x), best at x = 0.7.
A zero-shot score sees f plus a fixed bias of the policy's fit to that body (large, and rough
in x) plus episode noise; a trained policy's bias fades with frames, and each training seed
adds its own offset. Everything is seeded, so each run is the same run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optuna")

from designsearch.scoring import Course, summarize  # noqa: E402
from designsearch.search import Evaluator, Search, run_search  # noqa: E402
from designsearch.stages import (  # noqa: E402
    Stages,
    final_comparison,
    run_stages,
    stages_markdown,
    terrain_seeds,
)
from designsearch.training import TrainingRun  # noqa: E402
from evaluation.evaluate import EpisodeResult  # noqa: E402

OPTIMUM = 0.7
ZERO_SHOT = b"zero-shot policy"
EPISODE_FRAMES = 1000
"""What one zero-shot episode costs, in frames, when budgets are compared."""


def worth(leg_length: float) -> float:
    x = (leg_length - 24.0) / 22.0
    return 100.0 - 400.0 * (x - OPTIMUM) ** 2


def fit_bias(leg_length: float) -> float:
    return 30.0 * math.sin(2.1 * leg_length)


def noise(*keys: float) -> np.random.Generator:
    return np.random.default_rng([int(round(key * 1000)) % 2**32 for key in keys])


class Toy(Evaluator):
    """Scores jobs as the walker's evaluation would, from the toy's formula; counts frames."""

    def __init__(self) -> None:
        self.frames = 0

    def imap(self, jobs):
        for job in jobs:
            leg = job.design["leg_length"]
            seed, frames = (0, 0) if job.policy_bytes == ZERO_SHOT else json.loads(
                job.policy_bytes)
            mean = worth(leg) + fit_bias(leg) * math.exp(-frames / 2000) + (
                noise(seed, leg, 7).normal(0, 4) if seed else 0.0)
            returns = [mean + noise(terrain, leg, seed).normal(0, 30) for terrain in
                       range(job.course.seed, job.course.seed + job.episodes)]
            self.frames += job.episodes * EPISODE_FRAMES
            results = [EpisodeResult(0, value, 100, "time limit") for value in returns]
            yield summarize(results, [0.0] * len(results), job.design, 1000, 0.0, 0.0)


class ToyTrainer:
    def __init__(self, toy: Toy) -> None:
        self.toy, self.budget, self.trained = toy, {}, {}

    def train(self, stage: str, runs: list[TrainingRun], frames: int) -> int:
        for run in runs:
            key = (stage, run.label, run.seed)
            self.toy.frames += frames - self.trained.get(key, 0)
            self.trained[key] = frames
        self.budget[stage] = frames
        return 0

    def policy(self, stage: str, run: TrainingRun) -> tuple[str, bytes]:
        return f"{stage}_{run.label}_{run.seed}", json.dumps(
            [run.seed, self.budget[stage]]).encode()


def toy_search(tmp_path: Path, name: str, trials: int, episodes: int) -> Search:
    policy = tmp_path / "toy.pt"
    policy.write_bytes(ZERO_SHOT)
    return Search(save_name=name, policy_name="toy", policy_path=policy,
                  ranges={"leg_length": (24.0, 46.0)}, fixed={},
                  course=Course(1.0, 1000, -100.0, 1000), trials=trials, episodes=episodes,
                  parallel=4, storage=f"sqlite:///{tmp_path / 'toy.db'}",
                  results_dir=tmp_path, quiet=True)


STAGES = Stages(rescore=4, finetune=2, finetune_frames=6000, checkpoints=2, final=1,
                final_frames=6000)
ONE_STAGE_EPISODES = 10


def staged(tmp_path: Path, toy: Toy, name: str = "staged"):
    search = toy_search(tmp_path, name, trials=20, episodes=5)
    screen, stopped = run_search(search, lambda _: None, evaluators=lambda _: toy)
    assert stopped is None
    found, stopped = run_stages(search, STAGES, screen, lambda _: None, ToyTrainer(toy),
                                lambda _: toy)
    assert stopped is None
    return search, found


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One staged search, shared by the tests that read it; its database in memory-backed
    /dev/shm where there is one (SQLite's syncs dominate a toy's time)."""
    toy = Toy()
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("s")
    search, found = staged(folder, toy)
    yield folder, toy, search, found
    shutil.rmtree(folder)


def test_staged_search_finds_the_optimum_where_one_stage_picks_a_lucky_loser(run):
    tmp_path, toy, search, found = run
    rows = final_comparison(search, found["final"])
    winner = rows[0]
    staged_design = next(t.params["leg_length"] for t in found["final"].trials
                         if t.user_attrs["label"] == winner["label"])
    # The same total budget (frames, zero-shot episodes counted at EPISODE_FRAMES each) spent
    # on one zero-shot stage of 10 episodes per candidate (as the old headline did).
    one_toy = Toy()
    trials = toy.frames // (ONE_STAGE_EPISODES * EPISODE_FRAMES)
    one = toy_search(tmp_path, "one_stage", trials=trials, episodes=ONE_STAGE_EPISODES)
    study, _ = run_search(one, lambda _: None, evaluators=lambda _: one_toy)
    lucky = max(study.trials, key=lambda t: t.value)
    assert one_toy.frames == pytest.approx(toy.frames, rel=0.01)
    assert abs((staged_design - 24) / 22 - OPTIMUM) < 0.12  # the staged winner is near 0.7
    assert worth(staged_design) > worth(lucky.params["leg_length"]) + 2
    assert lucky.value > worth(lucky.params["leg_length"]) + 20  # lucky: its score overstates
    assert winner["difference"]["low"] > 0  # and it beats the baseline body (x = 0.45), paired


def test_stages_use_disjoint_terrains_and_report_checkpoints(run):
    _, _, search, found = run
    ranges = [set(terrain_seeds(search, stage, episodes)) for stage, episodes in
              (("screen", 5), ("rescore", 30), ("finetune", 30), ("final", 30))]
    assert all(not a & b for i, a in enumerate(ranges) for b in ranges[i + 1:])
    finetune = found["finetune"]
    assert len(finetune.trials) == 2
    assert all(sorted(t.intermediate_values) == [3000, 6000] for t in finetune.trials)
    text = stages_markdown(search, STAGES, found, None)
    assert "| final | 301000-301029 | 1001-1005 |" in text
    assert "Ranking at each frame checkpoint" in text


def test_a_finished_stage_is_not_run_again(run):
    _, toy, search, found = run
    before = toy.frames
    again = Toy()
    screen, _ = run_search(dataclasses.replace(search, resume=True),
                           lambda _: None, evaluators=lambda _: again)
    trainer = ToyTrainer(again)
    found_again, stopped = run_stages(search, STAGES, screen, lambda _: None, trainer,
                                      lambda _: again)
    assert stopped is None and again.frames == 0 and before > 0
    assert [t.values for t in found_again["final"].trials] == \
        [t.values for t in found["final"].trials]

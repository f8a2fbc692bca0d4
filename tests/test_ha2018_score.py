"""experiments/ha2018_score.py: held-out terrains, the finished-study rule, the cache, the outputs.

Two episodes of the shipped leg_34_trained, standing in for a finished study of Ha's original
recipe (a copy of it, so the paired difference of the two rows is known: zero)."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch

import envs
from designsearch.space import leg_area
from designsearch.stages import MAX_STAGE_EPISODES, STAGES, TERRAIN_OFFSET
from study.evaluations import evaluation_seeds
from study.trainer import walker_seeds

ROOT = Path(__file__).resolve().parents[1]
# Importable by name, here and in the processes it spawns (they inherit sys.path).
sys.path.insert(0, str(ROOT / "experiments"))
score = importlib.import_module("ha2018_score")

SHIPPED = ROOT / "trained_models" / "leg_34_trained.pt"


def script_flag(script: str, flag: str) -> str:
    return re.search(rf"--{flag}=(\S+)", (ROOT / "experiments" / script).read_text()).group(1)


def test_held_out_terrains_took_no_part_in_training_or_the_search():
    held_out = set(score.HELD_OUT_SEEDS)
    assert len(held_out) == 100
    # Evaluation during training: ha_original_s1..s5 (default 10 episodes), ha_design (20).
    during = {seed for training_seed in range(1, 6) for seed in evaluation_seeds(training_seed, 10)}
    during |= set(evaluation_seeds(1, int(script_flag("ha2018_design.sh",
                                                      "eval_episodes_during"))))
    # The first reset of the training walkers at each of a study's first 1,000 (re)starts.
    walkers = {seed for training_seed in range(1, 6) for start in range(1000)
               for seed in walker_seeds(training_seed, 8, start)}
    # Every stage of the search in experiments/ha2018_search.sh.
    first = int(script_flag("ha2018_search.sh", "seed"))
    stages = set(range(first, first + TERRAIN_OFFSET[STAGES[-1]] + MAX_STAGE_EPISODES))
    assert not held_out & (during | walkers | stages)


def test_small_legs_have_has_area_inside_the_supported_bounds():
    design = score.small_legs_design()
    assert leg_area(design) / leg_area({}) == pytest.approx(score.SMALL_LEGS_AREA, abs=1e-3)
    envs.check_walker_arguments(**design)  # raises outside the supported bounds


def fake_study(models: Path, results: Path, name: str, frames: int, total_frames: int) -> None:
    """A study of `name` holding the shipped policy, its resume checkpoint at `frames`."""
    checkpoint = torch.load(SHIPPED, weights_only=True)
    torch.save({**checkpoint, "frames": frames}, models / f"{name}.pt")
    torch.save({**checkpoint, "frames": frames, "config": {"total_frames": total_frames}},
               models / f"{name}.last.pt")
    (results / f"{name}.p").write_bytes(b"")
    (results / f"{name}.csv").write_text("frames,length,reward\n1,1,0\n2,1,0\n3,1,0\n")


def run_score(tmp_path: Path, rows: str = "original,leg_34_trained") -> tuple[dict, dict]:
    models, results, out = tmp_path / "models", tmp_path / "results", tmp_path / "out"
    assert score.main(["--rows", rows, "--episodes", "2",
                       "--processes", "1", "--out", str(out), "--models_dir", str(models),
                       "--results_dir", str(results)]) == 0
    return (json.loads((out / "scores.json").read_text()),
            json.loads((out / "final.json").read_text()))


@pytest.fixture
def studies(tmp_path: Path) -> Path:
    models, results = tmp_path / "models", tmp_path / "results"
    models.mkdir()
    results.mkdir()
    torch.save(torch.load(SHIPPED, weights_only=True), models / "leg_34_trained.pt")
    fake_study(models, results, "ha_original_s1", 3000, 3000)
    fake_study(models, results, "ha_original_s2", 1000, 3000)  # still training: not scored
    return tmp_path


def test_scores_finished_studies_and_resumes_from_its_cache(studies: Path, monkeypatch):
    scores, final = run_score(studies)
    original = scores["rows"]["original"]
    assert [seed["policy"] for seed in original["per_seed"]] == ["ha_original_s1"]
    assert original["training_episodes"] == 3 and original["training_frames"] == 3000
    assert original["scoring_episodes"] == 2
    assert scores["terrain_seeds"] == [score.HELD_OUT_SEEDS[0], score.HELD_OUT_SEEDS[1]]
    # The same weights on the same terrains: the paired difference is exactly zero.
    difference = scores["paired_differences"][0]
    assert (difference["a"], difference["b"]) == ("original", "leg_34_trained")
    assert difference["difference"]["value"] == 0.0
    assert scores["rows"]["leg_34_trained"]["training_episodes"] is None  # no CSV shipped

    def no_episodes(*_args):
        raise AssertionError("a cached policy was played again")

    monkeypatch.setattr(score, "score_policy", no_episodes)
    again, _ = run_score(studies)
    assert again == scores
    only_one, _ = run_score(studies, rows="leg_34_trained")  # the other row: from the cache
    assert only_one == scores
    cached = (studies / "out" / "episodes.jsonl").read_text().splitlines()
    assert len(cached) == 2


def test_final_json_names_the_design_and_one_policy_per_seed(studies: Path):
    _, final = run_score(studies)
    assert set(final) == {"original"}
    assert final["original"]["design"] == envs.GYMNASIUM_COURSE
    assert final["original"]["policies"] == [str(studies / "models" / "ha_original_s1.pt")]


def test_unknown_row_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        score.main(["--rows", "learned"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("ha2018_score.py: error: --rows: learned unknown")

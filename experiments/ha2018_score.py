"""Ha (2018)'s score for this walker's policies: the mean return of 100 episodes of the
deterministic policy on Gymnasium's course (`envs.GYMNASIUM_COURSE`), on terrains that took no
part in choosing the policy (`HELD_OUT_SEEDS`, disjoint from every seed the trainings, their
evaluations during training and the design search's stages use: tests/test_ha2018_score.py).

Each row of the table is a recipe (one or more training seeds of one policy) at one body. A
row's policies are played with run.py's own evaluation (`load_policy`, `play`: a fresh walker
per episode, the actor's mean action), each policy's episodes shared among the machine's cores.
Each (policy, its frames, body, terrains) is kept as one JSON line in OUT/episodes.jsonl, so a
rerun skips what is scored and a policy still in training is scored again once it has moved on.
Then OUT/scores.json holds per seed the mean, fall and finish rates, over seeds the mean with a
95% interval clustered by training seed, and for rows on the same terrains with as many seeds
a paired difference (`analysis.stats`); OUT/final.json holds, per shipped recipe, its `design`
(run.py's flags, course included) and its `policies`, for anyone to score on terrains of their
own.

    python experiments/ha2018_score.py                       # every row, into docs/ha2018
    python experiments/ha2018_score.py --rows leg_34_trained --episodes 5 --out /tmp/ha
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from analysis.stats import Estimate, clustered_mean, paired_clustered_difference  # noqa: E402
from common.checkpoint import atomic_write_bytes, load_checkpoint  # noqa: E402
from common.errors import UsageError  # noqa: E402
from common.study_files import StudyFiles  # noqa: E402
from designsearch.space import leg_area  # noqa: E402

HELD_OUT_SEEDS = range(900_000, 900_100)
"""The terrains that score: Ha's 100 episodes. Outside the design search's stage seeds
(--seed + [0, 400,000), --seed 1000 in experiments/ha2018_search.sh)."""
HA_TABLE = {"original": "347", "learned": "359", "small_legs": "323 \u00b1 68",
            "episodes": "~15M"}
"""Ha (2018)'s numbers, mean over 100 episodes (\u00b1 standard deviation)."""
SMALL_LEGS_AREA = 0.08
"""Ha's small-legs body: 8% of the original leg area."""
SEGMENTS = ("thigh_length", "shin_length", "thigh_width", "shin_width")
"""The order of `envs.WalkerDesign.leg`'s values, as per-leg flag suffixes."""


def small_legs_design() -> dict[str, float]:
    """Every length and width of both legs scaled by sqrt(8%): Ha's area, Gymnasium's
    proportions, and inside the supported bounds (the lengths stay above 8.5)."""
    scale = math.sqrt(SMALL_LEGS_AREA)
    original = envs.WalkerDesign.from_parameters(envs.DESIGN_DEFAULTS)
    return {f"{side}_{segment}": round(value * scale, 2)
            for side in ("left", "right")
            for segment, value in zip(SEGMENTS, original.leg(side), strict=True)}


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    policies: tuple[str, ...]
    """Policy names (trained_models/NAME.pt), one per training seed."""
    design: dict[str, float] = field(default_factory=dict)
    """Design flags beyond Gymnasium's course; none: the original body."""
    finished_only: bool = False
    """Score only the studies that have spent their budget (training seeds of one recipe)."""


ROWS = (
    Row("original", "original body, PPO from scratch on Gymnasium's course",
        tuple(f"ha_original_s{seed}" for seed in range(1, 6)), finished_only=True),
    Row("leg_34_trained", "original body, leg_34_trained zero-shot (trained on the default "
        "course)", ("leg_34_trained",)),
    Row("ha_design_original", "original body, ha_design zero-shot (in training)", ("ha_design",)),
    Row("ha_design_small_legs", "small legs (8% area), ha_design zero-shot (in training)",
        ("ha_design",), small_legs_design()),
)
PAIRS = (("original", "leg_34_trained"), ("ha_design_small_legs", "ha_design_original"))
"""Rows compared on the same terrains (a paired difference when their seed counts agree)."""
SHIPPED = {"original": "original"}
"""final.json's recipes: its key -> the row it ships (`learned` joins after the search)."""


def course_flags() -> dict[str, float]:
    return dict(envs.GYMNASIUM_COURSE)


def run_flags(policy: Path, design: dict[str, float], episodes: int) -> list[str]:
    values = {**course_flags(), **design}
    return [f"--initial_model={policy}", f"--eval_episodes={episodes}", "--quiet=true",
            *(f"--{name}={value:g}" for name, value in values.items())]


def play_share(task: tuple[str, dict[str, float], list[int]]) -> list[dict[str, Any]]:
    """Some of one policy's episodes (their seeds), in a worker process; as run.py plays them."""
    from common.checkpoint import design_inputs_of
    from common.config import parse_config
    from evaluation.evaluate import load_policy, play

    policy, design, seeds = task
    config = parse_config(run_flags(Path(policy), design, len(seeds)))
    model, checkpoint, _ = load_policy(config)
    return [result.as_dict() for result in play(config, model, len(seeds), seeds=seeds,
                                                design_inputs=design_inputs_of(checkpoint))]


# ----- which policies, and what their training spent ----------------------------------------

def study_finished(files: StudyFiles) -> bool:
    """The study's results exist and its resume checkpoint has spent its budget."""
    if not (files.results.exists() and files.last.exists()):
        return False
    last = load_checkpoint(files.last)
    return last.get("frames") == (last.get("config") or {}).get("total_frames")


def training_spent(files: StudyFiles, checkpoint: dict[str, Any]) -> dict[str, int | None]:
    """Frames and episodes the study spent so far: the later of its resume checkpoint's and
    the policy's frames (a study in training may have saved a new best policy first) and its
    episodes CSV's rows (None: not shipped with the policy)."""
    frames = [checkpoint.get("frames") or 0]
    if files.last.exists():
        frames.append(load_checkpoint(files.last).get("frames") or 0)
    episodes = None
    if files.csv.exists():
        with files.csv.open() as handle:
            episodes = sum(1 for _ in handle) - 1
    return {"frames": max(frames), "episodes": episodes}


def row_policies(row: Row, models_dir: Path, results_dir: Path) -> list[StudyFiles]:
    studies = [StudyFiles(models_dir, results_dir, name) for name in row.policies]
    return [files for files in studies
            if files.best.exists() and (not row.finished_only or study_finished(files))]


# ----- scoring, cached per policy -----------------------------------------------------------

def cache_key(files: StudyFiles, checkpoint: dict[str, Any], design: dict[str, float],
              seeds: Sequence[int]) -> dict[str, Any]:
    return {"policy": files.save_name, "policy_frames": checkpoint.get("frames"),
            "design": {**course_flags(), **design}, "seeds": [seeds[0], len(seeds)]}


def read_cache(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score_policy(files: StudyFiles, design: dict[str, float], seeds: list[int],
                 processes: int) -> list[dict[str, Any]]:
    """The policy's episodes on `seeds`, a contiguous share per process, in seed order."""
    bounds = np.linspace(0, len(seeds), processes + 1).round().astype(int)
    tasks = [(str(files.best), design, seeds[start:stop])
             for start, stop in zip(bounds[:-1], bounds[1:], strict=True) if stop > start]
    with get_context("spawn").Pool(len(tasks)) as pool:
        return [episode for share in pool.map(play_share, tasks) for episode in share]


def scored_row(row: Row, studies: list[StudyFiles], seeds: list[int], cache: Path,
               processes: int, score: bool) -> list[dict[str, Any]]:
    """One entry per policy of the row: its cache line, scored first if the cache lacks it
    and `score` (else left out)."""
    entries = []
    for files in studies:
        checkpoint = load_checkpoint(files.best)
        key = cache_key(files, checkpoint, row.design, seeds)
        entry = next((line for line in read_cache(cache) if line["key"] == key), None)
        if entry is None and not score:
            continue
        if entry is None:
            print(f"{row.key}: scoring {files.save_name} ({checkpoint.get('frames'):,} frames) "
                  f"on {len(seeds)} held-out terrains", flush=True)
            entry = {"key": key, "training": training_spent(files, checkpoint),
                     "episodes": score_policy(files, row.design, seeds, processes)}
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("a") as handle:  # one line per policy: a cut run loses one policy
                handle.write(json.dumps(entry) + "\n")
        entries.append({**entry, "path": str(files.best)})
    return entries


# ----- the statistics -------------------------------------------------------------------------

def returns_matrix(entries: list[dict[str, Any]]) -> np.ndarray:
    """Training seeds x terrains."""
    return np.array([[episode["return"] for episode in entry["episodes"]] for entry in entries])


def rate(entry: dict[str, Any], outcome: str) -> float:
    return float(np.mean([episode["outcome"] == outcome for episode in entry["episodes"]]))


def as_dict(estimate: Estimate) -> dict[str, Any]:
    interval = [estimate.low, estimate.high] if estimate.has_interval else None
    return {"value": estimate.value, "ci95": interval, "seeds": estimate.n}


def per_seed(entry: dict[str, Any]) -> dict[str, Any]:
    returns = [episode["return"] for episode in entry["episodes"]]
    return {"policy": entry["key"]["policy"], "path": entry["path"],
            "policy_frames": entry["key"]["policy_frames"],
            "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
            "fall_rate": rate(entry, "fell"), "finish_rate": rate(entry, "finished"),
            "training": entry["training"]}


def row_summary(row: Row, entries: list[dict[str, Any]]) -> dict[str, Any]:
    seeds = [per_seed(entry) for entry in entries]
    scored = sum(len(entry["episodes"]) for entry in entries)
    return {"label": row.label, "design": {**course_flags(), **row.design},
            "leg_area_fraction": leg_area(row.design) / leg_area({}),
            "per_seed": seeds,
            "mean_return": as_dict(clustered_mean(returns_matrix(entries), row.key)),
            "fall_rate": float(np.mean([seed["fall_rate"] for seed in seeds])),
            "finish_rate": float(np.mean([seed["finish_rate"] for seed in seeds])),
            "training_frames": total(seed["training"]["frames"] for seed in seeds),
            "training_episodes": total(seed["training"]["episodes"] for seed in seeds),
            "scoring_episodes": scored}


def total(values: Any) -> int | None:
    """Their sum; None when any is unknown."""
    values = list(values)
    return None if any(value is None for value in values) else int(sum(values))


def paired(a: str, b: str, entries: dict[str, list[dict[str, Any]]]) -> dict[str, Any] | None:
    """mean(a) - mean(b) on the same terrains, seed i of one paired with seed i of the other."""
    if not (entries.get(a) and entries.get(b)):
        return None
    comparison: dict[str, Any] = {"a": a, "b": b}
    if len(entries[a]) != len(entries[b]):
        comparison["not_paired"] = (f"{len(entries[a])} and {len(entries[b])} training seeds: "
                                    f"seeds pair only when the counts agree")
        return comparison
    estimate = paired_clustered_difference(returns_matrix(entries[a]), returns_matrix(entries[b]),
                                           f"{a}-{b}")
    return {**comparison, "difference": as_dict(estimate)}


# ----- the outputs ----------------------------------------------------------------------------

def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def final_recipes(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {name: {"design": rows[key]["design"],
                   "policies": [seed["path"] for seed in rows[key]["per_seed"]]}
            for name, key in SHIPPED.items() if key in rows}


def interval_text(estimate: dict[str, Any]) -> str:
    if estimate["ci95"] is None:
        return f"{estimate['value']:.1f} (no interval: {estimate['seeds']} seed)"
    low, high = estimate["ci95"]
    return f"{estimate['value']:.1f} [{low:.1f}, {high:.1f}]"


def print_table(rows: dict[str, dict[str, Any]], comparisons: list[dict[str, Any]]) -> None:
    for key, row in rows.items():
        print(f"{key}: {row['label']}")
        for seed in row["per_seed"]:
            print(f"  {seed['policy']} ({seed['policy_frames']:,} frames): "
                  f"{seed['mean_return']:.1f}, falls {seed['fall_rate']:.0%}, "
                  f"finished {seed['finish_rate']:.0%}")
        print(f"  mean over {len(row['per_seed'])} seed(s): "
              f"{interval_text(row['mean_return'])}, falls {row['fall_rate']:.0%}, "
              f"finished {row['finish_rate']:.0%}, leg area "
              f"{row['leg_area_fraction']:.1%} of the original")
    for comparison in comparisons:
        detail = comparison.get("not_paired") or interval_text(comparison["difference"])
        print(f"{comparison['a']} - {comparison['b']}: {detail}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ha2018_score.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(row.key for row in ROWS),
                        help="comma-separated rows to score (the others: reported from the cache)")
    parser.add_argument("--episodes", type=int, default=len(HELD_OUT_SEEDS),
                        help=f"held-out terrains per policy, 1 to {len(HELD_OUT_SEEDS)}")
    parser.add_argument("--out", type=Path, default=Path("docs/ha2018"))
    parser.add_argument("--models_dir", type=Path, default=Path("trained_models"))
    parser.add_argument("--results_dir", type=Path, default=Path("results"))
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    known = {row.key for row in ROWS}
    unknown = [key for key in args.rows.split(",") if key not in known]
    if unknown:
        parser.error(f"--rows: {', '.join(unknown)} unknown; allowed: {', '.join(sorted(known))}")
    if not 1 <= args.episodes <= len(HELD_OUT_SEEDS):
        parser.error(f"--episodes: must be in [1, {len(HELD_OUT_SEEDS)}]")
    if args.processes < 1:
        parser.error("--processes: must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seeds = list(HELD_OUT_SEEDS[:args.episodes])
    chosen = args.rows.split(",")
    try:
        studies = {row.key: row_policies(row, args.models_dir, args.results_dir) for row in ROWS}
        entries = {row.key: scored_row(row, studies[row.key], seeds, args.out / "episodes.jsonl",
                                       args.processes, row.key in chosen) for row in ROWS}
    except UsageError as error:
        print(f"ha2018_score.py: {error}", file=sys.stderr)
        return 2
    rows = {row.key: row_summary(row, entries[row.key]) for row in ROWS if entries[row.key]}
    comparisons = [comparison for a, b in PAIRS if (comparison := paired(a, b, entries))]
    write_json(args.out / "scores.json", {
        "terrain_seeds": [seeds[0], seeds[-1]], "episodes_per_policy": len(seeds),
        "ha2018": HA_TABLE, "rows": rows, "paired_differences": comparisons})
    write_json(args.out / "final.json", final_recipes(rows))
    print_table(rows, comparisons)
    return 0


if __name__ == "__main__":
    sys.exit(main())

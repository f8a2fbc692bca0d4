"""Deterministic evaluation of policies over the design box of docs/universal_design.md.

The designs: the box's 16 corners and 40 bodies drawn uniformly from it (seeded), plus, for
the picture, a thigh x shin grid at three torques. Each design is scored by `--episodes`
deterministic episodes with seeds 1000, 1001, ... (run.py --eval_episodes's protocol, in-process),
designs spread over the machine's cores. One JSON line per (policy, design) goes to `--out`,
appended, so an interrupted run resumes where it stopped; `--report` writes the tables and the
picture from it.

    python experiments/evaluate_design_box.py --policies universal_design,leg_34_trained \
        --out docs/data/universal_design_box.jsonl --report docs/universal_design
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BOX = {"thigh_length": (24.0, 46.0), "shin_length": (24.0, 46.0), "leg_width": (5.0, 11.0),
       "motor_torque": (60.0, 120.0)}
"""The box the design-space policy must walk (issue 24)."""
RANDOM_DESIGNS = 40
DESIGN_SEED = 2026
"""Seeds the 40 random designs: the same designs for every policy and every run."""
EPISODE_SEED = 1000
GRID_SEGMENTS = (24.0, 29.5, 35.0, 40.5, 46.0)
GRID_TORQUES = (60.0, 90.0, 120.0)
GRID_EPISODES = 10


def box_designs() -> list[tuple[str, dict[str, float]]]:
    """(kind, design): the 16 corners, then the random designs."""
    corners = [("corner", dict(zip(BOX, values, strict=True)))
               for values in itertools.product(*BOX.values())]
    rng = np.random.default_rng(DESIGN_SEED)
    drawn = [("random", {name: round(float(rng.uniform(low, high)), 2)
                         for name, (low, high) in BOX.items()})
             for _ in range(RANDOM_DESIGNS)]
    return corners + drawn


def grid_designs() -> list[tuple[str, dict[str, float]]]:
    """Thigh x shin at width 8 and three torques, for the heat maps."""
    return [("grid", {"thigh_length": thigh, "shin_length": shin, "leg_width": 8.0,
                      "motor_torque": torque})
            for torque in GRID_TORQUES for thigh in GRID_SEGMENTS for shin in GRID_SEGMENTS]


def design_key(design: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in design.items())


def evaluate_one(task: tuple[str, str, dict[str, float], int]) -> dict:
    """Score one policy on one design; runs in a worker process."""
    from evaluation.evaluate import load_policy, play, summarize
    from study.config import parse_config
    from transfer.loading import design_inputs_of

    policy_name, kind, design, episodes = task
    flags = [f"--initial_model={policy_name}", f"--eval_episodes={episodes}",
             f"--seed={EPISODE_SEED}", *(f"--{name}={value:g}" for name, value in design.items())]
    config = parse_config(flags)
    policy, checkpoint, _ = load_policy(config)
    results = list(play(config, policy, episodes, design_inputs=design_inputs_of(checkpoint)))
    finished = [r.length for r in results if r.outcome == "finished"]
    return {"policy": policy_name, "kind": kind, "design": design,
            "returns": [r.episode_return for r in results],
            "outcomes": [r.outcome for r in results],
            "lengths": [r.length for r in results],
            "finish_rate": len(finished) / len(results),
            "steps_to_finish": float(np.mean(finished)) if finished else None,
            **summarize(results)}


def done_keys(out: Path) -> set[tuple[str, str, str]]:
    if not out.exists():
        return set()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {(row["policy"], row["kind"], design_key(row["design"])) for row in rows}


def run(policies: list[str], out: Path, episodes: int, with_grid: bool, processes: int) -> None:
    designs = box_designs() + (grid_designs() if with_grid else [])
    done = done_keys(out)
    tasks = [(policy, kind, design, GRID_EPISODES if kind == "grid" else episodes)
             for policy in policies for kind, design in designs
             if (policy, kind, design_key(design)) not in done]
    print(f"{len(tasks)} evaluations to run ({len(done)} already in {out})", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with get_context("spawn").Pool(processes) as pool, out.open("a") as file:
        for count, row in enumerate(pool.imap_unordered(evaluate_one, tasks), start=1):
            file.write(json.dumps(row) + "\n")
            file.flush()
            print(f"[{count}/{len(tasks)}] {row['policy']} {row['kind']} "
                  f"{design_key(row['design'])}: {row['mean_return']:.0f}, falls "
                  f"{row['fall_rate']:.0%}, finished {row['finish_rate']:.0%}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", required=True, help="comma-separated policy names")
    parser.add_argument("--out", type=Path, default=Path("docs/data/universal_design_box.jsonl"))
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--grid", action="store_true", help="also the heat maps' grid")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    run(args.policies.split(","), args.out, args.episodes, args.grid, args.processes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

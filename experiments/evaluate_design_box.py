"""Deterministic evaluation of policies over the design box of docs/universal_design.md.

The designs: the box's 16 corners and 40 bodies drawn uniformly from it (seeded), equal-segment
legs 24, 26, ..., 46 at Gymnasium's width and torque, and, for the picture, a thigh x shin grid
at three torques. Each design is scored by `--episodes`
deterministic episodes with seeds 1000, 1001, ... (run.py --eval_episodes's protocol, in-process),
designs spread over the machine's cores. One JSON line per (policy, design) goes to `--out`,
appended, so an interrupted run resumes where it stopped; `--report PREFIX` then writes the
table (PREFIX_box.md) and the heat maps (PREFIX_heatmap.png) from it.

    python experiments/evaluate_design_box.py --policies universal_design,leg_34_trained --grid
    python experiments/evaluate_design_box.py --policies universal_design,leg_34_trained \
        --report docs/universal_design
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
LEG_LENGTHS = range(24, 47, 2)


def box_designs() -> list[tuple[str, dict[str, float]]]:
    """(kind, design): the 16 corners, then the random designs."""
    corners = [("corner", dict(zip(BOX, values, strict=True)))
               for values in itertools.product(*BOX.values())]
    rng = np.random.default_rng(DESIGN_SEED)
    drawn = [("random", {name: round(float(rng.uniform(low, high)), 2)
                         for name, (low, high) in BOX.items()})
             for _ in range(RANDOM_DESIGNS)]
    return corners + drawn


def leg_designs() -> list[tuple[str, dict[str, float]]]:
    """Equal segments at Gymnasium's width and torque: the line universal_24_46 was trained on."""
    return [("leg", {"thigh_length": float(leg), "shin_length": float(leg), "leg_width": 8.0,
                     "motor_torque": 80.0}) for leg in LEG_LENGTHS]


def grid_designs() -> list[tuple[str, dict[str, float]]]:
    """Thigh x shin at width 8 and three torques, for the heat maps (of the first policy)."""
    return [("grid", {"thigh_length": thigh, "shin_length": shin, "leg_width": 8.0,
                      "motor_torque": torque})
            for torque in GRID_TORQUES for thigh in GRID_SEGMENTS for shin in GRID_SEGMENTS]


def design_key(design: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in design.items())


def evaluate_one(task: tuple[str, str, dict[str, float], int]) -> dict:
    """Score one policy on one design; runs in a worker process."""
    from common.checkpoint import design_inputs_of
    from common.config import parse_config
    from evaluation.evaluate import load_policy, play, summarize

    policy_name, kind, design, episodes = task
    flags = [f"--initial_model={policy_name}", f"--eval_episodes={episodes}",
             f"--seed={EPISODE_SEED}", *(f"--{name}={value:g}" for name, value in design.items())]
    config = parse_config(flags)
    policy, checkpoint, _ = load_policy(config)
    results = list(play(config, policy, episodes, design_inputs=design_inputs_of(checkpoint)))
    return {"policy": policy_name, "kind": kind, "design": design,
            "returns": [r.episode_return for r in results],
            "outcomes": [r.outcome for r in results],
            "lengths": [r.length for r in results],
            **summarize(results)}


def done_keys(out: Path) -> set[tuple[str, str, str]]:
    if not out.exists():
        return set()
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return {(row["policy"], row["kind"], design_key(row["design"])) for row in rows}


def run(policies: list[str], out: Path, episodes: int, with_grid: bool, processes: int) -> None:
    done = done_keys(out)
    tasks = [(policy, kind, design, GRID_EPISODES if kind == "grid" else episodes)
             for rank, policy in enumerate(policies)
             for kind, design in box_designs() + leg_designs()
             + (grid_designs() if with_grid and rank == 0 else [])
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


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def mean_interval(returns: list[float]) -> str:
    """Mean with its 95% percentile-bootstrap interval over episodes (analysis.stats)."""
    from analysis.stats import Bootstrap

    estimate = Bootstrap().mean(np.array(returns), "episodes")
    return f"{estimate.value:.0f} [{estimate.low:.0f}, {estimate.high:.0f}]"


def box_table(rows: list[dict], policies: list[str]) -> str:
    """One line per box design: each policy's mean [95% interval], falls, finishes."""
    by_design: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        if row["kind"] != "grid":
            by_design.setdefault((row["kind"], design_key(row["design"])), {})[row["policy"]] = row
    header = ["kind", "thigh", "shin", "width", "torque"]
    for policy in policies:
        header += [f"{policy} mean [95% CI]", "falls", "finished", "steps to finish"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, design in box_designs_keys():
        cells = by_design.get((kind, design), {})
        values = dict(pair.split("=") for pair in design.split(","))
        line = [kind, *(values[name] for name in BOX)]
        for policy in policies:
            row = cells.get(policy)
            if row is None:
                line += ["-", "-", "-", "-"]
                continue
            steps = row["mean_steps_to_finish"]
            line += [mean_interval(row["returns"]), f"{row['fall_rate']:.0%}",
                     f"{row['finish_rate']:.0%}", "-" if steps is None else f"{steps:.0f}"]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def box_designs_keys() -> list[tuple[str, str]]:
    return [(kind, design_key(design)) for kind, design in box_designs() + leg_designs()]


def goal_summary(rows: list[dict], policy: str) -> str:
    """Issue 24's goal for `policy`: >= 300 at >= 90% of random designs, >= 250 at all of them,
    >= 200 at every corner, falls <= 20% on average."""
    mine = [row for row in rows if row["policy"] == policy and row["kind"] in ("corner", "random")]
    random = [row["mean_return"] for row in mine if row["kind"] == "random"]
    corners = [row["mean_return"] for row in mine if row["kind"] == "corner"]
    falls = [row["fall_rate"] for row in mine]
    finish = [row["finish_rate"] for row in mine]
    if not random or not corners:
        return f"{policy}: not evaluated"
    return (f"{policy}: random designs >= 300 at {np.mean(np.array(random) >= 300):.0%} "
            f"(goal 90%), >= 250 at {np.mean(np.array(random) >= 250):.0%} (goal 100%), "
            f"lowest {min(random):.0f}; corners >= 200 at {np.mean(np.array(corners) >= 200):.0%}"
            f" (goal 100%), lowest {min(corners):.0f}; falls {np.mean(falls):.0%} of episodes on "
            f"average (goal <= 20%); finished {np.mean(finish):.0%}")


def heatmaps(rows: list[dict], policy: str, path: Path) -> None:
    """Mean return over thigh x shin at width 8, one panel per torque."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = {(row["design"]["motor_torque"], row["design"]["thigh_length"],
             row["design"]["shin_length"]): row["mean_return"]
            for row in rows if row["policy"] == policy and row["kind"] == "grid"}
    figure, axes = plt.subplots(1, len(GRID_TORQUES), figsize=(4 * len(GRID_TORQUES), 3.6),
                                constrained_layout=True)
    for axis, torque in zip(axes, GRID_TORQUES, strict=True):
        values = np.array([[grid.get((torque, thigh, shin), np.nan) for thigh in GRID_SEGMENTS]
                           for shin in GRID_SEGMENTS])
        image = axis.imshow(values, origin="lower", cmap="viridis", vmin=-100, vmax=700)
        axis.set_xticks(range(len(GRID_SEGMENTS)), [f"{v:g}" for v in GRID_SEGMENTS])
        axis.set_yticks(range(len(GRID_SEGMENTS)), [f"{v:g}" for v in GRID_SEGMENTS])
        axis.set_xlabel("thigh length")
        axis.set_ylabel("shin length")
        axis.set_title(f"motor torque {torque:g}, leg width 8")
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                axis.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8,
                          color="white" if value < 350 else "black")
    figure.colorbar(image, ax=axes, label=f"mean return ({GRID_EPISODES} episodes)")
    figure.suptitle(f"{policy}: deterministic mean return over the box")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def report(out: Path, policies: list[str], prefix: Path) -> None:
    rows = read_rows(out)
    table = box_table(rows, policies)
    goals = "\n".join(f"- {goal_summary(rows, policy)}" for policy in policies)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}_box.md").write_text(
        f"<!-- written by experiments/evaluate_design_box.py from {out} -->\n\n"
        f"{goals}\n\n{table}\n")
    if any(row["kind"] == "grid" for row in rows):
        heatmaps(rows, policies[0], Path(f"{prefix}_heatmap.png"))
    print(goals)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", required=True, help="comma-separated policy names")
    parser.add_argument("--out", type=Path, default=Path("docs/data/universal_design_box.jsonl"))
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--grid", action="store_true", help="also the heat maps' grid")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--report", type=Path, default=None,
                        help="instead of evaluating, write PREFIX_box.md and "
                             "PREFIX_heatmap.png from what --out holds")
    args = parser.parse_args()
    policies = args.policies.split(",")
    if args.report:
        report(args.out, policies, args.report)
    else:
        run(policies, args.out, args.episodes, args.grid, args.processes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

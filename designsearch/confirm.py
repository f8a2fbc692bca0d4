"""`--confirm=k`: does the screening ranking survive fine-tuning?

The top k designs and the default body (the baseline) are each fine-tuned from the policy by
run.py, `--confirm_seeds` seeds each, `--confirm_frames` frames, under the low-noise schedule
that suits fine-tuning from a universal policy (exploration noise 0.2 falling to 0.1 over the
first 60%: docs/results.md, "Fine-tuning from universal_24_46"). The runs are one sweep
(`sweeps/`: Ray, skipping finished runs and resuming interrupted ones,
`<NAME>_confirm_manifest.json`). Each
fine-tuned policy is then evaluated on its design with `--confirm_episodes` (>= 30) episodes on
terrains the screening never saw (seeds from `seed + 100000`). The report gives each design's
screening and confirmed scores and Spearman's rank correlation between them.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np

from designsearch.choices import DESIGN_FLAGS
from designsearch.project import (
    Paths,
    Sweep,
    UsageError,
    atomic_write_bytes,
    expand,
    interval95,
    run_sweep,
)
from designsearch.report import ranked
from designsearch.scoring import Course, Job
from designsearch.search import Search, feasible, make_evaluator
from designsearch.space import full_design

CONFIRM_SEED_OFFSET = 100_000
"""Confirmation terrains start here above the screening's, so none is reused."""
FINE_TUNE_SCHEDULE = {"action_std_start": "0.2", "action_std_final": "0.1",
                      "action_std_end": "0.6"}
MIN_CONFIRM_EPISODES = 30


def fine_tune_flags(policy: str, design: dict[str, float | str], frames: int, course: Course,
                    save_name: str | None = None) -> dict[str, str]:
    """run.py's flags of a fine-tuning run on `design` (before --confirm_fixed); with
    `save_name`, a whole command line that design.py checks before the search starts."""
    flags = {"initial_model": policy,
             **{name: value if isinstance(value, str) else f"{value:g}"
                for name, value in design.items()},
             "total_frames": str(frames),
             "terrain_length_scale": f"{course.terrain_length_scale:g}",
             "max_time_steps": str(course.max_time_steps),
             "fall_penalty": f"{course.fall_penalty:g}", **FINE_TUNE_SCHEDULE}
    return {"save_name": save_name, **flags} if save_name else flags


def baseline_design(search: Search) -> dict[str, float]:
    import envs

    body = envs.WalkerDesign.from_parameters(envs.DESIGN_DEFAULTS)
    values = {"leg_length": float(envs.DESIGN_DEFAULTS["leg_length"]),
              "thigh_length": body.thigh_length, "shin_length": body.shin_length,
              "leg_width": body.leg_width, "motor_torque": body.motor_torque}
    return {name: values[name] for name in search.ranges}


def candidates(search: Search, study: Any) -> list[dict[str, Any]]:
    """The top k feasible designs and the baseline: label, searched params, screening score."""
    trials = [t for t in ranked(search, study) if feasible(search, t.user_attrs)]
    chosen = [t for t in trials if not t.user_attrs.get("baseline")][:search.confirm]
    designs = [{"label": f"t{t.number}", "params": t.params, "screening": t.user_attrs}
               for t in chosen]
    baseline = next((t for t in ranked(search, study) if t.user_attrs.get("baseline")), None)
    designs.append({"label": "baseline",
                    "params": baseline.params if baseline else baseline_design(search),
                    "screening": baseline.user_attrs if baseline else None})
    return designs


def fine_tune_sweep(search: Search, designs: list[dict[str, Any]], command: str) -> Sweep:
    seeds = [str(seed) for seed in range(1, search.confirm_seeds + 1)]
    studies = []
    for design in designs:
        flags = {name: f"{value:g}" for name, value in
                 full_design(design["params"], search.fixed).items()}
        fixed = {**fine_tune_flags(str(search.policy_path.resolve()), flags,
                                   search.confirm_frames, search.course),
                 **search.confirm_fixed}
        design["studies"] = expand(f"{search.save_name}_confirm_{design['label']}",
                                   {"seed": seeds}, fixed)
        studies += design["studies"]
    paths = Paths(search.models_dir.resolve(), search.results_dir.resolve(), None)
    return Sweep(f"{search.save_name}_confirm", {"design": [d["label"] for d in designs],
                                                "seed": seeds},
                 {}, paths, 1, None if search.address == "local" else search.address, 1,
                 search.address not in (None, "local"), command, studies)


def confirm(search: Search, study: Any, say, command: str = "") -> str:
    """Fine-tune, re-evaluate, correlate; return the report's Markdown section."""
    designs = candidates(search, study)
    if len(designs) < 2:
        raise UsageError("--confirm: no feasible design to confirm")
    sweep = fine_tune_sweep(search, designs, command)
    say(f"confirming {len(designs) - 1} design(s) and the default body: "
        f"{len(sweep.studies)} fine-tuning runs of {search.confirm_frames:,} frames")
    status = run_sweep(sweep, sys.stdout if not search.quiet else open_null())
    course = Course(search.course.terrain_length_scale, search.course.max_time_steps,
                    search.course.fall_penalty, search.course.seed + CONFIRM_SEED_OFFSET)
    jobs, owners = [], []
    for design in designs:
        design_flags = full_design(design["params"], search.fixed)
        if design["screening"] is None:  # the default body outside the ranges: screen it too
            jobs.append(Job(design_flags, search.episodes, search.course, search.finish_bonus,
                            search.energy_weight, search.policy_name,
                            search.policy_path.read_bytes()))
            owners.append((design, "screening"))
        for record in design["studies"]:
            model = search.models_dir / f"{record.save_name}.pt"
            if not model.exists():
                continue
            jobs.append(Job(design_flags, search.confirm_episodes, course, search.finish_bonus,
                            search.energy_weight, model.stem, model.read_bytes()))
            owners.append((design, "confirmed"))
    evaluator = make_evaluator(search)
    try:
        for (design, kind), summary in zip(owners, evaluator.imap(jobs), strict=True):
            if kind == "screening":
                design["screening"] = summary
            else:
                design.setdefault("confirmed_runs", []).append(summary)
    finally:
        evaluator.close()
    rows = []
    for design in designs:
        runs = design.get("confirmed_runs", [])
        scores = [score for run in runs for score in run["scores"]]
        rows.append({"label": design["label"], "params": design["params"],
                     "screening_score": design["screening"]["score"],
                     "confirmed_runs": len(runs),
                     "confirmed_score": float(np.mean(scores)) if scores else None,
                     "confirmed_ci": list(interval95(scores)) if scores else None,
                     "confirmed_return": float(np.mean([r["mean_return"] for r in runs]))
                     if runs else None,
                     "confirmed_fall_rate": float(np.mean([r["fall_rate"] for r in runs]))
                     if runs else None})
    rho, p_value = spearman([r["screening_score"] for r in rows],
                            [r["confirmed_score"] for r in rows])
    result = {"frames": search.confirm_frames, "seeds": search.confirm_seeds,
              "episodes": search.confirm_episodes, "sweep_status": status,
              "spearman": rho, "p_value": p_value, "designs": rows}
    atomic_write_bytes(search.results_dir / f"{search.save_name}_confirm.json",
                       (json.dumps(result, indent=1) + "\n").encode())
    return confirm_markdown(search, result)


def spearman(screening: list[float], confirmed: list[float | None]) -> tuple[float, float]:
    pairs = [(s, c) for s, c in zip(screening, confirmed, strict=True) if c is not None]
    if len(pairs) < 3 or len({s for s, _ in pairs}) < 2 or len({c for _, c in pairs}) < 2:
        return math.nan, math.nan
    from scipy.stats import spearmanr

    outcome = spearmanr([s for s, _ in pairs], [c for _, c in pairs])
    return float(outcome.statistic), float(outcome.pvalue)


def confirm_markdown(search: Search, result: dict[str, Any]) -> str:
    names = [name for name in DESIGN_FLAGS if name in search.ranges]
    lines = [f"Each design fine-tuned from `{search.policy_name}` for {result['frames']:,} "
             f"frames with {result['seeds']} seeds, then {result['episodes']} deterministic "
             f"episodes per seed on new terrains (seeds from "
             f"{search.course.seed + CONFIRM_SEED_OFFSET}).", "",
             "| design | " + " | ".join(names) + " | screening score | confirmed score "
             "[95% CI] | confirmed return | confirmed falls | runs |",
             "|" + "---|" * (len(names) + 6)]
    for row in result["designs"]:
        confirmed = ("-" if row["confirmed_score"] is None else
                     f"{row['confirmed_score']:.1f} [{row['confirmed_ci'][0]:.1f}, "
                     f"{row['confirmed_ci'][1]:.1f}]")
        ret = "-" if row["confirmed_return"] is None else f"{row['confirmed_return']:.1f}"
        falls = ("-" if row["confirmed_fall_rate"] is None
                 else f"{100 * row['confirmed_fall_rate']:.0f}%")
        lines.append(f"| {row['label']} | " + " | ".join(f"{row['params'][n]:.2f}"
                                                       for n in names)
                     + f" | {row['screening_score']:.1f} | {confirmed} | {ret} | {falls} | "
                       f"{row['confirmed_runs']} |")
    rho = result["spearman"]
    lines += ["", "Spearman rank correlation, screening vs confirmed: "
                  + ("undefined (fewer than 3 designs, or ties throughout)" if math.isnan(rho)
                     else f"{rho:.2f} (p = {result['p_value']:.2g}, "
                          f"{len(result['designs'])} designs)")]
    return "\n".join(lines)


def open_null():
    import os

    return open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)

"""What a search reports: the ranked table (printed and in `<results_dir>/<NAME>_design.md`),
every trial as JSON (`<NAME>_design.json`), and two figures: score against each searched
parameter (`<NAME>_design_params.png`) and the search's progress (`<NAME>_design_progress.png`).
Every file is written atomically."""

from __future__ import annotations

import io
import json
from typing import Any

from designsearch.project import atomic_write_bytes
from designsearch.search import PARETO_OBJECTIVES, Search, completed, feasible, objective_value

TABLE_ROWS = 20
"""Rows of the printed table; the Markdown file has every trial."""


def ranked(search: Search, study: Any) -> list[Any]:
    """Completed trials, best first: feasible before infeasible (min_leg_area), then by the
    objective, ties by score."""
    trials = completed(study)
    sign = 1.0 if search.direction == "minimize" else -1.0
    return sorted(trials, key=lambda t: (not feasible(search, t.user_attrs),
                                         sign * objective_value(search, t.user_attrs),
                                         -t.user_attrs["score"], t.number))


def interval(values: list[float]) -> str:
    return f"[{values[0]:.1f}, {values[1]:.1f}]"


def table(search: Search, trials: list[Any], limit: int | None = None) -> str:
    names = list(search.ranges)
    head = ["rank", "trial", *names, "score [95% CI]", "return [95% CI]", "falls", "finished",
            "steps to finish", "energy", "leg area"]
    if search.objective == "energy":
        head.append("score - energy charge")
    if search.objective == "min_leg_area" or search.max_fall_rate < 1:
        head.append("feasible")
    rows = []
    for rank, trial in enumerate(trials[:limit], 1):
        a = trial.user_attrs
        steps = "-" if a["steps_to_finish"] is None else f"{a['steps_to_finish']:.0f}"
        row = [str(rank), str(trial.number) + (" (default body)" if a.get("baseline") else ""),
               *(f"{trial.params[name]:.2f}" for name in names),
               f"{a['score']:.1f} {interval(a['score_ci'])}",
               f"{a['mean_return']:.1f} {interval(a['return_ci'])}",
               f"{100 * a['fall_rate']:.0f}%", f"{100 * a['finish_rate']:.0f}%", steps,
               f"{a['energy']:.0f}", f"{a['leg_area']:.0f}"]
        if search.objective == "energy":
            row.append(f"{a['energy_score']:.1f} {interval(a['energy_score_ci'])}")
        if search.objective == "min_leg_area" or search.max_fall_rate < 1:
            row.append("yes" if feasible(search, a) else "no")
        rows.append(row)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def best_line(search: Search, trials: list[Any]) -> str:
    if not trials or not feasible(search, trials[0].user_attrs):
        return "best: none" + (" (no design met the constraints)" if trials
                               else " (no trial completed)")
    best = trials[0]
    parts = [f"{name}={best.params[name]:.2f}" for name in search.ranges]
    if search.objective == "min_leg_area":
        parts.append(f"leg_area={best.user_attrs['leg_area']:.1f}")
    if search.objective == "energy":
        parts.append(f"energy={best.user_attrs['energy']:.0f}")
    parts.append(f"score={best.user_attrs['score']:.1f}")
    return "best: " + " ".join(parts)


def describe_search(search: Search) -> str:
    ranges = ", ".join(f"{name} {low:g}:{high:g}" for name, (low, high) in search.ranges.items())
    fixed = ", ".join(f"{name} {value:g}" for name, value in search.fixed.items()) or "none"
    course = search.course
    objective = {"score": "maximise the score",
                 "energy": f"maximise score - {search.energy_weight:g} x energy",
                 "min_leg_area": f"the smallest leg area with a mean return >= "
                                 f"{search.min_score:g}",
                 "pareto": "the Pareto front of score (max), leg area (min) and energy (min)"
                 }[search.objective]
    if search.max_fall_rate < 1:
        objective += f", falling in at most {100 * search.max_fall_rate:g}% of episodes"
    return (f"- policy: `{search.policy_name}` ({search.policy_path})\n"
            f"- searched: {ranges}; fixed: {fixed}\n"
            f"- objective: {objective}; sampler: {search.sampler.upper()}\n"
            f"- each candidate: {search.episodes} deterministic episodes on terrain seeds "
            f"{course.seed}-{course.seed + search.episodes - 1} (the same for every candidate), "
            f"terrain_length_scale {course.terrain_length_scale:g}, max_time_steps "
            f"{course.max_time_steps}, fall_penalty {course.fall_penalty:g}\n"
            f"- score = return + {search.finish_bonus:g} x (1 - steps / max_time_steps) for an "
            f"episode that finishes; 95% Student-t intervals over episodes\n"
            f"- storage: `{search.storage_url}`, study `{search.save_name}`")


def write_reports(search: Search, study: Any, stages: str = "") -> list[str]:
    """Write the Markdown, JSON and figures; return their paths."""
    trials = ranked(search, study)
    stem = search.results_dir / f"{search.save_name}_design"
    markdown = (f"# Design search `{search.save_name}`\n\n{describe_search(search)}\n\n"
                f"{len(trials)} candidates evaluated, best first:\n\n{table(search, trials)}\n\n"
                f"`{best_line(search, trials)}`\n\n"
                f"![score against each parameter]({stem.name}_params.png)\n"
                f"![progress]({stem.name}_progress.png)\n")
    if search.objective == "pareto":
        markdown += (f"\n## Pareto front (feasible designs no other design beats on every "
                     f"objective)\n\n{table(search, pareto_front(search, study))}\n\n"
                     f"![Pareto front]({stem.name}_pareto.png)\n")
    if stages:
        markdown += f"\n{stages}\n"
    atomic_write_bytes(stem.with_suffix(".md"), markdown.encode())
    rows = [{"rank": rank, "trial": t.number, "params": t.params,
             "value": objective_value(search, t.user_attrs), "values": t.values,
             **t.user_attrs} for rank, t in enumerate(trials, 1)]
    atomic_write_bytes(stem.with_suffix(".json"), (json.dumps(
        {"search": study.user_attrs.get("search"), "storage": search.storage_url,
         "trials": rows}, indent=1) + "\n").encode())
    paths = [str(stem.with_suffix(".md")), str(stem.with_suffix(".json"))]
    if trials:
        paths += write_figures(search, study, trials)
    if trials and search.objective == "pareto":
        paths.append(write_pareto_figure(search, study, trials))
    return paths


def pareto_front(search: Search, study: Any) -> list[Any]:
    """Optuna's Pareto front of the study (feasible trials only, as its constraints say), by
    score."""
    front = [t for t in study.best_trials if feasible(search, t.user_attrs)]
    return sorted(front, key=lambda t: (-t.user_attrs["score"], t.number))


def write_pareto_figure(search: Search, study: Any, trials: list[Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(search, study)
    figure, axis = plt.subplots(figsize=(6, 4))
    points = axis.scatter([t.user_attrs["leg_area"] for t in trials],
                          [t.user_attrs["score"] for t in trials],
                          c=[t.user_attrs["energy"] for t in trials], s=16, cmap="viridis")
    figure.colorbar(points, label="energy per episode")
    axis.scatter([t.user_attrs["leg_area"] for t in front],
                 [t.user_attrs["score"] for t in front], s=80, facecolors="none",
                 edgecolors="tab:red", label="Pareto front")
    axis.set_xlabel("leg area")
    axis.set_ylabel("score")
    axis.legend(fontsize=8)
    axis.set_title(f"{search.save_name}: " + " / ".join(
        f"{name} ({direction[:3]})" for name, direction in PARETO_OBJECTIVES))
    figure.tight_layout()
    return save(figure, search.results_dir / f"{search.save_name}_design_pareto.png")


def write_figures(search: Search, study: Any, trials: list[Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(search.ranges)
    figure, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        xs = [t.params[name] for t in trials]
        ys = [t.user_attrs["score"] for t in trials]
        errors = [[t.user_attrs["score"] - t.user_attrs["score_ci"][0] for t in trials],
                  [t.user_attrs["score_ci"][1] - t.user_attrs["score"] for t in trials]]
        colours = ["tab:blue" if feasible(search, t.user_attrs) else "tab:red" for t in trials]
        axis.errorbar(xs, ys, yerr=errors, fmt="none", ecolor="0.75", zorder=1)
        axis.scatter(xs, ys, c=colours, s=18, zorder=2)
        axis.scatter([trials[0].params[name]], [trials[0].user_attrs["score"]], marker="*",
                     s=160, c="gold", edgecolors="k", zorder=3, label="best")
        axis.set_xlabel(name)
        axis.set_ylabel("score (95% CI)")
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle(f"{search.save_name}: score of each candidate")
    figure.tight_layout()
    paths = [save(figure, search.results_dir / f"{search.save_name}_design_params.png")]

    chronological = sorted(trials, key=lambda t: t.number)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    values = {t.number: objective_value(search, t.user_attrs) for t in chronological}
    axis.scatter(list(values), list(values.values()), s=14, label="trial")
    best, running = None, []
    for t in chronological:
        if feasible(search, t.user_attrs):
            value = values[t.number]
            better = (best is None or (value < best if search.direction == "minimize"
                                       else value > best))
            best = value if better else best
        running.append(best if best is not None else float("nan"))
    axis.step([t.number for t in chronological], running, where="post", c="tab:orange",
              label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel({"score": "score", "energy": "score - energy charge",
                     "min_leg_area": "leg area", "pareto": "score"}[search.objective])
    axis.legend(fontsize=8)
    axis.set_title(f"{search.save_name}: search progress")
    figure.tight_layout()
    paths.append(save(figure, search.results_dir / f"{search.save_name}_design_progress.png"))
    return paths


def save(figure: Any, path: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return str(path)

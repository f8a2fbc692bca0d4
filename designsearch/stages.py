"""The staged search: candidates narrow while the budget per candidate grows, and no stage
measures on the terrains that chose its candidates.

1. screen   TPE over the box, zero-shot, `--episodes` terrains per candidate (the study NAME);
2. rescore  the top K re-scored zero-shot on fresh terrains, EPISODES each (NAME.rescore);
3. finetune the top M fine-tuned with SEEDS training seeds to FRAMES, scored on fresh
            terrains at `--checkpoints` frame budgets (`trial.report(score, frames)`, so the
            dashboard draws each design's curve and the report says whether a longer budget
            reorders them) (NAME.finetune);
4. final    the top N and the baseline body trained equally (new training seeds) and scored on
            held-out terrains; each finalist against the baseline, paired (NAME.final).

Each stage is an Optuna study in the search's storage, its candidates enqueued as trials when it
is created. A stopped stage continues where it stopped (its finished trials, and for a
training stage its finished checkpoints, are kept); a finished stage is not run again.

Seeds (one scheme, written into the report): stage s plays terrain seeds
`--seed + TERRAIN_OFFSET[s]` onwards; the training stages train with their own ranges of seeds.
"""

from __future__ import annotations

import dataclasses
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.stats import Bootstrap, clustered_mean, paired_clustered_difference
from common.config import MAX_TOTAL_FRAMES
from designsearch.choices import MAX_TRIALS
from designsearch.project import StudyFailed, UsageError, atomic_write_bytes
from designsearch.report import ranked
from designsearch.scoring import Job
from designsearch.search import (
    Evaluator,
    Search,
    completed,
    feasible,
    make_evaluator,
    objective_values,
    quiet_optuna,
    raise_interrupted,
    requeue_unfinished,
    run_search,
    set_constraints,
    study_names,
)
from designsearch.space import default_body, default_values, full_design
from designsearch.training import Trainer, TrainingRun

STAGES = ("screen", "rescore", "finetune", "final")
TERRAIN_OFFSET = {"screen": 0, "rescore": 100_000, "finetune": 200_000, "final": 300_000}
"""Each stage's first terrain seed above --seed: the ranges cannot overlap (episodes per stage
are below 100,000)."""
MAX_STAGE_EPISODES = 100_000
TRAINING_SEED_START = {"finetune": 1, "final": 1001}
"""The final stage's training seeds are new: its policies replicate, not reuse, the ones that
chose the finalists."""
MIN_EPISODES = 30
MIN_SEEDS = 5
STAGE_COUNT_BOUNDS = {
    "k": (1, MAX_TRIALS), "m": (1, MAX_TRIALS), "n": (1, MAX_TRIALS),
    "seeds": (MIN_SEEDS, TRAINING_SEED_START["final"] - TRAINING_SEED_START["finetune"]),
    "frames": (1, MAX_TOTAL_FRAMES), "episodes": (MIN_EPISODES, MAX_STAGE_EPISODES - 1)}
"""Each field of a stage flag, bounded before anything runs: more seeds than this would make
the fine-tuning stage's training seeds run into the final stage's."""
PER_SEED_KEYS = ("score", "mean_return", "fall_rate", "finish_rate", "energy", "energy_score",
                 "leg_area", "scores")
"""What a training stage keeps of each trained policy's evaluation."""


@dataclass(frozen=True)
class Stages:
    """The stages after the screen; a count of 0 switches a stage (and those after it) off."""

    rescore: int = 0
    rescore_episodes: int = MIN_EPISODES
    finetune: int = 0
    finetune_seeds: int = MIN_SEEDS
    finetune_frames: int = 0
    finetune_episodes: int = MIN_EPISODES
    checkpoints: int = 1
    final: int = 0
    final_seeds: int = MIN_SEEDS
    final_frames: int = 0
    final_episodes: int = MIN_EPISODES
    baseline: dict[str, float] | None = None
    """Design flags of the body to beat (unset ones: the default body's); None: the default."""

    @property
    def on(self) -> tuple[str, ...]:
        counts = {"rescore": self.rescore, "finetune": self.finetune, "final": self.final}
        return tuple(stage for stage in STAGES[1:] if counts[stage])


def parse_stage(flag: str, text: str, fields: tuple[str, ...]) -> dict[str, int]:
    """'K:EPISODES'-like text -> {field: count}; a one-line UsageError naming the flag."""
    parts = text.split(":")
    try:
        values = [int(float(part)) if float(part).is_integer() else None for part in parts]
    except ValueError:
        values = [None]
    if len(parts) != len(fields) or None in values:
        raise UsageError(f"--{flag}: expected {':'.join(f.upper() for f in fields)} (whole "
                         f"numbers), got {text!r}")
    counts = dict(zip(fields, values, strict=True))
    for name, value in counts.items():
        low, high = STAGE_COUNT_BOUNDS[name]
        if not low <= value <= high:
            raise UsageError(f"--{flag}: {name.upper()} must be in [{low:,}, {high:,}], "
                             f"got {value}")
    return counts


def terrain_seeds(search: Search, stage: str, episodes: int) -> list[int]:
    start = search.course.seed + TERRAIN_OFFSET[stage]
    return list(range(start, start + episodes))


def training_seeds(stage: str, count: int) -> list[int]:
    return list(range(TRAINING_SEED_START[stage], TRAINING_SEED_START[stage] + count))


def stage_search(search: Search, stage: str, episodes: int, trials: int,
                 candidates: tuple[tuple[str, dict[str, float]], ...] = ()) -> Search:
    """The Search of one stage's study: NAME.STAGE, its terrains, its candidates."""
    course = dataclasses.replace(search.course, seed=terrain_seeds(search, stage, 1)[0])
    name = f"{search.save_name}.{stage}"
    return dataclasses.replace(search, save_name=name, storage=search.storage_url,
                               episodes=episodes, trials=trials,
                               course=course, candidates=candidates, overwrite=False,
                               resume=name in study_names(search.storage_url))


def stage_names(search: Search) -> list[str]:
    return [f"{search.save_name}.{stage}" for stage in STAGES[1:]]


def delete_stage_studies(search: Search) -> None:
    """--overwrite: the stages go with the screen they came from."""
    import optuna

    present = set(study_names(search.storage_url))
    for name in stage_names(search):
        if name in present:
            optuna.delete_study(study_name=name, storage=search.storage_url)


def searched(search: Search, trial: Any) -> dict[str, float]:
    return {name: float(trial.params[name]) for name in search.ranges}


def top_designs(search: Search, study: Any, count: int) -> list[Any]:
    """The best `count` feasible trials that are not the baseline, best first."""
    return [t for t in ranked(search, study)
            if feasible(search, t.user_attrs) and not t.user_attrs.get("baseline")][:count]


# ----- zero-shot stage ---------------------------------------------------------------------------

def run_rescore(search: Search, stages: Stages, screen: Any, say: Callable[[str], None],
                evaluators: Callable[[Search], Evaluator]) -> tuple[Any, Search, int | None]:
    chosen = tuple((label_of(t), searched(search, t))
                   for t in top_designs(search, screen, stages.rescore))
    if not chosen:
        raise StudyFailed("rescore: no feasible design left by the screen")
    rescore = stage_search(search, "rescore", stages.rescore_episodes,
                           len(chosen) + (default_body(search.ranges) is not None), chosen)
    study, stopped = run_search(rescore, say, f"stage rescore: the top {len(chosen)} on "
                                f"{stages.rescore_episodes} fresh terrains", evaluators)
    return study, rescore, stopped


def label_of(trial: Any) -> str:
    """A design's name through the stages: its trial number in the screen."""
    return trial.user_attrs.get("label") or f"t{trial.number}"


# ----- training stages ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    label: str
    params: dict[str, float]
    design: dict[str, float]
    """Every design flag of its training runs."""


def budgets(frames: int, checkpoints: int) -> list[int]:
    return [frames * (i + 1) // checkpoints for i in range(checkpoints)]


def open_stage_study(search: Search, stage: str, candidates: list[Candidate],
                     identity: dict[str, Any]) -> Any:
    """The stage's study: created with its candidates enqueued, or loaded; a study of the same
    name made for other candidates or budgets is refused."""
    import optuna

    quiet_optuna()
    name = f"{search.save_name}.{stage}"
    identity = json.loads(json.dumps(identity))
    if name in study_names(search.storage_url):
        study = optuna.load_study(study_name=name, storage=search.storage_url)
        if study.user_attrs.get("stage") != identity:
            raise UsageError(f"--{stage}: the stage {name} in {search.storage_url} was started "
                             f"with other settings or candidates; use the same flags, or "
                             f"--overwrite=true to start the whole search again")
        return study
    study = optuna.create_study(study_name=name, storage=search.storage_url,
                                directions=search.directions)
    study.set_user_attr("stage", identity)
    for candidate in candidates:
        study.enqueue_trial(candidate.params, user_attrs={
            "label": candidate.label, "design": candidate.design,
            "baseline": candidate.label == "baseline"})
    return study


def distributions_of(candidates: list[Candidate], search: Search) -> dict[str, Any]:
    """One range per parameter that holds every candidate (a baseline may lie outside the
    box)."""
    from optuna.distributions import FloatDistribution

    result = {}
    for name, (low, high) in search.ranges.items():
        values = [c.params[name] for c in candidates]
        result[name] = FloatDistribution(min(low, *values), max(high, *values))
    return result


def pooled(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """One design's summary over its training seeds (equal episodes each): the means."""
    summary = {key: float(np.mean([run[key] for run in per_seed]))
               for key in PER_SEED_KEYS if key != "scores"}
    summary["seed_scores"] = [run["score"] for run in per_seed]
    return summary


def evaluate_policies(search: Search, stage: str, runs: list[TrainingRun], episodes: int,
                      trainer: Trainer, evaluator: Evaluator) -> list[dict[str, Any]]:
    course = dataclasses.replace(search.course, seed=terrain_seeds(search, stage, 1)[0])
    jobs = []
    for run in runs:
        name, checkpoint = trainer.policy(stage, run)
        jobs.append(Job(run.design, episodes, course, search.finish_bonus,
                        search.energy_weight, name, checkpoint))
    return [{key: summary[key] for key in PER_SEED_KEYS} for summary in evaluator.imap(jobs)]


def run_trained_stage(search: Search, stage: str, candidates: list[Candidate], seeds: list[int],
                      frames: int, checkpoints: int, episodes: int, trainer: Trainer,
                      evaluators: Callable[[Search], Evaluator], say: Callable[[str], None]
                      ) -> tuple[Any, int | None]:
    """Train every candidate with every seed, score it at each checkpoint; (study, signal that
    stopped it or None)."""
    identity = {"candidates": [dataclasses.asdict(c) for c in candidates], "seeds": seeds,
                "frames": frames, "checkpoints": checkpoints, "episodes": episodes,
                "terrains": terrain_seeds(search, stage, episodes)}
    study = open_stage_study(search, stage, candidates, identity)
    if len(completed(study)) == len(candidates):
        return study, None
    say(f"stage {stage}: {len(candidates)} design(s) x {len(seeds)} seeds, {frames:,} frames "
        f"({checkpoints} checkpoint(s)), {episodes} fresh terrains per policy")
    requeue_unfinished(study)
    from optuna.trial import TrialState

    distributions = distributions_of(candidates, search)
    trials = [study.ask(distributions) for _ in
              study.get_trials(deepcopy=False, states=(TrialState.WAITING,))]
    runs = [TrainingRun(c.label, c.design, seed) for c in candidates for seed in seeds]
    evaluations = dict(study.user_attrs.get("checkpoints", {}))
    evaluator: Evaluator | None = None
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        for budget in budgets(frames, checkpoints):
            if str(budget) not in evaluations:
                status = trainer.train(stage, runs, budget)
                if status >= 128:
                    return study, status - 128
                if status:
                    raise StudyFailed(f"stage {stage}: a training run did not finish (see "
                                      f"{search.save_name}_{stage}_manifest.json in "
                                      f"results_dir)")
                evaluator = evaluator or evaluators(search)
                results = evaluate_policies(search, stage, runs, episodes, trainer, evaluator)
                evaluations[str(budget)] = {c.label: results[i * len(seeds):(i + 1) * len(seeds)]
                                            for i, c in enumerate(candidates)}
                study.set_user_attr("checkpoints", evaluations)
            for trial in trials:
                summary = pooled(evaluations[str(budget)][trial.user_attrs["label"]])
                trial.report(summary["score"], budget)
            say(checkpoint_line(stage, budget, evaluations[str(budget)]))
        final = evaluations[str(frames)]
        for trial in trials:
            summary = pooled(final[trial.user_attrs["label"]])
            for key, value in summary.items():
                trial.set_user_attr(key, value)
            set_constraints(trial, search, summary)
            study.tell(trial, objective_values(search, summary))
    except KeyboardInterrupt as interrupt:
        requeue_unfinished(study)
        return study, getattr(interrupt, "signum", signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if evaluator is not None:
            evaluator.close()
    return study, None


def checkpoint_line(stage: str, frames: int, results: dict[str, list[dict[str, Any]]]) -> str:
    order = sorted(results, key=lambda label: -pooled(results[label])["score"])
    return (f"stage {stage} at {frames:,} frames: "
            + ", ".join(f"{label} {pooled(results[label])['score']:.1f}" for label in order))


def ranking_by_checkpoint(study: Any) -> dict[str, list[str]]:
    """Frames -> the designs' labels, best score first: does a longer budget reorder them?"""
    return {frames: sorted(results, key=lambda label: -pooled(results[label])["score"])
            for frames, results in study.user_attrs.get("checkpoints", {}).items()}


def trained_candidates(search: Search, trials: list[Any]) -> list[Candidate]:
    return [Candidate(label_of(t), searched(search, t),
                      full_design(searched(search, t), search.fixed)) for t in trials]


def baseline_candidate(search: Search, stages: Stages) -> Candidate:
    given = stages.baseline or {}
    design = {**search.fixed, **default_values(search.ranges), **given}
    return Candidate("baseline", {name: design[name] for name in search.ranges}, design)


# ----- the pipeline ------------------------------------------------------------------------------

def run_stages(search: Search, stages: Stages, screen: Any, say: Callable[[str], None],
               trainer: Trainer, evaluators: Callable[[Search], Evaluator] = make_evaluator
               ) -> tuple[dict[str, Any], int | None]:
    """Run the stages after the finished screen; (what they found, signal that stopped them or
    None). Stopped, the result holds only the stages that finished."""
    found: dict[str, Any] = {"screen": screen}
    previous: tuple[Search, Any] = (search, screen)
    if "rescore" in stages.on:
        study, rescore, stopped = run_rescore(search, stages, screen, say, evaluators)
        if stopped is not None:
            return found, stopped
        found["rescore"] = study
        previous = (rescore, study)
    if "finetune" in stages.on:
        chosen = trained_candidates(search, top_designs(*previous, stages.finetune))
        study, stopped = run_trained_stage(
            search, "finetune", chosen, training_seeds("finetune", stages.finetune_seeds),
            stages.finetune_frames, stages.checkpoints, stages.finetune_episodes, trainer,
            evaluators, say)
        if stopped is not None:
            return found, stopped
        found["finetune"] = study
        previous = (search, study)
    if "final" in stages.on:
        chosen = trained_candidates(search, top_designs(*previous, stages.final))
        study, stopped = run_trained_stage(
            search, "final", [*chosen, baseline_candidate(search, stages)],
            training_seeds("final", stages.final_seeds), stages.final_frames, 1,
            stages.final_episodes, trainer, evaluators, say)
        if stopped is not None:
            return found, stopped
        found["final"] = study
    return found, None


def final_comparison(search: Search, study: Any) -> list[dict[str, Any]]:
    """Each finalist against the baseline on the final stage's terrains and seeds: the paired
    difference of scores (95% interval clustered by training seed) and the probability of
    improvement over seeds; finalists in the order the stage before ranked them."""
    (frames, unordered), = study.user_attrs["checkpoints"].items()
    results = {c["label"]: unordered[c["label"]] for c in study.user_attrs["stage"]["candidates"]}
    matrix = {label: np.array([run["scores"] for run in runs]) for label, runs in results.items()}
    bootstrap = Bootstrap(seed=search.course.seed)
    rows = []
    for label, runs in results.items():
        summary = pooled(runs)
        row = {"label": label, "frames": int(frames), "seeds": len(runs),
               "score": _estimate(clustered_mean(matrix[label], f"{label} mean", bootstrap)),
               "mean_return": summary["mean_return"], "fall_rate": summary["fall_rate"],
               "leg_area": summary["leg_area"], "seed_scores": summary["seed_scores"]}
        if label != "baseline":
            row["difference"] = _estimate(paired_clustered_difference(
                matrix[label], matrix["baseline"], f"{label} - baseline", bootstrap))
            row["probability_of_improvement"] = _estimate(bootstrap.improvement(
                matrix[label].mean(axis=1), matrix["baseline"].mean(axis=1),
                f"{label} > baseline"))
        rows.append(row)
    return rows


def _estimate(estimate: Any) -> dict[str, float]:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high}


def seeds_used(search: Search, stages: Stages) -> dict[str, dict[str, list[int]]]:
    """Which terrain and training seeds each stage used (the declared scheme)."""
    episodes = {"screen": search.episodes, "rescore": stages.rescore_episodes,
                "finetune": stages.finetune_episodes, "final": stages.final_episodes}
    training = {"finetune": stages.finetune_seeds, "final": stages.final_seeds}
    return {stage: {"terrain_seeds": [terrain_seeds(search, stage, episodes[stage])[0],
                                      terrain_seeds(search, stage, episodes[stage])[-1]],
                    **({"training_seeds": training_seeds(stage, training[stage])}
                       if stage in training else {})}
            for stage in ("screen", *stages.on)}


def write_final(search: Search, stages: Stages, found: dict[str, Any],
                policy_paths: Callable[[str, TrainingRun], str]) -> tuple[str, dict[str, Any]]:
    """`<NAME>_final.json`: for each finalist and the baseline its design flags, its trained
    policies (one per training seed) and its comparison; the seeds of every stage."""
    study = found["final"]
    rows = final_comparison(search, study)
    seeds = training_seeds("final", stages.final_seeds)
    designs = {t.user_attrs["label"]: t.user_attrs["design"] for t in completed(study)}
    for row in rows:
        row["design"] = designs[row["label"]]
        row["policies"] = [policy_paths("final", TrainingRun(row["label"], row["design"], seed))
                           for seed in seeds]
    winner = rows[0]
    baseline = next(row for row in rows if row["label"] == "baseline")
    result = {"winner": winner, "baseline": baseline, "finalists": rows[:-1],
              "seeds": seeds_used(search, stages),
              "ranking_by_checkpoint": ranking_by_checkpoint(found["finetune"])
              if "finetune" in found else {}}
    path = search.results_dir / f"{search.save_name}_final.json"
    atomic_write_bytes(path, (json.dumps(result, indent=1) + "\n").encode())
    return str(path), result


def stages_markdown(search: Search, stages: Stages, found: dict[str, Any],
                    final: dict[str, Any] | None) -> str:
    """The report's section on the stages: seeds, each stage's ranking, the verdict."""
    lines = ["## Stages", "", "| stage | terrain seeds | training seeds |", "|---|---|---|"]
    for stage, used in seeds_used(search, stages).items():
        low, high = used["terrain_seeds"]
        training = used.get("training_seeds")
        lines.append(f"| {stage} | {low}-{high} | "
                     + (f"{training[0]}-{training[-1]}" if training else "-") + " |")
    for stage in stages.on:
        if stage not in found:
            continue
        trials = sorted(completed(found[stage]),
                        key=lambda t: -t.user_attrs["score"])
        lines += ["", f"{stage}: " + ", ".join(
            f"{label_of(t)} {t.user_attrs['score']:.1f} "
            f"(falls {100 * t.user_attrs['fall_rate']:.0f}%)" for t in trials)]
    if "finetune" in found:
        lines += ["", "Ranking at each frame checkpoint of the finetune stage: " + "; ".join(
            f"{int(frames):,}: {' > '.join(order)}"
            for frames, order in ranking_by_checkpoint(found["finetune"]).items())]
    if final is not None:
        winner, baseline = final["winner"], final["baseline"]
        difference, improvement = winner["difference"], winner["probability_of_improvement"]
        lines += ["", f"Final ({winner['frames']:,} frames, {winner['seeds']} new seeds, "
                      f"held-out terrains): {winner['label']} {winner['score']['value']:.1f} "
                      f"against the baseline's {baseline['score']['value']:.1f}; paired "
                      f"difference {difference['value']:.1f} [{difference['low']:.1f}, "
                      f"{difference['high']:.1f}] (95%, clustered by training seed), "
                      f"P(improvement) {improvement['value']:.2f} [{improvement['low']:.2f}, "
                      f"{improvement['high']:.2f}]; " + verdict(difference)]
    return "\n".join(lines)


def verdict(difference: dict[str, float]) -> str:
    if difference["low"] > 0:
        return "the winner beats the baseline (the interval lies above 0)."
    if difference["high"] < 0:
        return "the baseline beats the winner (the interval lies below 0)."
    return "no difference shown (the interval holds 0)."

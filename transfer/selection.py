"""`--initial_model=auto`: choose the source policy by how well it walks the target design.

Which trained policy transfers best to a new design is an empirical question (a policy trained
at leg length 34 falls at 28; a design-conditioned one may walk it at once), so it is answered
empirically: every compatible policy in the model folders is run, deterministically and
zero-shot, for a few episodes on the study's own walker, and the best mean return wins.

Compatible means the policy can be loaded into the study's network and read its walkers'
observations: the same hidden layers and action size, and, for a study over a design range,
design inputs that cover every ranged parameter. Resume checkpoints (`NAME.last.pt`) and
unreadable files are not candidates.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envs
import transfer
from common.checkpoint import (
    architecture_of,
    design_inputs_of,
    load_checkpoint,
    policy_from_checkpoint,
    trained_env,
)
from common.config import Config
from common.errors import UsageError
from common.models import model_dirs, model_files
from common.results import stopped_before_first_checkpoint
from common.study_files import StudyFiles
from evaluation.evaluate import play, summarize

AUTO = "auto"


def is_auto(initial_model: str) -> bool:
    """Whether an --initial_model value asks for the ranking (in any case, as run.py takes it)."""
    return initial_model.lower() == AUTO


AUTO_EPISODES = 10
"""Episodes per candidate (the same seeds, `--seed` + i, for every candidate): enough for a
95% interval of the mean that tells a walker from a faller."""
AUTO_TOTAL_STEPS = 300_000
"""The ranking's bound: at most this many walker steps in all (a fraction of a study), so
each of N candidates plays min(AUTO_EPISODES, AUTO_TOTAL_STEPS // (N * max_time_steps))
episodes, at most that many times max_time_steps steps (its step budget). Past it, with more
candidates than the total has room for, each still plays one episode (the total is then
exceeded, and the ranking says so); a candidate is never left out for want of time."""


@dataclass(frozen=True)
class Ranked:
    path: Path
    mean_return: float
    return_ci95: tuple[float, float]
    fall_rate: float
    finish_rate: float
    conditioned_on: tuple[str, ...]
    outside: tuple[str, ...] = ()
    """How the target walker lies outside what the policy learned (`envs.outside_training`)."""

    def as_dict(self) -> dict[str, Any]:
        """As recorded in the study's checkpoint and results (plain types)."""
        return {"path": str(self.path), "mean_return": self.mean_return,
                "return_ci95": list(self.return_ci95), "fall_rate": self.fall_rate,
                "finish_rate": self.finish_rate}


@dataclass(frozen=True)
class Choice:
    config: Config
    """The study's config with `initial_model` set to the chosen policy's path."""
    report: str
    """The ranking, for the console, the transfer summary and the results."""
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What a study records of the choice: `chosen_initial_model`, the frozen `candidates`,
    `episodes` per candidate, `seeds` and the `ranking` (empty when nothing was ranked)."""


def readable_checkpoint(path: Path) -> dict[str, Any] | str:
    """The checkpoint at `path`, checked as any --initial_model is, or why it is unusable."""
    try:
        return load_checkpoint(path)
    except UsageError as error:
        return str(error).removeprefix(f"{path}: ")


def compatible(checkpoint: dict[str, Any], config: Config, path: Path) -> bool:
    """Whether `checkpoint` fits the network and observations of the study `config` describes."""
    architecture = architecture_of(checkpoint["state_dict"])
    if architecture is None or architecture[2] != list(config.hidden_layers):
        return False
    try:
        inputs = transfer.design_inputs(config, transfer.Source(path, checkpoint))
    except UsageError:
        return False
    return architecture[:2] == (envs.BODY_OBS_DIM + len(inputs), envs.ACT_DIM)


def episodes_per_candidate(candidates: int, max_time_steps: int) -> int:
    """AUTO_EPISODES, fewer where AUTO_TOTAL_STEPS has no room for them; at least one."""
    return max(1, min(AUTO_EPISODES, AUTO_TOTAL_STEPS // max(1, candidates * max_time_steps)))


def zero_shot(checkpoint: dict[str, Any], config: Config, path: Path, episodes: int
              ) -> Ranked:
    """`episodes` deterministic episodes (seeds `--seed` + i) on the study's walker."""
    policy = policy_from_checkpoint(checkpoint).eval()  # load_checkpoint checked it
    summary = summarize(list(play(config, policy, episodes,
                                  design_inputs=design_inputs_of(checkpoint))))
    trained_on = trained_env(checkpoint)
    return Ranked(path, summary["mean_return"], tuple(summary["return_ci95"]),
                  summary["fall_rate"], summary["finish_rate"],
                  tuple(design_inputs_of(checkpoint)),
                  tuple(envs.outside_training(trained_on, config.env_kwargs())))


def find_candidates(config: Config, skipped: list[str] | None = None
                    ) -> list[tuple[Path, dict[str, Any]]]:
    """The compatible policies in the model folders now (the list is frozen here); each
    unreadable file is added to `skipped` as `path (why)`."""
    found = []
    for path in model_files(Path(config.models_dir), include_resume=False):
        checkpoint = readable_checkpoint(path)
        if isinstance(checkpoint, str):
            if skipped is not None:
                skipped.append(f"{path} ({checkpoint})")
            continue
        if compatible(checkpoint, config, path):
            found.append((path, checkpoint))
    return found


def rank_models(config: Config, candidates: list[tuple[Path, dict[str, Any]]],
                say: Callable[[str], None] | None = None) -> list[Ranked]:
    """The candidates (`find_candidates`), best first; `say` is told of each as it is
    ranked."""
    episodes = episodes_per_candidate(len(candidates), config.max_time_steps)
    ranked = []
    for number, (path, checkpoint) in enumerate(candidates, start=1):
        started = time.monotonic()
        entry = zero_shot(checkpoint, config, path, episodes)
        ranked.append(entry)
        if say:
            say(f"auto: [{number}/{len(candidates)}] {path}: {describe_entry(entry, episodes)} "
                f"({time.monotonic() - started:.1f} s)")
    return sorted(ranked, key=lambda entry: -entry.mean_return)


def describe_entry(entry: Ranked, episodes: int) -> str:
    low, high = entry.return_ci95
    return (f"mean return {entry.mean_return:.1f} [95% {low:.1f}, {high:.1f}], falls "
            f"{round(entry.fall_rate * episodes)}/{episodes}")


def describe_ranking(ranked: list[Ranked], config: Config, episodes: int, seconds: float) -> str:
    walker = envs.describe_design(config.env_kwargs())
    over = (f" (more candidates than the bound of {AUTO_TOTAL_STEPS:,} steps has room for: "
            f"one episode each)" if len(ranked) * episodes * config.max_time_steps
            > AUTO_TOTAL_STEPS else "")
    lines = [f"auto: {len(ranked)} compatible policies, each run for {episodes} "
             f"deterministic episodes (seeds {config.seed}..{config.seed + episodes - 1}) on "
             f"the target walker ({walker}) in {seconds:.1f} s{over}:"]
    for place, entry in enumerate(ranked, start=1):
        conditioned = (f" (conditioned on {', '.join(entry.conditioned_on)})"
                       if entry.conditioned_on else "")
        outside = f" [outside what it learned: {'; '.join(entry.outside)}]" if entry.outside else ""
        lines.append(f"auto: {place}. {entry.path}: {describe_entry(entry, episodes)}"
                     f"{conditioned}{outside}")
    lines.append(f"auto: chose {ranked[0].path}")
    return "\n".join(lines)


def choose_initial_model(config: Config, say: Callable[[str], None] | None = None) -> Choice:
    """Rank the candidates and return the config that names the winner, and its record."""
    started = time.monotonic()
    skipped: list[str] = []
    candidates = find_candidates(config, skipped)
    if say and candidates:
        say(f"auto: ranking {len(candidates)} compatible policies, "
            f"{episodes_per_candidate(len(candidates), config.max_time_steps)} deterministic "
            f"episodes each, on this study's walker")
    ranked = rank_models(config, candidates, say)
    if not ranked:
        folders = ", ".join(map(str, model_dirs(Path(config.models_dir))))
        unreadable = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
        raise UsageError(f"--initial_model: auto found no policy in {folders} with "
                         f"--hidden_layers={list(config.hidden_layers)} that can observe this "
                         f"study's walkers{unreadable}; name a model or train from scratch")
    episodes = episodes_per_candidate(len(ranked), config.max_time_steps)
    report = "\n".join([*(f"auto: skipped {entry}" for entry in skipped),
                        describe_ranking(ranked, config, episodes,
                                         time.monotonic() - started)])
    record = {"chosen_initial_model": str(ranked[0].path),
              "candidates": sorted(str(entry.path) for entry in ranked),
              "episodes": episodes,
              "seeds": [config.seed + i for i in range(episodes)],
              "ranking": [entry.as_dict() for entry in ranked]}
    return Choice(dataclasses.replace(config, initial_model=str(ranked[0].path)), report,
                  record)


def resolve_initial_model(config: Config) -> Choice:
    """`--initial_model=auto` resolved to a path (any other value is kept as it is), for the
    runs of a saved policy (`--eval_episodes`, `--record`, `--render`) and the sweep's shipped
    studies. A training study records `auto` and ranks in `study.trainer.train`, after its
    name, lock and folders are checked.
    """
    if not is_auto(config.initial_model):
        return Choice(config, "")
    files = StudyFiles(Path(config.models_dir), Path(config.results_dir), config.save_name)
    if config.resume and files.last.is_file() and not stopped_before_first_checkpoint(files):
        chosen = chosen_at_start(load_checkpoint(files.last, "resume"))
        if chosen:
            return Choice(dataclasses.replace(config, initial_model=chosen),
                          f"auto: resumed with the policy chosen at the start, {chosen}")
    return choose_initial_model(config)


def chosen_at_start(resume_checkpoint: dict[str, Any]) -> str | None:
    """The model an interrupted auto study chose: recorded beside `auto`, or (a shipped sweep
    study, or one from before `auto` was recorded) its resolved initial_model."""
    auto = resume_checkpoint.get("auto")
    if isinstance(auto, dict) and isinstance(auto.get("chosen_initial_model"), str):
        return auto["chosen_initial_model"]
    saved = resume_checkpoint.get("config")
    chosen = saved.get("initial_model") if isinstance(saved, dict) else None
    return chosen if isinstance(chosen, str) and not is_auto(chosen) else None


def describe_model(path: Path, checkpoint: dict[str, Any] | str) -> str:
    """One line of `--list_models`: name, design, frames, score, conditioned or not (or why
    the file is unreadable)."""
    if isinstance(checkpoint, str):
        return f"{path}: unreadable: {checkpoint}"
    env = trained_env(checkpoint)
    frames = checkpoint.get("frames")
    inputs = design_inputs_of(checkpoint)
    design = ", ".join(f"{name} {value}" for name, value in envs.design_of(env).items())
    parts = [f"trained on {design}" if env else "design unknown",
             f"{frames:,} frames" if isinstance(frames, int) else "frames unknown",
             describe_checkpoint_score(checkpoint),
             f"conditioned on {', '.join(inputs)}" if inputs else "fixed design",
             f"hidden layers {checkpoint.get('hidden_layers')}"]
    return f"{path}: " + "; ".join(parts)


def describe_checkpoint_score(checkpoint: dict[str, Any]) -> str:
    """A policy's recorded score and what it measures; checkpoints from before that was
    recorded were picked by the running average of 100 training episodes."""
    score = checkpoint.get("score")
    kind = checkpoint.get("score_kind") or "running average of training episodes"
    if isinstance(score, int | float) and math.isfinite(score):
        return f"score {score:.1f} ({kind})"
    return "no score"


def list_models(models_dir: Path) -> str:
    files = model_files(models_dir, include_resume=False)
    if not files:
        return f"no policies in {', '.join(map(str, model_dirs(models_dir)))}"
    return "\n".join(describe_model(path, readable_checkpoint(path)) for path in files)

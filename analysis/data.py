"""Reading studies and evaluations, and grouping studies that differ only by seed.

Inputs, told apart by name:
- `*.p`: a results pickle written by the trainer (`config`, `frames`, `episodes`, ...).
- `*_eval.json`: an evaluation report written by `run.py --eval_episodes=N`.
- `*_manifest.json`: a sweep manifest; every results pickle and evaluation report it lists.
- `*.jsonl` or `*.jsonl.gz`: a compact export written by `analyze.py --export` (one study or
  evaluation per line), small enough to commit so figures can be redrawn without the pickles.
"""

from __future__ import annotations

import glob
import gzip
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import envs
from common.config import TRANSFER_SETTINGS, config_from_settings, experiment_of
from common.results import UnreadableResults, read_results
from envs.design import settings_map
from ppo.schedules import Schedules

REPLICATE_SETTING = "seed"
"""The one experiment setting in which the studies of a group differ: they are its replicates."""
THAW_FRAMES = "thaw_frames"
TRANSFER_KEYS = (*TRANSFER_SETTINGS, THAW_FRAMES)
"""What says how a study transfers: its transfer settings and, resolved from them, when its
layers thaw. A from-scratch study has none; panels compare studies regardless of them."""


class InputError(ValueError):
    """An input file that cannot be read or a pattern that matches nothing."""


@dataclass
class StudyResult:
    """One training study: per-episode rewards, in the order the episodes ended."""

    name: str
    config: dict[str, Any]
    frames: np.ndarray
    """(episodes,) cumulative frames of the study when each episode ended."""
    rewards: np.ndarray
    """(episodes,) undiscounted return of each episode."""
    frames_run: int
    """Frames the study had run when its results were written."""
    source: str = ""
    schedules: dict[str, Any] | None = None
    """Its noise and thaw schedules in frames (`ppo.schedules`); None in files from before
    they were saved."""

    def __post_init__(self) -> None:
        """A reward that is not a finite number cannot come from an episode: the file is
        damaged, and one inf would make every running average through it pass any threshold."""
        bad = np.flatnonzero(~np.isfinite(self.rewards))
        if bad.size:
            raise ValueError(f"{bad.size} of its {self.rewards.size} episode rewards are not "
                             f"finite numbers (the first, episode {bad[0] + 1}: "
                             f"{self.rewards[bad[0]]})")

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def complete(self) -> bool:
        return self.frames_run >= int(self.config.get("total_frames", 0))


@dataclass
class Evaluation:
    """One evaluation report: a policy run deterministically on one walker."""

    policy: str
    trained_on: dict[str, str]
    """The design the policy was trained on, as text per parameter ('34', or '24:46' for a
    design range); empty if its checkpoint did not say."""
    walker: dict[str, float]
    """The design of the walker it was evaluated on (segments resolved; NaN: a range)."""
    returns: np.ndarray
    falls: int
    source: str = ""

    @property
    def policy_name(self) -> str:
        return Path(self.policy).stem


def walker_values(env: dict[str, Any]) -> dict[str, float]:
    """Walker settings (as reports and checkpoints record them) -> each design parameter's
    value, thigh and shin resolved (as a design input observes them: the legs' mean) when they
    follow another parameter; NaN where ranged."""
    design = envs.design_of(env)
    values = {name: math.nan if ":" in text else float(text) for name, text in design.items()}
    mapped = settings_map(env)
    for segment in ("thigh_length", "shin_length"):
        low, high = mapped.span(segment)
        values.setdefault(segment, low if low == high else math.nan)
    return values


def expand_patterns(patterns: Iterable[str]) -> list[Path]:
    """Glob patterns (or plain paths) -> existing files, in order, without repeats."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise InputError(f"{pattern}: no such file")
        paths += [Path(m) for m in matches if Path(m) not in paths]
    return paths


def load_inputs(patterns: Iterable[str]) -> tuple[list[StudyResult], list[Evaluation]]:
    studies: list[StudyResult] = []
    evaluations: list[Evaluation] = []
    for path in expand_patterns(patterns):
        name = path.name
        if name.endswith("_manifest.json"):
            more_studies, more_evaluations = load_manifest(path)
            studies += more_studies
            evaluations += more_evaluations
        elif name.endswith(".json"):
            evaluations.append(load_evaluation(path))
        elif name.endswith((".jsonl", ".jsonl.gz")):
            more_studies, more_evaluations = load_export(path)
            studies += more_studies
            evaluations += more_evaluations
        else:
            studies.append(load_results(path))
    return studies, evaluations


def load_results(path: Path) -> StudyResult:
    """A trainer results pickle, read as plain data only (`common.results.read_results`)."""
    try:
        return study_from_results(read_results(Path(path)), str(path))
    except UnreadableResults as error:
        raise InputError(f"{path}: not a results file: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not a results file ({type(error).__name__}: {error})") from None


def study_from_results(results: dict[str, Any], source: str) -> StudyResult:
    config = dict(results["config"])
    episodes = results["episodes"]
    frames = np.asarray(episodes["frames"], dtype=np.int64)
    rewards = np.asarray(episodes["reward"], dtype=np.float64)
    if frames.shape != rewards.shape:
        raise ValueError("episodes: frames and reward differ in length")
    name = str(config.get("save_name", Path(source).stem))
    return StudyResult(name, config, frames, rewards, int(results["frames"]), source,
                       results.get("schedules"))


def load_evaluation(path: Path) -> Evaluation:
    try:
        report = json.loads(Path(path).read_text())
        return evaluation_from_report(report, str(path))
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not an evaluation report ({type(error).__name__}: "
                         f"{error})") from None


def evaluation_from_report(report: dict[str, Any], source: str) -> Evaluation:
    returns = np.asarray([episode["return"] for episode in report["episodes"]], dtype=np.float64)
    falls = sum(bool(episode.get("fell")) for episode in report["episodes"])
    policy_env = report.get("policy_env")
    trained_on = envs.design_of(policy_env) if isinstance(policy_env, dict) else {}
    return Evaluation(str(report["policy"]), trained_on, walker_values(report["env"]),
                      returns, falls, source)


def load_manifest(path: Path) -> tuple[list[StudyResult], list[Evaluation]]:
    """Every results file and evaluation report a sweep manifest lists (missing ones skipped)."""
    try:
        manifest = json.loads(Path(path).read_text())
        entries = manifest["studies"]
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise InputError(f"{path}: not a sweep manifest ({type(error).__name__})") from None
    studies, evaluations = [], []
    for entry in entries:
        files = entry.get("files", {})
        if "results" in files and Path(files["results"]).is_file():
            studies.append(load_results(Path(files["results"])))
        if "eval" in files and Path(files["eval"]).is_file():
            evaluations.append(load_evaluation(Path(files["eval"])))
    return studies, evaluations


# ----- compact export ----------------------------------------------------------------------


def export(path: Path, studies: list[StudyResult], evaluations: list[Evaluation]) -> None:
    """One JSON object per line: what the analysis needs, rewards rounded to 0.01."""
    lines = []
    for study in studies:
        lines.append({"kind": "study", "name": study.name, "config": study.config,
                      "schedules": study.schedules, "frames_run": study.frames_run,
                      "episodes": {"frames": study.frames.tolist(),
                                   "reward": np.round(study.rewards, 2).tolist()}})
    for evaluation in evaluations:
        lines.append({"kind": "evaluation", "policy": evaluation.policy,
                      "trained_on": evaluation.trained_on,
                      "walker": {name: None if math.isnan(value) else value
                                 for name, value in evaluation.walker.items()},
                      "returns": np.round(evaluation.returns, 2).tolist(),
                      "falls": evaluation.falls})
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        path.write_text(text)


def load_export(path: Path) -> tuple[list[StudyResult], list[Evaluation]]:
    try:
        data = Path(path).read_bytes()
        text = gzip.decompress(data).decode() if path.name.endswith(".gz") else data.decode()
        studies, evaluations = [], []
        for line in filter(None, text.splitlines()):
            item = json.loads(line)
            if item["kind"] == "study":
                episodes = item["episodes"]
                studies.append(StudyResult(
                    item["name"], item["config"], np.asarray(episodes["frames"], dtype=np.int64),
                    np.asarray(episodes["reward"], dtype=np.float64), item["frames_run"],
                    str(path), item.get("schedules")))
            else:
                trained_on, walker = exported_designs(item)
                evaluations.append(Evaluation(
                    item["policy"], trained_on, walker,
                    np.asarray(item["returns"], dtype=np.float64), int(item["falls"]), str(path)))
    except (OSError, KeyError, TypeError, ValueError, EOFError) as error:
        raise InputError(f"{path}: not an analyze.py export ({type(error).__name__})") from None
    return studies, evaluations


def exported_designs(item: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """An exported evaluation's designs; exports from before the design space knew only leg
    lengths (`trained_leg`, `leg`): those walkers had the default design otherwise."""
    if "walker" in item:
        walker = {name: math.nan if value is None else float(value)
                  for name, value in item["walker"].items()}
        return dict(item["trained_on"]), walker
    trained = item["trained_leg"]
    trained_on = {} if trained is None else envs.design_of({"leg_length": trained})
    return trained_on, walker_values({"leg_length": item["leg"]})


# ----- groups ------------------------------------------------------------------------------


def strategy_of(config: dict[str, Any]) -> str:
    """'scratch' without an initial model, else the transfer strategy (and any perturbation)."""
    if str(config.get("initial_model", "none")).lower() == "none":
        return "scratch"
    strategy = str(config.get("transfer_learning", "none"))
    strategy = "initialize" if strategy == "none" else strategy  # the same thing with a model
    if config.get("reset_final_layer"):
        strategy += " + reset final"
    if config.get("add_noise_layers"):
        strategy += f" + noise {config['add_noise_layers']}x{config.get('add_noise_alpha', 1):g}"
    return strategy


def experiment_settings(config: dict[str, Any],
                        schedules: dict[str, Any] | None = None) -> dict[str, Any]:
    """The experiment a study belongs to, but for its seed (`common.config.experiment_of`: what
    identifies a study to resume and to sweeps too); equal settings compare equal.

    With the frames its schedules were fixed in when it started (`schedules`, or for files
    from before they were saved, the fractions of its budget they were then): the same
    `--action_std_end` of two budgets is two schedules.
    """
    settings = {flag: value for flag, value in experiment_of(config).items()
                if flag != REPLICATE_SETTING}
    resolved = (Schedules.from_dict(schedules) if schedules
                else Schedules.resolve(config_from_settings(config)))
    settings["action_std_end_frame"] = resolved.action_std_end_frame
    if resolved.thaw_frames:
        settings[THAW_FRAMES] = resolved.thaw_frames
    return settings


def settings_key(settings: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((flag, repr(value)) for flag, value in settings.items()))


@dataclass
class Group:
    """Studies of one experiment (equal settings), one per seed."""

    settings: dict[str, Any]
    studies: list[StudyResult] = field(default_factory=list)
    label: str = ""
    panel_label: str = ""

    @property
    def strategy(self) -> str:
        return strategy_of(self.studies[0].config)

    @property
    def is_scratch(self) -> bool:
        return self.strategy == "scratch"

    @property
    def panel_key(self) -> tuple[tuple[str, str], ...]:
        """Equal for a transfer group and the from-scratch group it is compared with."""
        return settings_key({flag: value for flag, value in self.settings.items()
                             if flag not in TRANSFER_KEYS})

    @property
    def seeds(self) -> list[int]:
        return [study.seed for study in self.studies]


def group_studies(studies: list[StudyResult]) -> list[Group]:
    """Studies with equal experiment settings form a group; groups keep first-seen order."""
    groups: dict[tuple, Group] = {}
    for study in studies:
        settings = experiment_settings(study.config, study.schedules)
        group = groups.setdefault(settings_key(settings), Group(settings))
        group.studies.append(study)
    for group in groups.values():
        group.studies.sort(key=lambda study: study.seed)
    result = list(groups.values())
    label_groups(result)
    return result


def format_setting(flag: str, value: Any) -> str:
    if flag in envs.DESIGN_PARAMETERS and value is not None:
        number = ":".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"
        return f"leg {number}" if flag == "leg_length" else f"{flag} {number}"
    if isinstance(value, tuple):
        return f"{flag}=[{','.join(map(str, value))}]"
    if isinstance(value, float):
        return f"{flag}={value:g}"
    return f"{flag}={value}"


def label_groups(groups: list[Group]) -> None:
    """Labels that name only what differs: panels by their non-transfer settings, groups within
    a panel by strategy (and the initial model, when several are compared)."""
    panel_settings = [{f: v for f, v in g.settings.items() if f not in TRANSFER_KEYS}
                      for g in groups]
    varying = sorted({flag for s in panel_settings for flag in s
                      if len({repr(t.get(flag)) for t in panel_settings}) > 1},
                     key=lambda flag: (flag != "leg_length", flag))
    transfer_groups = [g for g in groups if not g.is_scratch]
    models = {g.settings.get("initial_model") for g in transfer_groups}
    # Transfer settings the strategy name does not show (e.g. tl_end), where they differ.
    unshown = [flag for flag in ("tl_end", "add_noise_alpha")
               if len({g.settings.get(flag) for g in transfer_groups}) > 1]
    for group, settings in zip(groups, panel_settings, strict=True):
        group.panel_label = ", ".join(format_setting(flag, settings.get(flag))
                                      for flag in varying) or "all studies"
        label = group.strategy
        if not group.is_scratch:
            if len(models) > 1:
                label += f" from {group.settings['initial_model']}"
            label = ", ".join([label, *(format_setting(flag, group.settings.get(flag))
                                        for flag in unshown)])
        group.label = label

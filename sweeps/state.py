"""What each study of a sweep is, on disk and in the manifest: its run.py command line, and
whether its files say it is finished, interrupted, someone else's (a conflict) or new.

Whether files on disk are "this study" is decided by `common.config.experiment_of`, as for
`--resume`: only experiment settings count, so run settings (workers, device, budget) never
make a finished study a conflict, and a larger `total_frames` extends it by resuming.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import io
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.checkpoint import atomic_write_bytes, config_as_plain_dict
from common.config import (
    Config,
    config_from_settings,
    default_num_workers,
    experiment_differences,
    names_a_model,
    parse_config,
    parse_count,
)
from common.errors import UsageError
from common.models import resolve_model_path
from common.results import UnreadableResults, read_results, stopped_before_first_checkpoint
from common.study_files import StudyFiles
from sweeps.grid import SweepError, point_flags, save_name_of
from transfer.selection import is_auto

CONFIG_DEFAULTS = {spec.name: spec.default for spec in dataclasses.fields(Config)}
UNFINISHED = ("failed", "invalid", "conflict", "interrupted")


@dataclass
class StudyRecord:
    """One grid point and what became of it; serialised as is into the manifest."""

    save_name: str
    point: dict[str, str]
    flags: dict[str, str]
    status: str = "pending"
    attempts: int = 0
    resumed: bool = False
    error: str | None = None
    frames: int | None = None
    best_score: float | None = None
    best_by: str = "running average"
    """What picked the best policy and measured `best_score`: evaluation, running average."""
    mean_return: float | None = None
    wall_time: float | None = None
    node: str | None = None
    """The Ray node the study last ran on."""
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Paths:
    models_dir: Path
    results_dir: Path
    tensorboard: Path | None = None
    """Each study's TensorBoard events go to `tensorboard/<save_name>/`; None: no events."""

    def study_files(self, save_name: str) -> StudyFiles:
        return StudyFiles(self.models_dir, self.results_dir, save_name)

    def of(self, save_name: str) -> dict[str, Path]:
        study = self.study_files(save_name)
        files = {"results": study.results, "csv": study.csv, "updates": study.result("updates"),
                 "log": study.result("log"), "eval": study.evaluation, "model": study.best,
                 "checkpoint": study.last}
        if self.tensorboard is not None:
            files["tensorboard"] = self.tensorboard / save_name
        return files


def expand(name: str, grid: dict[str, list[str]], fixed: dict[str, str]) -> list[StudyRecord]:
    studies = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        studies.append(StudyRecord(save_name_of(name, point), point, point_flags(point, fixed)))
    names = [study.save_name for study in studies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SweepError(f"grid values that give the same study name: {duplicates[0]} "
                         f"(e.g. 30 and 30.0)")
    return studies


def study_argv(study: StudyRecord, paths: Paths, cpus: int, resume: bool = False) -> list[str]:
    """run.py's command line for `study`; the sweep's defaults come first so --fixed wins.

    The study's walkers are its own (`num_envs` is part of the experiment); the sweep only
    decides how many processes step them, so that the `cpus` Ray reserves are not exceeded.
    """
    defaults = {"quiet": "true", "num_workers": workers_within(study.flags, cpus)}
    flags = {**defaults, **study.flags, "save_name": study.save_name,
             "models_dir": str(paths.models_dir), "results_dir": str(paths.results_dir),
             "tensorboard": "none" if paths.tensorboard is None else str(paths.tensorboard)}
    if resume:
        flags["resume"] = "true"
    return [f"--{flag}={value}" for flag, value in flags.items()]


def workers_within(flags: dict[str, str], cpus: int) -> str:
    """`--num_workers` for a study given `cpus` cores: run.py's default rule on that many."""
    try:
        num_envs = parse_count(flags.get("num_envs", str(CONFIG_DEFAULTS["num_envs"])))
    except argparse.ArgumentTypeError:
        return "0"  # run.py refuses the study for its --num_envs anyway
    return str(default_num_workers(num_envs, cpus))


def check_flags(argv: list[str]) -> str | None:
    """run.py's verdict on a command line: None if it parses, else its one-line error."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parse_config(argv)
    except SystemExit:
        return stderr.getvalue().strip().removeprefix("run.py: error: ") or "invalid flags"
    return None


def results_or_none(path: Path) -> dict[str, Any] | None:
    """A study's results, or None where there are none of ours (missing, damaged, foreign)."""
    try:
        return read_results(path)
    except UnreadableResults:
        return None


def intended_config(argv: list[str]) -> dict[str, Any]:
    """The flags run.py would run `argv` with, as its results file will record them."""
    return config_as_plain_dict(parse_config(argv))


def read_evaluation(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "summary" in report else None


def existing_state(study: StudyRecord, paths: Paths, argv: list[str]) -> tuple[str, str | None]:
    """('complete' | 'resume' | 'fresh' | 'conflict', why) from the files already on disk.

    An evaluation study (`--eval_episodes=N`) is complete when its `_eval.json` has N episodes.
    """
    files = paths.of(study.save_name)
    wanted = intended_config(argv)
    if wanted["eval_episodes"] > 0:
        report = read_evaluation(files["eval"])
        if report is None:
            return "fresh", None
        other = evaluation_difference(report, wanted, paths)
        if other:
            return "conflict", (f"{files['eval']} is an evaluation of {other}; use another "
                                f"--name or move the old report away")
        done = report["summary"].get("episodes") == wanted["eval_episodes"]
        return ("complete" if done else "fresh"), None
    results = results_or_none(files["results"])
    if results is not None:
        stored = results.get("config", {})
        differing = experiment_differences(stored, wanted)
        if differing:
            flag = differing[0]
            return "conflict", (f"{files['results']} was written with --{flag}="
                                f"{stored.get(flag)}, this sweep asks for {wanted.get(flag)}; "
                                f"use another --name or move the old files away")
        if config_from_settings(wanted).steps_in_batch(results["frames"]) == 0:  # budget spent
            return "complete", None
    if files["checkpoint"].exists():
        return "resume", None
    leftovers = paths.study_files(study.save_name).existing_outputs()
    if stopped_before_first_checkpoint(paths.study_files(study.save_name)):
        return "fresh", None  # run.py starts it afresh: nothing of it can be lost
    if leftovers:  # run.py would refuse to start over them
        return "conflict", (f"{leftovers[0]} exists but {files['checkpoint'].name} does not, "
                            f"so the study cannot resume; use another --name or move the old "
                            f"files away")
    return "fresh", None


def evaluation_difference(report: dict[str, Any], wanted: dict[str, Any],
                          paths: Paths) -> str | None:
    """What makes an evaluation report not the one the study `wanted` would write (another
    policy, another walker or seed), or None. Only the same evaluation counts as done."""
    name = wanted["initial_model"] if names_a_model(wanted["initial_model"]) \
        else wanted["save_name"]
    try:
        policy = resolve_model_path(name, paths.models_dir).resolve()
    except UsageError:
        policy = None
    reported = report.get("policy")
    if not isinstance(reported, str) or policy is None or Path(reported).resolve() != policy:
        return f"another policy ({str(reported)[:80]})"
    walker = {"env": wanted["env"], **config_from_settings(wanted).env_kwargs()}
    env = report.get("env")
    if not isinstance(env, dict) or any(env.get(key) != value for key, value in
                                        json.loads(json.dumps(walker)).items()):
        return "another walker"
    if report.get("seed") != wanted["seed"]:
        return f"seed {report.get('seed')}, not {wanted['seed']}"
    return None


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


@dataclass
class Sweep:
    name: str
    grid: dict[str, list[str]]
    fixed: dict[str, str]
    paths: Paths
    cpus_per_study: int = 1
    address: str | None = None
    retries: int = 1
    ship_files: bool = False
    command: str = ""
    studies: list[StudyRecord] = field(default_factory=list)
    started: str = field(default_factory=now)
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources each study reserves besides its CPUs."""

    @property
    def manifest_path(self) -> Path:
        return self.paths.results_dir / f"{self.name}_manifest.json"

    def write_manifest(self) -> None:
        manifest = {
            "name": self.name,
            "command": self.command,
            "started": self.started,
            "updated": now(),
            "grid": self.grid,
            "fixed": self.fixed,
            "cpus_per_study": self.cpus_per_study,
            "resources": self.resources,
            "address": self.address,
            "models_dir": str(self.paths.models_dir),
            "results_dir": str(self.paths.results_dir),
            "counts": status_counts(self.studies),
            "studies": [dataclasses.asdict(study) for study in self.studies],
        }
        atomic_write_bytes(self.manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    def record_files(self, study: StudyRecord) -> None:
        study.files = {kind: str(path) for kind, path in self.paths.of(study.save_name).items()
                       if path.exists()}
        evaluation = read_evaluation(self.paths.of(study.save_name)["eval"])
        if evaluation is not None:
            study.mean_return = float(evaluation["summary"]["mean_return"])
        results = results_or_none(self.paths.of(study.save_name)["results"])
        if results is not None:
            study.frames = int(results["frames"])
            best = float(results["best_score"])  # -inf until the score window has filled
            study.best_score = best if math.isfinite(best) else None
            # Results from before --best_by were picked by the running average.
            study.best_by = ("evaluation" if results.get("best_by") == "eval"
                             else "running average")
            study.wall_time = round(float(results["wall_time"]), 1)


def prepare(sweep: Sweep) -> list[tuple[StudyRecord, bool]]:
    """Sort every study into done-before, not runnable, or to run (with its resume flag)."""
    to_run = []
    for study in sweep.studies:
        argv = study_argv(study, sweep.paths, sweep.cpus_per_study)
        error = check_flags(argv)
        model = study.flags.get("initial_model", "none")
        if error is None and names_a_model(model) and not is_auto(model):
            error = check_initial_model(study.flags["initial_model"], sweep.paths.models_dir)
        if error is not None:
            study.status, study.error = "invalid", error
            continue
        state, why = existing_state(study, sweep.paths, argv)
        if state == "complete":
            study.status = "skipped"
            sweep.record_files(study)
        elif state == "conflict":
            study.status, study.error = "conflict", why
        else:
            to_run.append((study, state == "resume"))
    return to_run


def check_initial_model(name: str, models_dir: Path) -> str | None:
    try:
        resolve_model_path(name, models_dir)
    except UsageError as error:
        return str(error)
    return None


def status_counts(studies: list[StudyRecord]) -> dict[str, int]:
    statuses = [study.status for study in studies]
    return {status: statuses.count(status) for status in sorted(set(statuses))}

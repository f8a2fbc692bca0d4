"""Run a grid of studies as Ray tasks, skipping finished ones and resuming interrupted ones.

    python sweep.py --name headline --grid leg_length=30,40 \\
        --grid strategy=scratch,initialize,freeze_all_but_final,freeze_then_thaw \\
        --grid seed=1,2,3 --fixed total_frames=300000 --fixed initial_model=leg_34_trained

Every study is `run.cli(argv)` (the code path of `python run.py`) inside a Ray task. Ray runs
locally by default (`ray.init()` with one CPU per core); `--address=auto` or
`--address=ray://HOST:PORT` joins an existing cluster.

The grid
- `--grid FLAG=V1,V2,...` (repeatable) varies any run.py flag; the sweep is the product of all
  axes, in the order given. Commas inside brackets stay in a value: `hidden_layers=[32,32],[64]`.
- `--fixed FLAG=VALUE` (repeatable) is passed to every study.
- `strategy` is a pseudo-flag for transfer studies: `scratch` means no initial model (the
  study gets neither `--initial_model` nor any transfer flag), any other value X means
  `--transfer_learning=X` with the `--initial_model` named in `--fixed` (or in the grid).
- Each study is saved as `<name>__<token>__<token>...`, one token per axis:
  `leg30`, `seed2`, the strategy itself, otherwise `<flag>-<value>`
  (e.g. `headline__leg30__initialize__seed1`).

What happens to each study
- Results file present with `frames >= total_frames`: skipped (status `skipped`).
- Interrupted (a `<save_name>.last.pt` checkpoint exists): run with `--resume=true`.
- Flags run.py would reject: not run (status `invalid`), reported at the end.
- A results file written with other settings under the same name: not run (`conflict`).
- A study that fails is retried once (resuming if it left a checkpoint), then reported as `failed`.
  Failures never stop the sweep; the exit status is 1 if any study did not finish.
Each study's output goes to `<results_dir>/<save_name>.log`. The manifest
`<results_dir>/<name>_manifest.json`, rewritten atomically at every change, records the grid and
each study's status, flags and files.

Evaluation sweeps: with `--fixed eval_episodes=N` every study is `run.py --eval_episodes=N`
(no training) and is complete once its `<save_name>_eval.json` holds N episodes. With
`--initial_model` that is a zero-shot sweep, e.g. the shipped policy on many walkers:

    python sweep.py --name zeroshot --grid leg_length=20,25,30,34,40,45,50 \
        --fixed initial_model=leg_34_trained --fixed eval_episodes=20

Resources: each task reserves `--cpus_per_study` CPUs, and its walkers are stepped by as many
worker processes as run.py would use on that many cores (`--num_workers`, unless given with
`--fixed`), so the machine is not oversubscribed. The number of walkers (`--num_envs`, default
8) is part of the experiment and is never changed by the sweep.

On a cluster (`--address`), the repository is sent to the nodes (Ray's `working_dir`, honouring
.gitignore), and the nodes need no shared filesystem: each task gets its initial model and
resume checkpoint with it, trains in a scratch folder, and sends its files back to be written
under this machine's `--models_dir` and `--results_dir` (`--ship_files`, on by default there).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import itertools
import json
import math
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ppo.checkpoint import atomic_write_bytes
from ppo.config import (
    TRANSFER_FLAGS,
    TRANSFER_STRATEGIES,
    Config,
    default_num_workers,
    experiment_differences,
    parse_count,
)
from ppo.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parent
STRATEGY = "strategy"
SCRATCH = "scratch"
STRATEGIES = (SCRATCH, *TRANSFER_STRATEGIES)
CONFIG_FLAGS = tuple(spec.name for spec in dataclasses.fields(Config))
CONFIG_DEFAULTS = {spec.name: spec.default for spec in dataclasses.fields(Config)}
SWEEP_OWNED_FLAGS = ("save_name", "resume", "models_dir", "results_dir", "render", "record")
"""Flags the sweep sets itself; they cannot be put in --grid or --fixed."""
TOKEN_PREFIXES = {"leg_length": "leg", "seed": "seed", STRATEGY: ""}
UNFINISHED = ("failed", "invalid", "conflict", "interrupted")
LOG_TAIL_LINES = 15


class SweepError(UsageError):
    """A grid the sweep cannot run (bad axis, missing initial model for a transfer strategy)."""


# ----- the grid ----------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """`30,40` -> ['30', '40']; bracketed commas stay: `[32,32],[64]` -> ['[32,32]', '[64]']."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if any(not value for value in values):
        raise SweepError(f"empty value in {text!r}")
    return values


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    flag, sep, value = text.partition("=")
    flag = flag.strip().removeprefix("--")
    if not sep or not flag or not value.strip():
        raise SweepError(f"{option} expects FLAG=VALUE, got {text!r}")
    known = (*CONFIG_FLAGS, STRATEGY) if option == "--grid" else CONFIG_FLAGS
    if flag not in known:
        raise SweepError(f"{option} {flag}: not a run.py flag")
    if flag in SWEEP_OWNED_FLAGS:
        raise SweepError(f"{option} {flag}: set by the sweep itself (use sweep.py --{flag} "
                         f"where it exists)")
    return flag, value.strip()


def parse_grid(grid_args: list[str], fixed_args: list[str]) -> tuple[dict[str, list[str]],
                                                                     dict[str, str]]:
    """`--grid` and `--fixed` texts -> ({axis: values} in order given, {flag: value})."""
    grid: dict[str, list[str]] = {}
    for text in grid_args:
        flag, values = parse_assignment(text, "--grid")
        if flag in grid:
            raise SweepError(f"--grid {flag}: given twice")
        values = split_values(values)
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {flag}: repeated value in {values}")
        grid[flag] = values
    fixed: dict[str, str] = {}
    for text in fixed_args:
        flag, value = parse_assignment(text, "--fixed")
        if flag in grid:
            raise SweepError(f"--fixed {flag}: already a --grid axis")
        fixed[flag] = value
    if STRATEGY in grid:
        unknown = [value for value in grid[STRATEGY] if value not in STRATEGIES]
        if unknown:
            raise SweepError(f"--grid strategy: {unknown[0]!r} is not one of {STRATEGIES}")
        if "transfer_learning" in grid or "transfer_learning" in fixed:
            raise SweepError("--grid strategy sets --transfer_learning; do not give both")
        has_model = "initial_model" in grid or fixed.get("initial_model", "none") != "none"
        if any(value != SCRATCH for value in grid[STRATEGY]) and not has_model:
            raise SweepError("--grid strategy: transfer strategies need --fixed "
                             "initial_model=NAME (the policy to transfer from)")
    return grid, fixed


def point_flags(point: dict[str, str], fixed: dict[str, str]) -> dict[str, str]:
    """The run.py flags of one grid point (strategy resolved), without the sweep's own flags."""
    flags = {**fixed, **{k: v for k, v in point.items() if k != STRATEGY}}
    strategy = point.get(STRATEGY)
    if strategy == SCRATCH:
        for flag in ("initial_model", *TRANSFER_FLAGS):
            flags.pop(flag, None)
    elif strategy is not None:
        flags["transfer_learning"] = strategy
    return flags


def format_number(value: str) -> str:
    """'30.0' -> '30', '30.50' -> '30.5'; anything else unchanged."""
    try:
        return f"{float(value):g}"
    except ValueError:
        return value


def point_token(flag: str, value: str) -> str:
    """A file-name-safe token for one axis value: `leg30`, `seed2`, `hidden_layers-32-32`."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", format_number(value)).strip("-.") or "x"
    return TOKEN_PREFIXES[flag] + value if flag in TOKEN_PREFIXES else f"{flag}-{value}"


def save_name_of(name: str, point: dict[str, str]) -> str:
    return "__".join([name, *(point_token(flag, value) for flag, value in point.items())])


# ----- studies -----------------------------------------------------------------------------


@dataclass
class Study:
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
    mean_return: float | None = None
    wall_time: float | None = None
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Paths:
    models_dir: Path
    results_dir: Path

    def of(self, save_name: str) -> dict[str, Path]:
        return {
            "results": self.results_dir / f"{save_name}.p",
            "csv": self.results_dir / f"{save_name}.csv",
            "log": self.results_dir / f"{save_name}.log",
            "eval": self.results_dir / f"{save_name}_eval.json",
            "model": self.models_dir / f"{save_name}.pt",
            "checkpoint": self.models_dir / f"{save_name}.last.pt",
        }


def expand(name: str, grid: dict[str, list[str]], fixed: dict[str, str]) -> list[Study]:
    studies = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        studies.append(Study(save_name_of(name, point), point, point_flags(point, fixed)))
    names = [study.save_name for study in studies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SweepError(f"grid values that give the same study name: {duplicates[0]} "
                         f"(e.g. 30 and 30.0)")
    return studies


def study_argv(study: Study, paths: Paths, cpus: int, resume: bool = False) -> list[str]:
    """run.py's command line for `study`; the sweep's defaults come first so --fixed wins.

    The study's walkers are its own (`num_envs` is part of the experiment); the sweep only
    decides how many processes step them, so that the `cpus` Ray reserves are not exceeded.
    """
    defaults = {"quiet": "true", "num_workers": workers_within(study.flags, cpus)}
    flags = {**defaults, **study.flags, "save_name": study.save_name,
             "models_dir": str(paths.models_dir), "results_dir": str(paths.results_dir)}
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
    from ppo.config import parse_config

    stderr = _StringSink()
    try:
        with contextlib.redirect_stderr(stderr):
            parse_config(argv)
    except SystemExit:
        return stderr.text.strip().removeprefix("run.py: error: ") or "invalid flags"
    return None


class _StringSink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def read_results(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            results = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
        return None
    return results if isinstance(results, dict) and "frames" in results else None


def intended_config(argv: list[str]) -> dict[str, Any]:
    from ppo.checkpoint import config_as_plain_dict
    from ppo.config import parse_config

    return config_as_plain_dict(parse_config(argv))


def read_evaluation(path: Path) -> dict[str, Any] | None:
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "summary" in report else None


def existing_state(study: Study, paths: Paths, argv: list[str]) -> tuple[str, str | None]:
    """('complete' | 'resume' | 'fresh' | 'conflict', why) from the files already on disk.

    An evaluation study (`--eval_episodes=N`) is complete when its `_eval.json` has N episodes.
    """
    files = paths.of(study.save_name)
    wanted = intended_config(argv)
    if wanted["eval_episodes"] > 0:
        report = read_evaluation(files["eval"])
        done = report is not None and report["summary"].get("episodes") == wanted["eval_episodes"]
        return ("complete" if done else "fresh"), None
    results = read_results(files["results"]) if files["results"].exists() else None
    if results is not None:
        stored = results.get("config", {})
        differing = experiment_differences(stored, wanted)
        if differing:
            flag = differing[0]
            return "conflict", (f"{files['results']} was written with --{flag}="
                                f"{stored.get(flag)}, this sweep asks for {wanted.get(flag)}; "
                                f"use another --name or move the old files away")
        if results["frames"] >= wanted["total_frames"]:
            return "complete", None
    if files["checkpoint"].exists():
        return "resume", None
    return "fresh", None


# ----- the Ray task ------------------------------------------------------------------------


def run_study(argv: list[str], log_name: str, inputs: dict[str, bytes] | None = None,
              ship_back: bool = False) -> dict[str, Any]:
    """Body of the Ray task: `run.cli(argv)` with its output appended to a log file.

    Without shipping, `argv` names the real folders and the log goes to `log_name` there. With
    `inputs` or `ship_back`, the study runs in a scratch folder: `inputs` ({path relative to it:
    bytes}) are written first, argv's folders are `models/` and `results/` inside it, and every
    file the study wrote comes back as {path relative to it: bytes}.
    """
    scratch = Path(tempfile.mkdtemp(prefix="sweep-")) if ship_back else None
    try:
        if scratch is not None:
            for relative, data in (inputs or {}).items():
                (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
                (scratch / relative).write_bytes(data)
            argv = [arg.replace("{scratch}", str(scratch)) for arg in argv]
            log_path = scratch / "results" / log_name
        else:
            log_path = Path(log_name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        status = _run_logged(argv, log_path)
        tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        files = {}
        if scratch is not None:
            written = ((str(path.relative_to(scratch)), path) for path in scratch.rglob("*")
                       if path.is_file() and not path.name.startswith("."))
            files = {relative: path.read_bytes() for relative, path in written
                     if (inputs or {}).get(relative) != path.read_bytes()}
        return {"status": status, "log_tail": tail, "files": files}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_logged(argv: list[str], log_path: Path) -> int:
    import run  # the repository root is on the worker's path (local) or is its working_dir

    with log_path.open("a") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        print(f"\n[{now()}] python run.py {' '.join(argv)}", flush=True)
        try:
            status = run.cli(argv)
        except SystemExit as exit_:  # argparse rejected a flag
            status = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # noqa: BLE001 (any crash is this study's failure, not the sweep's)
            traceback.print_exc()
            status = 1
        print(f"[{now()}] exit status {status}", flush=True)
    return status


def now() -> str:
    return datetime.datetime.now().isoformat(timespec="seconds")


# ----- the sweep ---------------------------------------------------------------------------


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
    studies: list[Study] = field(default_factory=list)
    started: str = field(default_factory=now)

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
            "address": self.address,
            "models_dir": str(self.paths.models_dir),
            "results_dir": str(self.paths.results_dir),
            "counts": status_counts(self.studies),
            "studies": [dataclasses.asdict(study) for study in self.studies],
        }
        atomic_write_bytes(self.manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())

    def record_files(self, study: Study) -> None:
        study.files = {kind: str(path) for kind, path in self.paths.of(study.save_name).items()
                       if path.exists()}
        evaluation = read_evaluation(self.paths.of(study.save_name)["eval"])
        if evaluation is not None:
            study.mean_return = float(evaluation["summary"]["mean_return"])
        results = read_results(self.paths.of(study.save_name)["results"])
        if results is not None:
            study.frames = int(results["frames"])
            best = float(results["best_score"])  # -inf until the score window has filled
            study.best_score = best if math.isfinite(best) else None
            study.wall_time = round(float(results["wall_time"]), 1)


def prepare(sweep: Sweep) -> list[tuple[Study, bool]]:
    """Sort every study into done-before, not runnable, or to run (with its resume flag)."""
    to_run = []
    for study in sweep.studies:
        argv = study_argv(study, sweep.paths, sweep.cpus_per_study)
        error = check_flags(argv)
        if error is None and study.flags.get("initial_model", "none") != "none":
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
    from transfer.loading import resolve_model_path

    try:
        resolve_model_path(name, models_dir)
    except UsageError as error:
        return str(error)
    return None


def task_arguments(sweep: Sweep, study: Study, resume: bool) -> tuple[list[str], str,
                                                                      dict[str, bytes], bool]:
    """(argv, log name, inputs, ship_back) for `run_study`, for this machine or a remote node."""
    files = sweep.paths.of(study.save_name)
    if not sweep.ship_files:
        argv = study_argv(study, sweep.paths, sweep.cpus_per_study, resume)
        return argv, str(files["log"]), {}, False
    from transfer.loading import resolve_model_path

    remote = Paths(Path("{scratch}/models"), Path("{scratch}/results"))
    inputs: dict[str, bytes] = {}
    flags = dict(study.flags)
    if flags.get("initial_model", "none") != "none":
        # Sent as models/NAME.pt and named NAME, so the results record the same initial_model
        # as a local run (a path given as initial_model is recorded by its file name).
        source = resolve_model_path(flags["initial_model"], sweep.paths.models_dir)
        inputs[f"models/{source.name}"] = source.read_bytes()
        flags["initial_model"] = source.stem
    if resume:
        inputs[f"models/{files['checkpoint'].name}"] = files["checkpoint"].read_bytes()
    if files["log"].exists():
        inputs[f"results/{files['log'].name}"] = files["log"].read_bytes()
    shipped = dataclasses.replace(study, flags=flags)
    argv = study_argv(shipped, remote, sweep.cpus_per_study, resume)
    return argv, files["log"].name, inputs, True


def write_shipped(sweep: Sweep, files: dict[str, bytes]) -> None:
    """Files a remote study wrote (or changed) -> this machine's folders."""
    folders = {"models": sweep.paths.models_dir, "results": sweep.paths.results_dir}
    for relative, data in files.items():
        top, _, rest = relative.partition("/")
        if top in folders and rest and "/" not in rest:
            atomic_write_bytes(folders[top] / rest, data)


def run_sweep(sweep: Sweep, out: TextIO | None = None) -> int:
    """Run every study not yet complete; return 0 if all finished, 1 if any did not."""
    import ray

    def say(text: str) -> None:
        print(text, file=out or sys.stdout, flush=True)

    to_run = prepare(sweep)
    sweep.write_manifest()
    total = len(sweep.studies)
    for study in sweep.studies:
        if study.status != "pending":
            say(f"{study.status:<8} {study.save_name}" + (f": {study.error}" if study.error
                                                          else ""))
    started_ray = False
    pending: dict[Any, tuple[Study, float]] = {}
    if to_run:
        if not ray.is_initialized():
            start_ray(sweep.address)
            started_ray = True
        task = ray.remote(run_study).options(num_cpus=sweep.cpus_per_study, max_retries=0)

        def launch(study: Study, resume: bool) -> None:
            study.status, study.attempts, study.error = "running", study.attempts + 1, None
            study.resumed = study.resumed or resume
            pending[task.remote(*task_arguments(sweep, study, resume))] = (study, time.time())

        for study, resume in to_run:
            launch(study, resume)
        sweep.write_manifest()
        say(f"running {len(to_run)} of {total} studies on Ray "
            f"({sweep.cpus_per_study} CPU(s) each); "
            f"logs: {sweep.paths.results_dir}/<study>.log")
    finished = total - len(to_run)
    previous_handler = signal.signal(signal.SIGTERM, interrupt)  # `kill` stops it as Ctrl-C does
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            study, launched = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as error:  # noqa: BLE001 (a lost worker, an unpicklable result...)
                outcome = {"status": 1, "log_tail": [f"{type(error).__name__}: {error}"],
                           "files": {}}
            write_shipped(sweep, outcome["files"])
            sweep.record_files(study)
            minutes = (time.time() - launched) / 60
            if outcome["status"] == 0:
                study.status = "done"
                finished += 1
                say(f"[{finished}/{total}] done     {study.save_name}: {describe(study)} "
                    f"({minutes:.1f} min)")
            else:
                study.error = last_error_line(outcome["log_tail"], outcome["status"])
                if study.attempts <= sweep.retries:
                    say(f"retrying {study.save_name}: {study.error}")
                    launch(study, sweep.paths.of(study.save_name)["checkpoint"].exists())
                else:
                    study.status = "failed"
                    finished += 1
                    say(f"[{finished}/{total}] FAILED   {study.save_name} after "
                        f"{study.attempts} attempt(s): {study.error}")
            sweep.write_manifest()
    except KeyboardInterrupt:
        stop_running(pending, say)
        for study, _ in pending.values():
            study.status, study.error = "interrupted", "the sweep was interrupted"
            sweep.record_files(study)
        sweep.write_manifest()
        say(f"interrupted; run the same command again to resume. Manifest: "
            f"{sweep.manifest_path}")
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if started_ray:
            ray.shutdown()
    return report(sweep, say)


def interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def describe(study: Study) -> str:
    if study.mean_return is not None:
        return f"mean return {study.mean_return:.1f} (evaluation)"
    text = f"{study.frames:,} frames" if study.frames is not None else "no results file"
    if study.best_score is not None:
        text += f", best running average {study.best_score:.1f}"
    return text


def stop_running(pending: dict[Any, tuple[Study, float]], say) -> None:
    """Ask running studies to stop (run.py saves its checkpoint on SIGINT) and wait briefly."""
    import ray

    say("\nstopping the running studies (their checkpoints are kept)...")
    for ref in pending:
        ray.cancel(ref, force=False)
    with contextlib.suppress(Exception):
        ray.wait(list(pending), num_returns=len(pending), timeout=30)


def last_error_line(log_tail: list[str], status: int) -> str:
    """The most telling line of a failed study's log: its error message, else its last line."""
    lines = [line.strip() for line in log_tail if line.strip() and not line.startswith("[")]
    errors = [line for line in lines if "error" in line.lower() or "stopped" in line.lower()]
    detail = (errors or lines or ["no output"])[-1]
    return f"exit status {status}: {detail}"


def status_counts(studies: list[Study]) -> dict[str, int]:
    statuses = [study.status for study in studies]
    return {status: statuses.count(status) for status in sorted(set(statuses))}


def report(sweep: Sweep, say) -> int:
    unfinished = [study for study in sweep.studies if study.status in UNFINISHED]
    counts = ", ".join(f"{count} {status}" for status, count in
                       status_counts(sweep.studies).items())
    say(f"sweep {sweep.name}: {len(sweep.studies)} studies: {counts}. "
        f"Manifest: {sweep.manifest_path}")
    for study in unfinished:
        say(f"  {study.status}: {study.save_name}: {study.error}")
    return 1 if unfinished else 0


def start_ray(address: str | None = None) -> None:
    """Local Ray with one CPU per core, or join the cluster at `address` (sending the code)."""
    import ray

    if address is None:
        # Workers import run.py and the packages from this checkout, wherever the sweep started.
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                    os.environ.get("PYTHONPATH")]))
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": python_path}})
        return
    ray.init(address=address, log_to_driver=False, runtime_env={
        "working_dir": str(REPO_ROOT),
        "excludes": [".git", "results", "docs"],
    })


# ----- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweep.py",
        description="Run a grid of run.py studies as Ray tasks (see the module docstring).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    parser.add_argument("--name", required=True,
                        help="sweep name: prefix of every study's save_name and of the manifest")
    parser.add_argument("--grid", action="append", default=[], metavar="FLAG=V1,V2",
                        help="an axis of the grid over a run.py flag (or `strategy`); repeatable")
    parser.add_argument("--fixed", action="append", default=[], metavar="FLAG=VALUE",
                        help="a run.py flag given to every study; repeatable")
    parser.add_argument("--cpus_per_study", type=int, default=1,
                        help="CPUs Ray reserves for each study; its walkers get as many worker "
                             "processes (never more walkers)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join: auto, or ray://HOST:PORT (default: local Ray)")
    parser.add_argument("--retries", type=int, default=1,
                        help="times a failed study is run again before it is reported")
    parser.add_argument("--ship_files", choices=("true", "false"), default=None,
                        help="send inputs to and outputs from each task instead of sharing "
                             "folders (default: true with --address, false locally)")
    parser.add_argument("--models_dir", default="trained_models", help="folder for policies")
    parser.add_argument("--results_dir", default="results",
                        help="folder for results, logs and the manifest")
    parser.add_argument("--dry_run", action="store_true",
                        help="list the studies and what would happen to each; run nothing")
    return parser


def sweep_from_args(args: argparse.Namespace, command: str = "") -> Sweep:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name) or "__" in args.name:
        raise SweepError(f"--name: letters, digits, _ . - (no '__'), got {args.name!r}")
    if args.cpus_per_study < 1:
        raise SweepError("--cpus_per_study: must be at least 1")
    if args.address is None and args.cpus_per_study > (os.cpu_count() or 1):
        raise SweepError(f"--cpus_per_study: this machine has {os.cpu_count()} CPUs")
    if args.retries < 0:
        raise SweepError("--retries: must be >= 0")
    grid, fixed = parse_grid(args.grid, args.fixed)
    if not grid:
        raise SweepError("give at least one --grid FLAG=V1,V2,... axis")
    paths = Paths(Path(args.models_dir).resolve(), Path(args.results_dir).resolve())
    ship = args.address is not None if args.ship_files is None else args.ship_files == "true"
    return Sweep(args.name, grid, fixed, paths, args.cpus_per_study, args.address,
                 args.retries, ship, command, expand(args.name, grid, fixed))


def dry_run(sweep: Sweep, out: TextIO | None = None) -> int:
    to_run = dict((study.save_name, resume) for study, resume in prepare(sweep))
    for study in sweep.studies:
        if study.save_name in to_run:
            action = "resume" if to_run[study.save_name] else "run"
        else:
            action = study.status
        argv = " ".join(study_argv(study, sweep.paths, sweep.cpus_per_study, action == "resume"))
        print(f"{action:<8} python run.py {argv}" + (f"\n         {study.error}"
                                                    if study.error else ""),
              file=out or sys.stdout)
    return 0


def cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = " ".join(["python sweep.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        sweep = sweep_from_args(args, command)
    except UsageError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        return dry_run(sweep)
    try:
        import ray  # noqa: F401
    except ImportError:
        print("sweep.py: error: Ray is not installed: pip install -r requirements-extra.txt",
              file=sys.stderr)
        return 2
    return run_sweep(sweep)


if __name__ == "__main__":
    sys.exit(cli())

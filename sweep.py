"""Run a grid of studies as Ray tasks, skipping finished ones and resuming interrupted ones.

    python sweep.py --name headline --grid leg_length=30,40 \\
        --grid strategy=scratch,initialize,freeze_all_but_final,freeze_then_thaw \\
        --grid seed=1,2,3 --fixed total_frames=300000 --fixed initial_model=leg_34_trained

Every study is `run.cli(argv)` (the code path of `python run.py`) inside a Ray task. Ray runs
locally by default (a Ray instance of its own, one CPU per core, even where another Ray runs
on the machine or RAY_ADDRESS names one); `--address=auto` or `--address=ray://HOST:PORT`
joins an existing cluster.

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
- A results file of another experiment under the same name: not run (`conflict`). Only
  experiment settings count (as for `run.py --resume`): other workers, device or budget never
  make a conflict, and a larger `total_frames` extends a finished study by resuming it.
- A study that fails is retried once (resuming if it left a checkpoint), then reported as `failed`.
  Failures never stop the sweep; the exit status is 1 if any study did not finish.
Each study's output goes to `<results_dir>/<save_name>.log`. The manifest
`<results_dir>/<name>_manifest.json`, rewritten atomically at every change, records the grid and
each study's status, flags and files.

Evaluation sweeps: with `--fixed eval_episodes=N` every study is `run.py --eval_episodes=N`
(no training) and is complete once its `<save_name>_eval.json` holds N episodes of the same
policy, walker and seed (a report of another is a `conflict`).

One sweep of a name runs on a results folder at a time (a lock, `.<name>.sweep.lock`): a
second is refused in one line (exit status 2). Ctrl-C stops a sweep with exit status 130,
SIGTERM with 143, as they stop run.py. With
`--initial_model` that is a zero-shot sweep, e.g. the shipped policy on many walkers:

    python sweep.py --name zeroshot --grid leg_length=20,25,30,34,40,45,50 \
        --fixed initial_model=leg_34_trained --fixed eval_episodes=20

Resources: each task reserves `--cpus_per_study` CPUs, and its walkers are stepped by as many
worker processes as run.py would use on that many cores (`--num_workers`, unless given with
`--fixed`), so the machine is not oversubscribed. The number of walkers (`--num_envs`, default
8) is part of the experiment and is never changed by the sweep. `--resource NAME=AMOUNT`
(repeatable) makes each task reserve a custom Ray resource too, e.g. `--resource trainer=1` runs
studies only on nodes started with `ray start --resources='{"trainer": 4}'`. The manifest
records the Ray node each study ran on.

On a cluster (`--address`), the repository is sent to the nodes (Ray's `working_dir`, honouring
.gitignore), and the nodes need no shared filesystem: each task gets its initial model and
resume checkpoint with it, trains in a scratch folder, and sends its files back to be written
under this machine's `--models_dir`, `--results_dir` and `--tensorboard` (`--ship_files`, on by
default there).

The code: this file is the command line; `sweeps/` holds the grid (`grid.py`), each study's
state on disk and the manifest (`state.py`), what a Ray task runs (`task.py`) and the running of
the tasks on Ray (`execution.py`).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from common.config import OneLineErrorParser
from common.errors import StudyFailed, UsageError
from common.locking import StudyLock
from sweeps.execution import run_sweep
from sweeps.grid import SweepError, parse_grid
from sweeps.state import Paths, Sweep, expand, prepare, study_argv

MAX_RETRIES = 100
"""Runs of a failed study beyond the first: a study failing this often will not succeed."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
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
    parser.add_argument("--resource", action="append", default=[], metavar="NAME=AMOUNT",
                        help="a custom Ray resource each study reserves (pins studies to the "
                             "nodes that have it); repeatable")
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
    parser.add_argument("--tensorboard", default="runs",
                        help="folder for the studies' TensorBoard events, side by side "
                             "(tensorboard --logdir FOLDER compares them); none: no events")
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
    if not 0 <= args.retries <= MAX_RETRIES:
        raise SweepError(f"--retries: must be in [0, {MAX_RETRIES}], got {args.retries}")
    grid, fixed = parse_grid(args.grid, args.fixed)
    if not grid:
        raise SweepError("give at least one --grid FLAG=V1,V2,... axis")
    tensorboard = (None if args.tensorboard.strip().lower() == "none"
                   else Path(args.tensorboard).resolve())
    paths = Paths(Path(args.models_dir).resolve(), Path(args.results_dir).resolve(), tensorboard)
    ship = args.address is not None if args.ship_files is None else args.ship_files == "true"
    return Sweep(args.name, grid, fixed, paths, args.cpus_per_study, args.address,
                 args.retries, ship, command, expand(args.name, grid, fixed),
                 resources=parse_resources(args.resource))


def parse_resources(texts: list[str]) -> dict[str, float]:
    """`--resource trainer=1` texts -> {"trainer": 1.0}."""
    resources = {}
    for text in texts:
        name, _, amount = text.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if not name.strip() or not value > 0 or math.isinf(value):
            raise SweepError(f"--resource: expects NAME=AMOUNT with a positive amount, got "
                             f"{text!r}")
        resources[name.strip()] = value
    return resources


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
    try:
        with sweep_lock(sweep):
            return run_sweep(sweep)
    except UsageError as error:
        print(f"sweep.py: error: {error}", file=sys.stderr)
        return 2
    except StudyFailed as error:  # e.g. the manifest cannot be written: disk full
        print(f"sweep.py: stopped: {error}", file=sys.stderr)
        return 1


def sweep_lock(sweep: Sweep) -> StudyLock:
    """One sweep of a name per results folder at a time: a second one would run the same
    studies and rewrite the same manifest (`.NAME.sweep.lock` beside it, see common.locking)."""
    return SweepLock(sweep.paths.results_dir / f".{sweep.name}.sweep.lock", sweep.name,
                     sweep.paths.results_dir)


class SweepLock(StudyLock):
    def __init__(self, path: Path, name: str, folder: Path) -> None:
        super().__init__(path, name)
        self.folder = folder

    def _acquire(self) -> int | None:
        try:
            return super()._acquire()
        except UsageError as error:
            holder = re.search(r"\(PID [^)]*\)", str(error))
            raise UsageError(f"--name: sweep {self.save_name} is already running on "
                             f"{self.folder} {holder[0] if holder else ''}; wait for it to end, "
                             f"or stop it, or use another --name or --results_dir") from None


if __name__ == "__main__":
    sys.exit(cli())

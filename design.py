"""Which design should I build? Search walker designs for a design-conditioned policy.

    python design.py --save_name=legs --initial_model=universal_24_46 --leg_length=24:46 \\
        --trials=30 --episodes=5

Each candidate design is scored by a deterministic zero-shot evaluation of the policy on that
body (run.py --eval_episodes's code) over the same K terrains; Optuna's TPE proposes the next
candidates. The search is stored in an Optuna database (SQLite at results/NAME.db unless
--storage says otherwise), so it resumes where it stopped and optuna-dashboard can show it.

Design flags: run.py's (--leg_length --thigh_length --shin_length --leg_width --motor_torque,
and each leg's own, e.g. --left_thigh_length: docs/ha2018.md).
A range LOW:HIGH is searched; a number is fixed. Only parameters the policy observes (its
checkpoint's env.design_inputs) can be searched.

Objectives (--objective):
  score         the highest score: mean return, plus a bonus for finishing sooner
  energy        the highest score - energy_weight x the motors' mechanical work per episode
  min_leg_area  the smallest leg area (each segment's length x width, both legs), whose mean
                return is at least --min_score (a constrained search)
  pareto        score (max), leg area (min) and energy (min) at once: the Pareto front
--max_fall_rate=F makes a design that falls in more than F of its episodes infeasible.

Stages: see STAGES_HELP below (printed by --help).

Output: a progress line per trial, the ranked table, and a last line
`best: PARAM=VALUE ... score=VALUE`; results/NAME_design.md (ranked table with 95% intervals,
the stages), results/NAME_design.json, results/NAME_design_params.png and _progress.png; with
--final, results/NAME_final.json (winner and baseline: design, policies, comparison, seeds).
Stopped (Ctrl-C: 130, SIGTERM: 143), it claims nothing and prints the command that resumes.

What a stop leaves: see STOPPING_HELP below (printed by --help).

docs/design_search.md is the guide: scoring, sampler choice, resuming, clusters.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.config import (
    MAX_EPISODES,
    Config,
    OneLineErrorParser,
    parse_bool,
    parse_count,
    parse_design_value,
)
from common.errors import StudyFailed, UsageError, interrupt_exit_status, raise_interrupted
from designsearch.choices import (
    DESIGN_FLAGS,
    MAX_CHECKPOINTS,
    MAX_PARALLEL,
    MAX_TRIALS,
    OBJECTIVES,
    SAMPLERS,
)

if TYPE_CHECKING:
    from designsearch.search import Search
    from designsearch.stages import Stages

STAGES_HELP = """\
Stages (a screen alone is a first look: its winner is the luckiest of many noisy estimates):
  screen        the search above (TPE, zero-shot, --episodes terrains per candidate)
  --rescore=K:EPISODES              the top K re-scored zero-shot on fresh terrains
  --finetune=M:SEEDS:FRAMES:EPISODES the top M fine-tuned, SEEDS runs each, scored on fresh
                terrains at --checkpoints budgets (does a longer budget reorder them?)
  --final=N:SEEDS:FRAMES:EPISODES   the top N and the baseline (--baseline, default body)
                trained equally with new seeds, scored on held-out terrains, paired
Each stage takes its candidates from the stage before and plays terrains none before played
(stage s: seeds from --seed + 100,000 x s). Each is a study NAME.STAGE in the same storage.
"""

STOPPING_HELP = """\
Stopping: Ctrl-C or SIGTERM (exit 130 / 143) keeps every finished trial, queues the running
ones again and writes the reports; a dead evaluation process or a database that cannot be
written ends the search in one line (exit 1) with the finished trials kept; after kill -9 the
finished trials are kept. In every case the same command plus --resume=true continues.
"""

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def run_py_default(name: str):
    """The default of run.py's flag `name` (its Config field's): a search runs on run.py's
    course and folders unless told otherwise."""
    return next(spec.default for spec in dataclasses.fields(Config) if spec.name == name)


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(
        prog="design.py", usage="design.py --save_name=NAME --leg_length=LOW:HIGH [flags]",
        description="Search walker designs for a design-conditioned policy (see the module "
                    "docstring). Every flag takes --flag=value or --flag value; booleans alone "
                    "mean true.",
        epilog=f"{STAGES_HELP}\n\n{STOPPING_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter)

    def flag(name: str, kind, default, text: str, boolean: bool = False) -> None:
        parser.add_argument(f"--{name}", type=kind, default=default,
                            nargs="?" if boolean else None, const=True if boolean else None,
                            metavar="true|false" if boolean else name.upper(),
                            help=f"{text} (default: {default})")

    flag("save_name", str, None, "name of the search: its study, database and report files")
    flag("initial_model", str, "universal_design",
         "the design-conditioned policy: trained_models/NAME.pt or a path to a .pt")
    for name in DESIGN_FLAGS:
        flag(name, str, None, f"run.py's --{name}: LOW:HIGH to search it, a number to fix it")
    flag("objective", str, "score", f"what the search optimises: {', '.join(OBJECTIVES)}")
    flag("min_score", float, 300.0,
         "min_leg_area: the deterministic mean return a design must reach")
    flag("energy_weight", float, 0.01,
         "energy: return points charged per unit of the motors' mechanical work")
    flag("finish_bonus", float, 100.0,
         "score bonus for finishing the course, times the share of max_time_steps left")
    flag("trials", parse_count, 30, "candidate designs to evaluate in all (a resumed search "
                                    "runs until this many have finished)")
    flag("episodes", parse_count, 5, "deterministic episodes (terrains) per candidate")
    flag("seed", parse_count, 1000, "seed of the first terrain and of the sampler")
    flag("parallel", parse_count, 4, "candidates proposed at once and evaluated in parallel "
                                     "(at most one process per core; part of the search)")
    flag("sampler", str, "tpe", f"Optuna sampler: {', '.join(SAMPLERS)} (cmaes needs the "
                                "cmaes package and cannot use --objective=min_leg_area)")
    flag("storage", str, None, "Optuna storage URL (default: sqlite:///RESULTS_DIR/NAME.db)")
    flag("address", str, None, "evaluate on Ray: local, auto, or ray://HOST:PORT (default: a "
                               "process pool on this machine)")
    flag("terrain_length_scale", float, run_py_default("terrain_length_scale"),
         "run.py's course length")
    flag("max_time_steps", parse_count, run_py_default("max_time_steps"),
         "run.py's episode length limit")
    flag("fall_penalty", float, run_py_default("fall_penalty"),
         "run.py's reward for falling")
    flag("max_fall_rate", float, 1.0, "the largest share of episodes a feasible design may "
                                      "fall in (a constraint; 1: none)")
    flag("rescore", str, None, "stage 2: K:EPISODES, the top K re-scored zero-shot on "
                               "EPISODES (>= 30) fresh terrains")
    flag("finetune", str, None, "stage 3: M:SEEDS:FRAMES:EPISODES, the top M fine-tuned with "
                                "SEEDS (>= 5) seeds to FRAMES, EPISODES fresh terrains each")
    flag("checkpoints", parse_count, 1, "--finetune: frame budgets scored (FRAMES x i / C), "
                                        "the ranking reported at each")
    flag("final", str, None, "stage 4: N:SEEDS:FRAMES:EPISODES, the top N and the baseline "
                             "trained with new seeds, scored on held-out terrains, paired")
    flag("baseline", str, None, "--final: the body to beat, FLAG=VALUE,... over design flags "
                                "(unset ones: the default body's)")
    parser.add_argument("--train_fixed", action="append", default=[], metavar="FLAG=VALUE",
                        help="a run.py flag for every training run of --finetune and --final; "
                             "repeatable")
    flag("resume", parse_bool, False, "continue the search NAME", boolean=True)
    flag("overwrite", parse_bool, False, "replace the search NAME and its reports",
         boolean=True)
    flag("models_dir", str, run_py_default("models_dir"),
         "folder of policies (and fine-tuned ones)")
    flag("results_dir", str, run_py_default("results_dir"),
         "folder of the database and reports")
    flag("quiet", parse_bool, False, "no progress lines", boolean=True)
    return parser


def search_from_args(args) -> tuple[Stages, Search]:
    """Flags -> the checked stages and Search; UsageError (one line naming the flag)
    otherwise. The flags alone are checked first: only then are the search's modules (torch
    among them) imported, to check the policy and the space."""
    if not args.save_name:
        raise UsageError("--save_name: required: the name of the search, e.g. --save_name=legs")
    if not NAME_PATTERN.fullmatch(args.save_name) or "__" in args.save_name:
        raise UsageError(f"--save_name: letters, digits, _ . - (no '__'), got "
                         f"{args.save_name!r}")
    if args.objective not in OBJECTIVES:
        raise UsageError(f"--objective: one of {', '.join(OBJECTIVES)}, got {args.objective!r}")
    if args.sampler not in SAMPLERS:
        raise UsageError(f"--sampler: one of {', '.join(SAMPLERS)}, got {args.sampler!r}")
    if args.sampler == "cmaes" and args.objective == "min_leg_area":
        raise UsageError("--sampler: cmaes ignores constraints; use tpe for min_leg_area")
    for name, least in (("trials", 1), ("episodes", 1), ("parallel", 1), ("checkpoints", 1)):
        if getattr(args, name) < least:
            raise UsageError(f"--{name}: must be at least {least}, got {getattr(args, name)}")
    for name, most in (("trials", MAX_TRIALS), ("episodes", MAX_EPISODES),
                       ("parallel", MAX_PARALLEL), ("checkpoints", MAX_CHECKPOINTS)):
        if getattr(args, name) > most:
            raise UsageError(f"--{name}: at most {most:,}, got {getattr(args, name)}")
    if not 0 < args.max_fall_rate <= 1:
        raise UsageError(f"--max_fall_rate: a share in (0, 1], got {args.max_fall_rate}")
    if args.sampler == "cmaes" and args.max_fall_rate < 1:
        raise UsageError("--sampler: cmaes ignores constraints; use tpe with --max_fall_rate")
    for name in ("min_score", "energy_weight", "finish_bonus"):
        if not math.isfinite(getattr(args, name)):
            raise UsageError(f"--{name}: must be a finite number")
    if args.resume and args.overwrite:
        raise UsageError("--overwrite: cannot be combined with --resume=true")
    ranges, fixed = {}, {}
    for name in DESIGN_FLAGS:
        text = getattr(args, name)
        if text is None:
            continue
        try:
            value = parse_design_value(text)
        except Exception:  # noqa: BLE001 (argparse.ArgumentTypeError)
            raise UsageError(f"--{name}: expected a number or a range LOW:HIGH, got "
                             f"{text!r}") from None
        if isinstance(value, tuple):
            ranges[name] = (float(value[0]), float(value[1]))
        else:
            fixed[name] = float(value)
    from designsearch.checks import (
        check_address,
        check_save_name_length,
        check_storage,
        check_train_fixed,
    )
    from designsearch.project import load_checkpoint, resolve_model_path, trained_env
    from designsearch.search import Search
    from designsearch.space import check_space

    check_save_name_length(args.save_name)
    policy_path = resolve_model_path(args.initial_model, Path(args.models_dir))
    checkpoint = load_checkpoint(policy_path, "initial_model")
    env = trained_env(checkpoint)
    observed = env.get("design_inputs") or {}
    check_space(ranges, fixed, observed, policy_path.stem)
    from designsearch.scoring import Course, candidate_config

    course = Course(args.terrain_length_scale, args.max_time_steps, args.fall_penalty,
                    args.seed)
    try:  # run.py's own checks of the course and the body, at the ranges' low corner
        candidate_config({**fixed, **{n: low for n, (low, _) in ranges.items()}},
                         str(policy_path), args.episodes, course)
    except UsageError:
        raise
    check_storage(args.storage, args.results_dir)
    check_address(args.address)
    from designsearch.training import fine_tune_flags

    stages = stages_from_args(args, ranges, fixed)
    if stages.baseline is not None:
        from designsearch.space import default_values

        try:  # run.py's checks of the baseline body
            candidate_config({**fixed, **default_values(ranges), **stages.baseline},
                             str(policy_path), 1, course)
        except UsageError as error:
            raise UsageError(f"--baseline: {error}") from None
    train_fixed = check_train_fixed(bool(stages.finetune or stages.final), args.train_fixed,
                                    fine_tune_flags(
        str(policy_path.resolve()), {**fixed, **{n: low for n, (low, _) in ranges.items()}},
        max(stages.finetune_frames, stages.final_frames, 1), course,
        f"{args.save_name}_finetune_baseline__seed1"))
    return stages, Search(
        save_name=args.save_name, policy_name=policy_path.stem, policy_path=policy_path,
        ranges=ranges, fixed=fixed, objective=args.objective, min_score=args.min_score,
        energy_weight=args.energy_weight, finish_bonus=args.finish_bonus, trials=args.trials,
        episodes=args.episodes, course=course, parallel=args.parallel, sampler=args.sampler,
        storage=args.storage or "", address=args.address, resume=args.resume,
        overwrite=args.overwrite, models_dir=Path(args.models_dir),
        results_dir=Path(args.results_dir), quiet=args.quiet, max_fall_rate=args.max_fall_rate,
        train_fixed=train_fixed)


def stages_from_args(args, ranges: dict[str, tuple[float, float]],
                     fixed: dict[str, float]) -> Stages:
    """--rescore, --finetune, --final, --baseline -> the Stages; one line naming the flag
    otherwise."""
    from designsearch.stages import Stages, parse_stage

    settings: dict = {}
    if args.rescore is not None:
        counts = parse_stage("rescore", args.rescore, ("k", "episodes"))
        settings.update(rescore=counts["k"], rescore_episodes=counts["episodes"])
    if args.finetune is not None:
        counts = parse_stage("finetune", args.finetune, ("m", "seeds", "frames", "episodes"))
        settings.update(finetune=counts["m"], finetune_seeds=counts["seeds"],
                        finetune_frames=counts["frames"], finetune_episodes=counts["episodes"])
    if args.final is not None:
        counts = parse_stage("final", args.final, ("n", "seeds", "frames", "episodes"))
        settings.update(final=counts["n"], final_seeds=counts["seeds"],
                        final_frames=counts["frames"], final_episodes=counts["episodes"])
    stages = Stages(**settings, checkpoints=args.checkpoints,
                    baseline=parse_baseline(args.baseline) if args.baseline else None)
    if stages.on and args.objective == "pareto":
        raise UsageError(f"--{stages.on[0]}: the stages rank by one objective; "
                         f"--objective=pareto has three")
    if args.baseline and not stages.final:
        raise UsageError("--baseline: only with --final=N:SEEDS:FRAMES:EPISODES")
    if args.checkpoints > 1 and not stages.finetune:
        raise UsageError("--checkpoints: only with --finetune=M:SEEDS:FRAMES:EPISODES")
    pool = args.trials
    for stage in stages.on:
        wanted = getattr(stages, stage)
        if wanted > pool:
            raise UsageError(f"--{stage}: at most the {pool} design(s) the stage before keeps, "
                             f"got {wanted}")
        pool = wanted
    if stages.checkpoints > max(stages.finetune_frames, 1):
        raise UsageError(f"--checkpoints: at most --finetune's FRAMES, got "
                         f"{stages.checkpoints}")
    return stages


def parse_baseline(text: str) -> dict[str, float]:
    design = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().removeprefix("--")
        if not sep or name not in DESIGN_FLAGS:
            raise UsageError(f"--baseline: FLAG=VALUE,... over {', '.join(DESIGN_FLAGS)}, got "
                             f"{part!r}")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise UsageError(f"--baseline: {name} needs a finite number, got {value!r}")
        design[name] = number
    return design


def resume_command(argv: list[str]) -> str:
    """The command line that continues this search."""
    kept = [arg for arg in argv if not arg.startswith(("--resume", "--overwrite"))]
    return " ".join(["python design.py", *kept, "--resume=true"])


def main(search: Search, stages: Stages, argv: list[str]) -> int:
    """Run the search and its stages; print the ranked table and the best line. Stopped, it
    reports what finished, claims nothing of the rest, and says how to resume."""
    from designsearch.project import load_checkpoint
    from designsearch.report import TABLE_ROWS, best_line, ranked, table, write_reports
    from designsearch.search import run_search, store_failures
    from designsearch.space import outside_warning
    from designsearch.stages import delete_stage_studies, run_stages, stages_markdown, write_final
    from designsearch.training import SweepTrainer

    def say(text: str) -> None:
        if not search.quiet:
            print(text, flush=True)

    if search.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise UsageError("--sampler: cmaes needs the cmaes package (pip install cmaes)") \
                from None
    with search.lock():
        checkpoint = load_checkpoint(search.policy_path, "initial_model")
        warning = outside_warning(search.policy_path.name, checkpoint.get("env") if isinstance(
            checkpoint.get("env"), dict) else {}, search.ranges, search.fixed)
        if warning:  # on stderr, quiet or not, as run.py's
            print(warning, file=sys.stderr, flush=True)
        banner = (f"design search {search.save_name}: {search.policy_name}, "
                  + ", ".join(f"{n} {lo:g}:{hi:g}" for n, (lo, hi) in search.ranges.items())
                  + f", objective {search.objective}, {search.trials} trials x "
                    f"{search.episodes} episodes; storage {search.storage_url}")
        with store_failures(search):
            study, stopped = run_search(search, say, banner)
        if search.overwrite:
            delete_stage_studies(search)
        found, final = {}, None
        if stages.on and stopped is None:
            trainer = SweepTrainer(search.save_name, search.policy_path, search.course,
                                   search.train_fixed, search.models_dir, search.results_dir,
                                   search.address, " ".join(["python design.py", *argv]),
                                   search.quiet)
            found, stopped = run_stages(search, stages, study, say, trainer)
            if "final" in found:
                path, final = write_final(search, stages, found, lambda stage, run: str(
                    trainer.policy_path_of(stage, run)))
                say(f"final comparison: {path}")
        section = stages_markdown(search, stages, found, final) if stages.on else ""
        if stopped is not None:
            section += (f"\n\nStopped by signal {stopped} before every stage finished: "
                        f"nothing here is a result of the unfinished stages.")
        files = write_reports(search, study, section)
        trials = ranked(search, study)
        print(table(search, trials, limit=TABLE_ROWS))
        if final is not None:
            print(section.splitlines()[-1])
        print(f"reports: {', '.join(files)}")
        print(best_line(search, trials))
    if stopped is not None:
        print(f"design.py: interrupted; resume with: {resume_command(argv)}", file=sys.stderr)
        return 128 + stopped
    return 0


def cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        stages, search = search_from_args(args)
        return main(search, stages, given)
    except UsageError as error:
        print(f"design.py: error: {error}", file=sys.stderr)
        return 2
    except StudyFailed as error:
        print(f"design.py: stopped: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:
        print(f"design.py: interrupted; resume with: {resume_command(given)}", file=sys.stderr)
        return interrupt_exit_status(stop)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(cli())

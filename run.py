"""Command-line entry point: `python run.py --save_name=NAME --leg_length=34 [flags]`.

torch, Gymnasium and the rest are imported inside the functions, after `cli` has made Ctrl-C
and SIGTERM end the program cleanly: a signal during those seconds of imports is no traceback.
"""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import (
    StudyFailed,
    UsageError,
    interrupt_exit_status,
    raise_interrupted,
)

if TYPE_CHECKING:
    from common.config import Config

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def main(config: Config) -> int:
    """Run the study the flags describe; return the process exit status."""
    from common.config import resume_command
    from evaluation import evaluate, export
    from study.trainer import train
    from transfer import selection

    if config.list_models:
        print(selection.list_models(Path(config.models_dir)))
        return 0
    if config.runs_saved_policy:
        choice = selection.resolve_initial_model(config)
        config = choice.config
        if choice.report:
            print(choice.report, flush=True)
        run_policy = {"render": evaluate.watch, "record": evaluate.record,
                      "export": export.export, "eval_episodes": evaluate.evaluate}[config.mode]
        return run_policy(config)
    outcome = train(config)  # --initial_model=auto is ranked there, after the name's checks
    if outcome.best_path is not None:
        print(f"best policy: {outcome.best_path} "
              f"({describe_score(outcome.best_score, outcome.score_kind)})")
    else:
        print("best policy: none saved (no episode has finished yet)")
    print(f"results:     {outcome.results_path}, {outcome.csv_path} "
          f"({outcome.episodes} episodes, {outcome.evaluations} evaluations, "
          f"{outcome.frames:,} frames)")
    if outcome.stopped_by_signal is not None:
        print(f"stopped by signal {outcome.stopped_by_signal}; continue with: "
              f"{resume_command(config)}")
        return 128 + outcome.stopped_by_signal
    return 0


def describe_score(best_score: float, score_kind: str) -> str:
    """The best policy's score and what it measures (`study.evaluations.score_kind`)."""
    from common.results import SCORE_WINDOW

    if math.isfinite(best_score):
        return f"score {best_score:.1f}: {score_kind}"
    if score_kind.startswith("running average"):
        return f"the latest policy: fewer than {SCORE_WINDOW} episodes finished"
    return "the latest policy: not evaluated yet"


def cli(argv: list[str] | None = None) -> int:
    """Flags -> exit status, with every failure one line on stderr and never a traceback.

    Until training installs its own handlers, SIGINT and SIGTERM interrupt like Ctrl-C does,
    start-up (imports included) too, so whatever was started is closed on the way out.
    """
    previous = {sig: signal.signal(sig, raise_interrupted) for sig in STOP_SIGNALS}
    try:
        return run(argv)
    except KeyboardInterrupt as interrupt:
        status = interrupt_exit_status(interrupt)
        print(f"run.py: interrupted ({signal.Signals(status - 128).name})", file=sys.stderr)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(argv: list[str] | None) -> int:
    from common.config import parse_config

    config = parse_config(argv)
    try:
        return main(config)
    except UsageError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2
    except StudyFailed as error:
        print(f"run.py: {ACTIVITIES[config.mode]} stopped: {error}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"run.py: error: --batch_size: {config.batch_size:,} frames do not fit in memory; "
              f"collect smaller batches", file=sys.stderr)
        return 2


ACTIVITIES = {"render": "watching", "record": "recording", "export": "export",
              "eval_episodes": "evaluation", "train": "training"}
"""Config.mode -> what a failure message says was under way."""


if __name__ == "__main__":
    sys.exit(cli())

"""Command-line entry point: `python run.py --save_name=NAME --leg_length=34 [flags]`."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ppo import evaluate
from ppo.algorithm import TrainingDiverged
from ppo.config import Config, parse_config
from ppo.errors import UsageError
from ppo.results import SCORE_WINDOW
from ppo.trainer import train
from transfer import selection


def main(config: Config) -> int:
    """Run the study the flags describe; return the process exit status."""
    if config.list_models:
        print(selection.list_models(Path(config.models_dir)))
        return 0
    choice = selection.resolve_initial_model(config)
    config = choice.config
    if choice.report and (config.render or config.record or config.eval_episodes > 0):
        print(choice.report, flush=True)  # training prints it in its transfer summary
    if config.render:
        return evaluate.watch(config)
    if config.record:
        return evaluate.record(config)
    if config.eval_episodes > 0:
        return evaluate.evaluate(config)
    outcome = train(config, source_choice=choice.report)
    print(f"best policy: {outcome.best_path} ({describe_score(outcome.best_score)})")
    print(f"results:     {outcome.results_path}, {outcome.csv_path} "
          f"({outcome.episodes} episodes, {outcome.frames:,} frames)")
    if outcome.stopped_by_signal is not None:
        print(f"stopped by signal {outcome.stopped_by_signal}; continue with --resume=true")
        return 128 + outcome.stopped_by_signal
    return 0


def describe_score(best_score: float) -> str:
    if math.isfinite(best_score):
        return f"running average {best_score:.1f} over {SCORE_WINDOW} episodes"
    return f"the latest policy: fewer than {SCORE_WINDOW} episodes finished"


def cli(argv: list[str] | None = None) -> int:
    config = parse_config(argv)
    try:
        return main(config)
    except UsageError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"run.py: training stopped: {error}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"run.py: error: --batch_size: {config.batch_size:,} frames do not fit in memory; "
              f"collect smaller batches", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # outside training (which stops cleanly by itself): no traceback
        print("run.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())

"""Everything the design search takes from the rest of the project, imported in one place.

The rest of the project can move its modules: re-point the imports here and nothing else in
`designsearch` changes.
"""

from __future__ import annotations

from common.checkpoint import atomic_write_bytes, design_inputs_of, load_checkpoint, trained_env
from common.config import (
    MAX_EPISODES,
    Config,
    OneLineErrorParser,
    build_parser,
    parse_bool,
    parse_count,
    parse_design_value,
    validate,
)
from common.errors import StudyFailed, UsageError, interrupt_exit_status, raise_interrupted
from common.locking import StudyLock
from common.models import resolve_model_path
from common.resources import CAN_FORK
from common.study_files import (
    MAX_FILE_NAME_BYTES,
    MAX_SAVE_NAME_LENGTH,
    MODEL_SUFFIXES,
    check_output_folder,
    temporary_path,
)
from evaluation.evaluate import EpisodeResult, interval95, load_policy, play
from sweeps.execution import run_sweep, start_ray
from sweeps.grid import CONFIG_FLAGS, SWEEP_OWNED_FLAGS
from sweeps.state import Paths, Sweep, expand
from workers.processes import ChildProcess, ParentGone, ParentWatch, start_child


def run_py_config(flags: dict[str, str]) -> Config:
    """run.py's validated configuration of these flags (FLAG: VALUE text), as run.py would
    parse them; a UsageError naming the flag where run.py would refuse them."""
    class Refusing(type(build_parser())):
        def error(self, message: str):
            raise UsageError(message.removeprefix("argument "))

    parser = build_parser()
    parser.__class__ = Refusing
    values = vars(parser.parse_args([f"--{name}={value}" for name, value in flags.items()]))
    config = Config(**values)
    validate(config, given=set(flags))
    return config

__all__ = [
    "MAX_EPISODES",
    "trained_env",
    "interval95",
    "CAN_FORK",
    "ChildProcess",
    "ParentGone",
    "ParentWatch",
    "start_child",
    "CONFIG_FLAGS",
    "MAX_FILE_NAME_BYTES",
    "MODEL_SUFFIXES",
    "MAX_SAVE_NAME_LENGTH",
    "SWEEP_OWNED_FLAGS",
    "check_output_folder",
    "run_py_config",
    "temporary_path",
    "Config",
    "EpisodeResult",
    "OneLineErrorParser",
    "Paths",
    "StudyFailed",
    "StudyLock",
    "Sweep",
    "UsageError",
    "atomic_write_bytes",
    "design_inputs_of",
    "expand",
    "interrupt_exit_status",
    "load_checkpoint",
    "load_policy",
    "parse_bool",
    "parse_count",
    "parse_design_value",
    "play",
    "raise_interrupted",
    "resolve_model_path",
    "run_sweep",
    "start_ray",
    "validate",
]

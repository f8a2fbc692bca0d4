"""Everything the design search takes from the rest of the project, imported in one place.

Other developers are moving these modules into rooms by purpose (`evaluation/`, `study/`,
`workers/`): re-point the imports here and nothing else in `designsearch` changes.
"""

from __future__ import annotations

from evaluation.evaluate import EpisodeResult, load_policy, play
from study.checkpoint import atomic_write_bytes, load_checkpoint
from study.config import (
    Config,
    OneLineErrorParser,
    parse_bool,
    parse_count,
    parse_design_value,
    validate,
)
from study.errors import StudyFailed, UsageError, interrupt_exit_status, raise_interrupted
from study.locking import StudyLock
from sweeps.execution import run_sweep, start_ray
from sweeps.state import Paths, Sweep, expand
from transfer.loading import design_inputs_of, resolve_model_path
from workers.processes import CAN_FORK

__all__ = [
    "CAN_FORK",
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

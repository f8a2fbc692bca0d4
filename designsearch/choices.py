"""What design.py's flags may say, importable without torch: `--help` and a refused flag answer
before the search's modules (and torch with them) are imported."""

from __future__ import annotations

import envs

OBJECTIVES = ("score", "min_leg_area", "energy", "pareto")
SAMPLERS = ("tpe", "cmaes")
MAX_PARALLEL = 1000
"""Candidates proposed at once: each is a RUNNING trial in the database before any result."""
MAX_TRIALS = 100_000
"""Trials of one search: each is a row the sampler reads back at every proposal."""
MAX_CHECKPOINTS = 100
"""--checkpoints: each one trains and scores every fine-tuned policy again."""
DESIGN_FLAGS = tuple(envs.DESIGN_PARAMETERS)
"""run.py's design flags (envs.DECLARED): the symmetric ones and each leg's own."""

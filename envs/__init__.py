"""The walkers: importing this package registers them with Gymnasium.

`design` declares what a walker is built from (its design parameters, once each) and checks and
describes designs; `walker` is the physics, built from a `design.WalkerDesign`."""

from gymnasium.envs.registration import register, registry

from envs.design import (
    BODY_OBS_DIM,
    COURSE_DEFAULTS,
    DECLARED,
    DESIGN_DEFAULTS,
    DESIGN_DRAWS,
    DESIGN_PARAMETERS,
    EDGE_PROBABILITY,
    GYMNASIUM_COURSE,
    LEG_LENGTH_RANGE,
    MAX_ABS_FALL_PENALTY,
    MAX_TERRAIN_LENGTH_SCALE,
    MAX_TIME_STEPS,
    MIN_TERRAIN_LENGTH_SCALE,
    InvalidWalkerArgument,
    WalkerDesign,
    check_walker_arguments,
    describe_design,
    design_differences,
    design_of,
    designs_from_observations,
    outside_training,
    outside_warning,
)
from envs.walker import ACT_DIM, BipedalCustomLegLength

ENV_ID = "Bipedal_Custom_Leg_Length-v0"

if ENV_ID not in registry:
    # No max_episode_steps: the walker truncates itself after its `max_time_steps` argument.
    register(id=ENV_ID, entry_point="envs.walker:BipedalCustomLegLength")

__all__ = [
    "ACT_DIM",
    "BODY_OBS_DIM",
    "COURSE_DEFAULTS",
    "DECLARED",
    "DESIGN_DEFAULTS",
    "DESIGN_DRAWS",
    "DESIGN_PARAMETERS",
    "EDGE_PROBABILITY",
    "ENV_ID",
    "GYMNASIUM_COURSE",
    "LEG_LENGTH_RANGE",
    "MAX_ABS_FALL_PENALTY",
    "MAX_TERRAIN_LENGTH_SCALE",
    "MAX_TIME_STEPS",
    "MIN_TERRAIN_LENGTH_SCALE",
    "BipedalCustomLegLength",
    "InvalidWalkerArgument",
    "WalkerDesign",
    "check_walker_arguments",
    "describe_design",
    "design_differences",
    "design_of",
    "designs_from_observations",
    "outside_training",
    "outside_warning",
]

"""The walkers: importing this package registers them with Gymnasium."""

from gymnasium.envs.registration import register, registry

from envs.bipedal_custom import (
    ACT_DIM,
    BODY_OBS_DIM,
    DESIGN_DEFAULTS,
    DESIGN_PARAMETERS,
    LEG_LENGTH_RANGE,
    MAX_ABS_FALL_PENALTY,
    MAX_TERRAIN_LENGTH_SCALE,
    MAX_TIME_STEPS,
    MIN_TERRAIN_LENGTH_SCALE,
    BipedalCustomLegLength,
    InvalidWalkerArgument,
    WalkerDesign,
    check_walker_arguments,
    describe_design,
    design_differences,
    design_of,
    designs_from_observations,
)

ENV_ID = "Bipedal_Custom_Leg_Length-v0"

if ENV_ID not in registry:
    # No max_episode_steps: the walker truncates itself after its `max_time_steps` argument.
    register(id=ENV_ID, entry_point="envs.bipedal_custom:BipedalCustomLegLength")

__all__ = [
    "ACT_DIM",
    "BODY_OBS_DIM",
    "DESIGN_DEFAULTS",
    "DESIGN_PARAMETERS",
    "ENV_ID",
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
]

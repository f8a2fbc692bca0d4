"""What a walker is built from: its design parameters, declared once, the bodies they make
(`WalkerDesign`), the course's settings, their checks, and how designs are described and read back.

Everything about a design parameter that the rest of the tool needs (its flag, default, bounds,
unit, help, results column, checkpoint key, observation slot and description) derives from its
`DesignParameter` entry in `DECLARED`; the physics reads the built `WalkerDesign`. Adding a
parameter: one `DesignParameter`, one `WalkerDesign` field, the physics that uses it, and its
`Config` field (common/config.py).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium.envs.box2d.bipedal_walker import (
    MOTORS_TORQUE,
    TERRAIN_GRASS,
    TERRAIN_LENGTH,
    TERRAIN_STARTPAD,
)

NUM_LIDAR = 10
BODY_OBS_DIM = 14 + NUM_LIDAR
"""Gymnasium's observation: hull, joints and contacts (14), lidar; design inputs follow it."""


@dataclass(frozen=True)
class DesignParameter:
    """One design parameter of the walker, as every part of the tool sees it."""

    name: str
    default: float | None
    """None: the parameter follows another (`follows`) unless given."""
    bounds: tuple[float, float]
    """The supported range: every body inside starts standing (tests/test_design.py)."""
    unit: str
    help: str
    """The flag's help; `{range}` becomes the bounds."""
    follows: str | None = None
    """The parameter this one takes its value from when it is not given: a shorthand that sets
    it (and others) at once, e.g. thigh_length for left_thigh_length."""
    scale: float = 1.0
    """This parameter is `scale` times the one it follows (a shin's width: 0.8 of leg_width)."""

    def describe_help(self) -> str:
        low, high = self.bounds
        return self.help.replace("{range}", f"in [{low:g}, {high:g}] {self.unit}")


DEFAULT_LEG_WIDTH = 8.0
"""Gymnasium's LEG_W in drawing units; the shin is SHIN_WIDTH_FRACTION of it wide, as there."""
SHIN_WIDTH_FRACTION = 0.8
SEGMENT_LENGTH_BOUNDS = (8.5, 70.0)
"""Every segment: down to Ha (2018)'s 25% of Gymnasium's 34 (8.5), up to 70 (measured: every
body in the box starts standing, tests/test_design.py)."""
THIGH_WIDTH_BOUNDS = (2.0, 20.0)
SHIN_WIDTH_BOUNDS = (SHIN_WIDTH_FRACTION * 2.0, SHIN_WIDTH_FRACTION * 20.0)
SIDES = ("left", "right")
"""Gymnasium builds its legs for i in (-1, +1): left is -1, the first leg in the observation
(hip 1, knee 1, contact 1) and the one drawn behind; right is +1."""


def _per_leg(segment: str, what: str, follows: str, bounds: tuple[float, float],
             scale: float = 1.0) -> tuple[DesignParameter, ...]:
    return tuple(DesignParameter(
        f"{side}_{segment}", None, bounds, "drawing units",
        f"{what} of the {side} leg {{range}}; none: --{follows}"
        + (f" x {scale:g}" if scale != 1.0 else "") + "; LOW:HIGH: drawn each episode",
        follows=follows, scale=scale) for side in SIDES)


DECLARED: tuple[DesignParameter, ...] = (
    DesignParameter("leg_length", 34.0, SEGMENT_LENGTH_BOUNDS, "drawing units",
                    "length of both segments (thigh and shin) of both legs {range}, unless "
                    "--thigh_length or --shin_length says otherwise; LOW:HIGH (e.g. 24:46): a new "
                    "length each episode, observed by the policy (a design-conditioned policy); "
                    "a policy conditioned on it is told the mean of thigh and shin"),
    DesignParameter("thigh_length", None, SEGMENT_LENGTH_BOUNDS, "drawing units",
                    "length of the upper leg segment of both legs {range}; none: leg_length; "
                    "LOW:HIGH: drawn each episode; observed: the mean of the two thighs",
                    follows="leg_length"),
    DesignParameter("shin_length", None, SEGMENT_LENGTH_BOUNDS, "drawing units",
                    "length of the lower leg segment of both legs {range}, at most twice the "
                    "thigh (ranges: only such bodies are drawn); none: leg_length; LOW:HIGH: "
                    "drawn each episode; observed: the mean of the two shins",
                    follows="leg_length"),
    DesignParameter("leg_width", DEFAULT_LEG_WIDTH, THIGH_WIDTH_BOUNDS, "drawing units",
                    "width of both thighs {range} (the shins are 0.8 of it; Gymnasium's is 8); "
                    "LOW:HIGH: drawn each episode; observed: the mean of the two thighs' widths"),
    DesignParameter("motor_torque", float(MOTORS_TORQUE), (20.0, 200.0), "",
                    "maximum torque of hip and knee motors {range} (Gymnasium's is 80; the "
                    "torque's energy cost scales with it); LOW:HIGH: drawn each episode"),
    # Ha (2018)'s eight: each segment of each leg on its own (left: Gymnasium's first leg).
    *_per_leg("thigh_length", "length of the thigh", "thigh_length", SEGMENT_LENGTH_BOUNDS),
    *_per_leg("shin_length", "length of the shin (at most twice its thigh)", "shin_length",
              SEGMENT_LENGTH_BOUNDS),
    *_per_leg("thigh_width", "width of the thigh", "leg_width", THIGH_WIDTH_BOUNDS),
    *_per_leg("shin_width", "width of the shin", "leg_width", SHIN_WIDTH_BOUNDS,
              scale=SHIN_WIDTH_FRACTION),
)
"""The walker's design parameters, in Gymnasium's units: lengths and widths in drawing units
(1/SCALE world units), torque as Gymnasium's MOTORS_TORQUE. The body is built from those no
other parameter follows (BODY_PARAMETERS: each segment of each leg, and the torque); the others
are shorthands that set several at once. The order is the order in which ranged parameters are
drawn at a reset and appended to the observation: new parameters go at the end, so that the
draws and observations of existing policies stay as they were."""

PARAMETERS: dict[str, DesignParameter] = {p.name: p for p in DECLARED}
DESIGN_PARAMETERS: dict[str, tuple[float, float]] = {p.name: p.bounds for p in DECLARED}
"""Name -> supported range."""
DESIGN_DEFAULTS: dict[str, float | None] = {p.name: p.default for p in DECLARED}
"""The default walker's design (Gymnasium's body); None: follows another parameter."""
LEG_LENGTH_RANGE = DESIGN_PARAMETERS["leg_length"]
FOLLOWERS: dict[str, tuple[str, ...]] = {
    p.name: tuple(q.name for q in DECLARED if q.follows == p.name) for p in DECLARED}
"""Parameter -> the parameters that follow it when they are not given."""
BODY_PARAMETERS = tuple(name for name, followers in FOLLOWERS.items() if not followers)
"""The dimensions of a built body (`WalkerDesign`'s fields): each segment's length and width on
each side, and the motor torque."""
SHORTHANDS = tuple(name for name in DESIGN_PARAMETERS if name not in BODY_PARAMETERS)

MAX_SHIN_TO_THIGH = 2.0
"""A shin at most twice its thigh: a longer one under a short thigh starts with its feet in the
air (measured: thigh 10 with shin 30, thigh 14 with shin 45)."""

MAX_DRAWS = 1000
"""Draws of a ranged body before giving up on one that stands (see the walker's draw)."""

DESIGN_DRAWS = ("uniform", "edges")
"""How a ranged parameter is drawn at each reset (--design_draw): uniformly in its range; or, to
visit the box's faces and corners more often, at one of its ends with EDGE_PROBABILITY (either
end alike) and uniformly otherwise."""
EDGE_PROBABILITY = 0.5
"""A coin: with k ranged parameters a body lies at a corner of the box with probability 0.5**k
and has on average k/2 parameters at an end; a uniform draw reaches neither."""

COURSE_DEFAULTS = {"terrain_length_scale": 2.0, "fall_penalty": -50.0, "max_time_steps": 1500}
"""The default course: twice Gymnasium's length, a fall penalty of -50 (Gymnasium: -100), 1,500
steps (Gymnasium: 1,600). The walker, its checks and the flags take their defaults from here."""
GYMNASIUM_COURSE = {"terrain_length_scale": 1.0, "fall_penalty": -100.0, "max_time_steps": 1600}
"""Gymnasium's own course (BipedalWalker-v3: 200 terrain steps, -100 for a fall, registered with
max_episode_steps=1600), the one Ha (2018) scored on: docs/ha2018.md."""
MIN_TERRAIN_LENGTH_SCALE = (TERRAIN_STARTPAD + TERRAIN_GRASS + 1) / TERRAIN_LENGTH
"""Below this the finish line would lie on the start pad."""
MAX_TERRAIN_LENGTH_SCALE = 100.0
"""A course 100 times Gymnasium's: building it takes about a second per reset and 13 MB per
walker; far longer courses only hang the study building terrain no episode reaches the end of."""
MAX_ABS_FALL_PENALTY = 1e6
"""Larger penalties overflow the reward scaling's running variance (it squares returns)."""
MAX_TIME_STEPS = 10**7
"""Episode lengths far beyond any course: a standing walker would never end its episode."""


@dataclass(frozen=True)
class WalkerDesign:
    """One body: what the physics is built from. Lengths and widths in drawing units."""

    left_thigh_length: float
    right_thigh_length: float
    left_shin_length: float
    right_shin_length: float
    left_thigh_width: float
    right_thigh_width: float
    left_shin_width: float
    right_shin_width: float
    motor_torque: float

    @classmethod
    def from_parameters(cls, values: Mapping[str, float | None]) -> WalkerDesign:
        """Each body dimension: its own value if given (not None), else what it follows."""
        def resolve(name: str) -> float:
            value = values.get(name)
            if value is not None:
                return float(value)
            parameter = PARAMETERS[name]
            return parameter.scale * resolve(parameter.follows)

        return cls(**{name: resolve(name) for name in BODY_PARAMETERS})

    def value(self, name: str) -> float:
        """The body's value of design parameter `name`, what a design input observes: a body
        dimension's own; a shorthand's, the mean of the parameters that follow it at full scale
        (thigh_length: of the two thighs; leg_length: of thigh_length and shin_length;
        leg_width: of the two thighs' widths), which is its value for a body it built."""
        if name in BODY_PARAMETERS:
            return float(getattr(self, name))
        parts = [self.value(follower) for follower in FOLLOWERS[name]
                 if PARAMETERS[follower].scale == 1.0]
        return sum(parts) / len(parts)

    def leg(self, side: str) -> tuple[float, float, float, float]:
        """(thigh length, shin length, thigh width, shin width) of the `side` leg."""
        return (getattr(self, f"{side}_thigh_length"), getattr(self, f"{side}_shin_length"),
                getattr(self, f"{side}_thigh_width"), getattr(self, f"{side}_shin_width"))

    @property
    def leg_length(self) -> float:
        """The mean of the segments: the leg length of a body whose segments are all equal, and
        what a policy conditioned on `leg_length` is told of any other."""
        return self.value("leg_length")

    @property
    def thigh_length(self) -> float:
        return self.value("thigh_length")

    @property
    def shin_length(self) -> float:
        return self.value("shin_length")

    @property
    def leg_width(self) -> float:
        return self.value("leg_width")

    @property
    def stands(self) -> bool:
        """Whether the body starts standing: on each leg, a shin at most MAX_SHIN_TO_THIGH times
        its thigh."""
        return all(shin <= MAX_SHIN_TO_THIGH * thigh
                   for thigh, shin, _, _ in map(self.leg, SIDES))


def scale_to_unit(value: float, low: float, high: float) -> float:
    """`value` in [low, high] -> [-1, 1]; 0 for a degenerate range."""
    return 0.0 if high == low else 2.0 * (value - low) / (high - low) - 1.0


def draw_value(rng: np.random.Generator, low: float, high: float, how: str) -> float:
    """One ranged parameter's value for a new body (`how`: one of DESIGN_DRAWS). The uniform
    draw is one `rng.uniform` call, as it always was: seeds replay the same bodies."""
    if how == "edges":
        coin = rng.random()
        if coin < EDGE_PROBABILITY:
            return float(low if coin < EDGE_PROBABILITY / 2 else high)
    return float(rng.uniform(low, high))


class InvalidWalkerArgument(ValueError):
    """An argument the walker cannot use; `argument` names it, so callers can name their flag."""

    def __init__(self, argument: str, allowed: str, value: object) -> None:
        super().__init__(f"{argument} must be {allowed}, got {value}")
        self.argument = argument
        self.allowed = allowed
        self.value = value


def check_walker_arguments(
    terrain_length_scale: float = COURSE_DEFAULTS["terrain_length_scale"],
    fall_penalty: float = COURSE_DEFAULTS["fall_penalty"],
    max_time_steps: int = COURSE_DEFAULTS["max_time_steps"],
    design_ranges: Mapping[str, Sequence[float]] | None = None,
    design_inputs: Mapping[str, Sequence[float]] | None = None,
    design_draw: str = DESIGN_DRAWS[0],
    **design: float | None,
) -> None:
    """Raise InvalidWalkerArgument naming the allowed range for any argument we cannot use."""
    for name in design:
        if name not in DESIGN_DEFAULTS:
            raise InvalidWalkerArgument("design", f"keyed by design parameters "
                                        f"({', '.join(DESIGN_DEFAULTS)})", name)
    design = {name: design.get(name, default) for name, default in DESIGN_DEFAULTS.items()}
    for name, value in design.items():
        if value is not None:
            check_design_value(name, value)
    for argument, ranges in (("design_ranges", design_ranges), ("design_inputs", design_inputs)):
        if ranges is not None and not isinstance(ranges, Mapping):
            raise InvalidWalkerArgument(argument, "a mapping of design parameters to ranges",
                                        ranges)
        for name, bounds in (ranges or {}).items():
            check_design_range(argument, name, bounds)
    if design_draw not in DESIGN_DRAWS:
        raise InvalidWalkerArgument("design_draw", f"one of {', '.join(DESIGN_DRAWS)}",
                                    design_draw)
    check_proportions(design, design_ranges or {})
    if not (math.isfinite(terrain_length_scale)
            and MIN_TERRAIN_LENGTH_SCALE <= terrain_length_scale <= MAX_TERRAIN_LENGTH_SCALE):
        raise InvalidWalkerArgument("terrain_length_scale",
                                    f"a number in [{MIN_TERRAIN_LENGTH_SCALE:g}, "
                                    f"{MAX_TERRAIN_LENGTH_SCALE:g}]", terrain_length_scale)
    if not (math.isfinite(fall_penalty) and abs(fall_penalty) <= MAX_ABS_FALL_PENALTY):
        raise InvalidWalkerArgument("fall_penalty", f"a number in [{-MAX_ABS_FALL_PENALTY:g}, "
                                    f"{MAX_ABS_FALL_PENALTY:g}]", fall_penalty)
    if not (math.isfinite(max_time_steps) and int(max_time_steps) == max_time_steps
            and 1 <= max_time_steps <= MAX_TIME_STEPS):
        raise InvalidWalkerArgument("max_time_steps", f"an integer in [1, {MAX_TIME_STEPS:g}]",
                                    max_time_steps)


def check_design_value(name: str, value: float) -> None:
    low, high = DESIGN_PARAMETERS[name]
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and low <= value <= high):
        raise InvalidWalkerArgument(name, f"a number in [{low:g}, {high:g}]", value)


def check_design_range(argument: str, name: str, bounds: Sequence[float]) -> None:
    """A (low, high) pair of a known design parameter, inside its supported range."""
    if name not in DESIGN_PARAMETERS:
        raise InvalidWalkerArgument(argument, f"keyed by design parameters "
                                    f"({', '.join(DESIGN_PARAMETERS)})", name)
    if not (isinstance(bounds, Sequence | np.ndarray) and len(bounds) == 2):
        raise InvalidWalkerArgument(name, "a (low, high) range", bounds)
    for value in bounds:
        check_design_value(name, value)
    if bounds[0] > bounds[1]:
        raise InvalidWalkerArgument(name, "a range LOW:HIGH with LOW <= HIGH",
                                    f"{bounds[0]:g}:{bounds[1]:g}")
    if argument == "design_inputs" and bounds[0] == bounds[1]:
        # An input scaled from a single point would read 0 whatever the design.
        raise InvalidWalkerArgument(name, "an input range LOW:HIGH with LOW < HIGH",
                                    f"{bounds[0]:g}:{bounds[1]:g}")


# --- The design as an affine map of its draws -------------------------------------------------


@dataclass(frozen=True)
class DesignMap:
    """Every design parameter's value (what its design input observes) as an affine function of
    the values drawn for the ranged parameters: `offset[name] + coefficients[name] @ draws`.

    Read off `WalkerDesign` itself (at draws 0 and each unit draw), so it cannot disagree with
    the body the walker builds; from it follow the spans of every parameter, whether two
    dimensions are always equal, and the draws behind an observation."""

    ranges: dict[str, tuple[float, float]]
    offset: dict[str, float]
    coefficients: dict[str, np.ndarray]

    def span(self, name: str) -> tuple[float, float]:
        """The least and the greatest value of `name` over the box of draws."""
        low = high = self.offset[name]
        for coefficient, (draw_low, draw_high) in zip(self.coefficients[name],
                                                      self.ranges.values(), strict=True):
            ends = (coefficient * draw_low, coefficient * draw_high)
            low, high = low + min(ends), high + max(ends)
        return round(low, 9), round(high, 9)

    def always_equal(self, first: str, second: str) -> bool:
        return (math.isclose(self.offset[first], self.offset[second], abs_tol=1e-9)
                and np.allclose(self.coefficients[first], self.coefficients[second], atol=1e-9))

    def minimum(self, weights: Mapping[str, float]) -> tuple[float, np.ndarray]:
        """The least value of sum(weight x parameter) over the box, and the draws giving it."""
        total = sum(weight * self.offset[name] for name, weight in weights.items())
        slope = sum(weight * self.coefficients[name] for name, weight in weights.items())
        draws = np.array([low if s >= 0 else high
                          for s, (low, high) in zip(slope, self.ranges.values(), strict=True)])
        return float(total + np.dot(slope, draws)), draws

    def at(self, name: str, draws: np.ndarray) -> float:
        return float(self.offset[name] + np.dot(self.coefficients[name], draws))


def design_map(design: Mapping[str, float | None],
               design_ranges: Mapping[str, Sequence[float]]) -> DesignMap:
    """The DesignMap of a walker given fixed values `design` (missing: defaults) and ranges."""
    ranges = ordered_ranges(design_ranges)
    fixed = {name: design.get(name, default) for name, default in DESIGN_DEFAULTS.items()}

    def values(draws: Sequence[float]) -> np.ndarray:
        body = WalkerDesign.from_parameters({**fixed, **dict(zip(ranges, draws, strict=True))})
        return np.array([body.value(name) for name in DESIGN_PARAMETERS])

    base = values([0.0] * len(ranges))
    slopes = [values(np.eye(len(ranges))[j]) - base for j in range(len(ranges))]
    matrix = np.array(slopes).T if slopes else np.zeros((len(base), 0))
    return DesignMap(ranges, dict(zip(DESIGN_PARAMETERS, base.tolist(), strict=True)),
                     dict(zip(DESIGN_PARAMETERS, matrix, strict=True)))


def settings_map(settings: Mapping[str, Any]) -> DesignMap:
    """The DesignMap of walker settings (constructor arguments, as checkpoints record them)."""
    return design_map({name: settings.get(name, default)
                       for name, default in DESIGN_DEFAULTS.items()},
                      settings.get("design_ranges") or {})


def given(design: Mapping[str, float | None], ranges: Mapping[str, Sequence[float]],
          name: str) -> bool:
    """Whether `name` has a value or a range of its own (else it follows another)."""
    return design.get(name, DESIGN_DEFAULTS[name]) is not None or name in ranges


def overriders(design: Mapping[str, float | None], ranges: Mapping[str, Sequence[float]],
               name: str) -> list[str]:
    """The given parameters below `name` that stop it from reaching the body."""
    found = []
    for follower in FOLLOWERS[name]:
        found += [follower] if given(design, ranges, follower) else overriders(design, ranges,
                                                                               follower)
    return found


def reaches_body(design: Mapping[str, float | None], ranges: Mapping[str, Sequence[float]],
                 name: str) -> bool:
    """Whether some body dimension takes its value from `name`."""
    return name in BODY_PARAMETERS or any(
        not given(design, ranges, follower) and reaches_body(design, ranges, follower)
        for follower in FOLLOWERS[name])


def per_leg_given(settings: Mapping[str, Any]) -> bool:
    """Whether the settings set some segment of one leg on its own."""
    ranges = settings.get("design_ranges") or {}
    return any(given(settings, ranges, name) for name in BODY_PARAMETERS
               if name != "motor_torque")


def check_proportions(design: Mapping[str, float | None],
                      design_ranges: Mapping[str, Sequence[float]]) -> None:
    """Every body must start standing (on each leg a shin at most MAX_SHIN_TO_THIGH times its
    thigh): a fixed body must, and ranges must hold such bodies, which are the only ones drawn
    (each leg is checked on its own: ranges shared by both legs that no body satisfies on both
    at once end in the draw's fallback). A ranged parameter must also change the body: not
    with every parameter that follows it given."""
    for name in design_ranges:
        if not reaches_body(design, design_ranges, name):
            others = overriders(design, design_ranges, name)
            are = "are both" if len(others) == 2 else "are all"
            raise InvalidWalkerArgument(
                name, f"a single value when {' and '.join(others)} {are} given (a range could "
                "not change the body)", "{:g}:{:g}".format(*design_ranges[name]))
    mapped = design_map(design, design_ranges)
    per_leg = per_leg_given(design | {"design_ranges": design_ranges})
    for side in SIDES:
        thigh, shin = f"{side}_thigh_length", f"{side}_shin_length"
        excess, draws = mapped.minimum({shin: 1.0, thigh: -MAX_SHIN_TO_THIGH})
        if excess <= 1e-9:
            continue
        if mapped.ranges:
            allowed = "for some drawn body, so that walkers start standing"
        else:
            allowed = "so the walker starts standing"
        argument = (thigh, shin) if per_leg else ("thigh_length", "shin_length")
        raise InvalidWalkerArgument(
            argument[1], f"at most {MAX_SHIN_TO_THIGH:g} x {argument[0]} "
            f"({mapped.at(thigh, draws):g}) {allowed}", round(mapped.at(shin, draws), 9))


def ordered_ranges(ranges: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """In DESIGN_PARAMETERS order, so that draws and observation layout do not depend on how the
    caller ordered its dict."""
    return {name: (float(ranges[name][0]), float(ranges[name][1]))
            for name in DESIGN_PARAMETERS if name in ranges}


def observed_inputs(design_ranges: Mapping[str, Sequence[float]] | None,
                    design_inputs: Mapping[str, Sequence[float]] | None
                    ) -> dict[str, tuple[float, float]]:
    """What a walker appends to its observations: its design inputs if it was given some (a
    conditioned policy's layout), else its own ranges."""
    return ordered_ranges((design_ranges or {}) if design_inputs is None else design_inputs)


# --- Designs described and compared -----------------------------------------------------------


def design_of(settings: Mapping[str, Any]) -> dict[str, str]:
    """The design in walker settings (constructor arguments, as checkpoints record them) as
    text: parameter -> '34' or '24:46' (a range), for each parameter that is given and reaches
    the body. Missing parameters (older checkpoints) take their defaults; a parameter that
    follows another is left out, and so is a shorthand whose followers are all given (it then
    changes nothing in the body)."""
    ranges = settings.get("design_ranges") or {}
    design = {}
    for name, default in DESIGN_DEFAULTS.items():
        if not (given(settings, ranges, name) and reaches_body(settings, ranges, name)):
            continue
        if name in ranges:
            design[name] = "{:g}:{:g}".format(*ranges[name])
        else:
            design[name] = f"{settings.get(name, default):g}"
    return design


def compared_names(*walkers: Mapping[str, Any]) -> list[str]:
    """The parameters in which walkers are compared: each leg's dimensions where one of them
    sets a leg on its own; else the symmetric ones (leg_length for thigh and shin where every
    walker's segments are all equal)."""
    if any(per_leg_given(settings) for settings in walkers):
        return list(BODY_PARAMETERS)
    if all(equal_segments(settings) for settings in walkers):
        return ["leg_length", "leg_width", "motor_torque"]
    return ["thigh_length", "shin_length", "leg_width", "motor_torque"]


def equal_segments(settings: Mapping[str, Any]) -> bool:
    """Whether every body the settings build has all four segments of one length."""
    mapped = settings_map(settings)
    lengths = [f"{side}_{segment}_length" for side in SIDES for segment in ("thigh", "shin")]
    return all(mapped.always_equal(lengths[0], other) for other in lengths[1:])


def symmetric(settings: Mapping[str, Any]) -> bool:
    """Whether every body the settings build has two equal legs."""
    mapped = settings_map(settings)
    return all(mapped.always_equal(f"left_{dimension}", f"right_{dimension}")
               for dimension in ("thigh_length", "shin_length", "thigh_width", "shin_width"))


def lineage(name: str) -> set[str]:
    """`name`, the shorthands it follows, and the parameters that follow it."""
    found, parameter = {name}, PARAMETERS[name]
    while parameter.follows is not None:
        found.add(parameter.follows)
        parameter = PARAMETERS[parameter.follows]
    below = list(FOLLOWERS[name])
    while below:
        follower = below.pop()
        found.add(follower)
        below += FOLLOWERS[follower]
    return found


def observes(inputs: Mapping[str, Any], name: str) -> bool:
    """Whether a policy with design `inputs` is told something of `name`."""
    return bool(lineage(name) & set(inputs))


def outside_training(policy_settings: Mapping[str, Any],
                     target_settings: Mapping[str, Any]) -> list[str]:
    """Where the walker `target_settings` build lies outside what a policy trained on
    `policy_settings` learned: 'motor_torque 100 outside 80 (not observed)' for each body
    dimension beyond its trained range or value, the segments when the policy only ever saw
    equal ones, and the legs when it only ever saw two equal legs. Empty: the target is
    inside."""
    inputs = observed_inputs(policy_settings.get("design_ranges"),
                             policy_settings.get("design_inputs"))
    trained, target = settings_map(policy_settings), settings_map(target_settings)
    tolerance = 1e-9
    found = []
    for name in compared_names(policy_settings, target_settings):
        (low, high), (target_low, target_high) = trained.span(name), target.span(name)
        if target_low < low - tolerance or target_high > high + tolerance:
            found.append(f"{name} {format_span(target.span(name))} outside "
                         f"{format_span(trained.span(name))}"
                         + ("" if observes(inputs, name) else " (not observed)"))
    if equal_segments(policy_settings) and not equal_segments(target_settings):
        told = " (it is told leg_length: their mean)" if "leg_length" in inputs else ""
        found.append(f"thigh_length {format_span(target.span('thigh_length'))} and shin_length "
                     f"{format_span(target.span('shin_length'))} outside equal segments{told}")
    if symmetric(policy_settings) and not symmetric(target_settings):
        differ = [f"{dimension} {format_span(target.span('left_' + dimension))} and "
                  f"{format_span(target.span('right_' + dimension))}"
                  for dimension in ("thigh_length", "shin_length", "thigh_width", "shin_width")
                  if not target.always_equal(f"left_{dimension}", f"right_{dimension}")]
        found.append(f"left and right legs differ ({'; '.join(differ)}) outside two equal legs "
                     f"(a symmetric design input is told the mean of the two)")
    return found


def outside_warning(policy: str, policy_settings: Mapping[str, Any],
                    target_settings: Mapping[str, Any]) -> str:
    """One line naming each way the target is outside what the policy learned; "" if none."""
    outside = outside_training(policy_settings, target_settings)
    return (f"warning: {policy} is used outside what it learned: {'; '.join(outside)}"
            if outside else "")


def format_span(span: tuple[float, float]) -> str:
    low, high = span
    return f"{low:g}" if low == high else f"{low:g}:{high:g}"


def describe_design(settings: Mapping[str, Any]) -> str:
    """E.g. 'leg_length 24:46, leg_width 8, motor_torque 80 (observes leg_length)'."""
    text = ", ".join(f"{name} {value}" for name, value in design_of(settings).items())
    inputs = observed_inputs(settings.get("design_ranges"), settings.get("design_inputs"))
    return text + (f" (observes {', '.join(inputs)})" if inputs else "")


def design_differences(source: Mapping[str, Any], target: Mapping[str, Any]) -> list[str]:
    """'leg_length 34 -> 30' for each body dimension in which two walkers differ, each side's
    value (a range: its span) read off the body it builds, in the names `compared_names`
    chooses: 'thigh_length 34 -> 30' rather than flags that follow or override others."""
    before, after = settings_map(source), settings_map(target)
    return [f"{name} {format_span(before.span(name))} -> {format_span(after.span(name))}"
            for name in compared_names(source, target) if before.span(name) != after.span(name)]


def designs_from_observations(observations: np.ndarray,
                              settings: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The body each observation was taken on: (n, obs_dim) observations of walkers built from
    `settings` (constructor arguments) -> parameter -> (n,) values: each body dimension, and
    each shorthand as its design input would observe it (leg_length: the mean segment).

    The draws of the ranged parameters are solved for from the design inputs (each episode's
    own, to 1e-4: the observation is float32); a value that depends on a draw the inputs do not
    determine is NaN; the rest are the fixed values in `settings`.
    """
    mapped = settings_map(settings)
    inputs = observed_inputs(settings.get("design_ranges"), settings.get("design_inputs"))
    names = list(inputs)
    scaled = observations[:, BODY_OBS_DIM:BODY_OBS_DIM + len(names)].astype(np.float64)
    lows = np.array([low for low, _ in inputs.values()])
    highs = np.array([high for _, high in inputs.values()])
    seen = lows + (scaled + 1.0) * 0.5 * (highs - lows)  # (n, inputs)
    matrix = np.array([mapped.coefficients[name] for name in names]).reshape(
        len(names), len(mapped.ranges))
    offsets = np.array([mapped.offset[name] for name in names])
    solve = np.linalg.pinv(matrix) if matrix.size else np.zeros((len(mapped.ranges), len(names)))
    draws = (seen - offsets) @ solve.T  # (n, ranged)
    known = np.all(np.isclose(solve @ matrix, np.eye(len(mapped.ranges)), atol=1e-6), axis=1) \
        if mapped.ranges else np.zeros(0, dtype=bool)
    values = {}
    for name in DESIGN_PARAMETERS:
        coefficients = mapped.coefficients[name]
        used = np.abs(coefficients) > 1e-12
        column = np.full(len(observations), mapped.offset[name])
        column += draws[:, used] @ coefficients[used] if used.any() else 0.0
        if (used & ~known).any():
            column[:] = np.nan
        values[name] = np.round(column, 4)
    return values

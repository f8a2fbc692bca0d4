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
    """None: a segment that follows `leg_length`."""
    bounds: tuple[float, float]
    """The supported range: every body inside starts standing (tests/test_design.py)."""
    unit: str
    help: str
    """The flag's help; `{range}` becomes the bounds."""

    def describe_help(self) -> str:
        low, high = self.bounds
        return self.help.replace("{range}", f"in [{low:g}, {high:g}] {self.unit}")


DEFAULT_LEG_WIDTH = 8.0
"""Gymnasium's LEG_W in drawing units; the shin is 0.8 of it wide, as there."""

DECLARED: tuple[DesignParameter, ...] = (
    DesignParameter("leg_length", 34.0, (10.0, 70.0), "drawing units",
                    "length of both segments (thigh and shin) of both legs {range}, unless "
                    "--thigh_length or --shin_length says otherwise; LOW:HIGH (e.g. 24:46): a new "
                    "length each episode, observed by the policy (a design-conditioned policy); "
                    "a policy conditioned on it is told the mean of thigh and shin"),
    DesignParameter("thigh_length", None, (10.0, 70.0), "drawing units",
                    "length of the upper leg segment {range}; none: leg_length; LOW:HIGH: drawn "
                    "each episode"),
    DesignParameter("shin_length", None, (10.0, 70.0), "drawing units",
                    "length of the lower leg segment {range}, at most twice the thigh (ranges: "
                    "only such bodies are drawn); none: leg_length; LOW:HIGH: drawn each episode"),
    DesignParameter("leg_width", DEFAULT_LEG_WIDTH, (2.0, 20.0), "drawing units",
                    "width of the thigh {range} (the shin is 0.8 of it; Gymnasium's is 8); "
                    "LOW:HIGH: drawn each episode"),
    DesignParameter("motor_torque", float(MOTORS_TORQUE), (20.0, 200.0), "",
                    "maximum torque of hip and knee motors {range} (Gymnasium's is 80; the "
                    "torque's energy cost scales with it); LOW:HIGH: drawn each episode"),
)
"""The walker's design parameters, in Gymnasium's units: lengths and widths in drawing units
(1/SCALE world units), torque as Gymnasium's MOTORS_TORQUE. The order is the order in which
ranged parameters are drawn at a reset and appended to the observation."""

DESIGN_PARAMETERS: dict[str, tuple[float, float]] = {p.name: p.bounds for p in DECLARED}
"""Name -> supported range."""
DESIGN_DEFAULTS: dict[str, float | None] = {p.name: p.default for p in DECLARED}
"""The default walker's design (Gymnasium's body); None: the segment follows leg_length."""
LEG_LENGTH_RANGE = DESIGN_PARAMETERS["leg_length"]
BODY_PARAMETERS = ("thigh_length", "shin_length", "leg_width", "motor_torque")
"""The dimensions of a built body (`WalkerDesign`'s fields); leg_length only sets segments."""

MAX_SHIN_TO_THIGH = 2.0
"""A shin at most twice the thigh: a longer one under a short thigh starts with its feet in the
air (measured: thigh 10 with shin 30, thigh 14 with shin 45)."""

MAX_DRAWS = 1000
"""Draws of a ranged body before giving up on one that stands (see `_draw_design`)."""

COURSE_DEFAULTS = {"terrain_length_scale": 2.0, "fall_penalty": -50.0, "max_time_steps": 1500}
"""The default course: twice Gymnasium's length, a fall penalty of -50 (Gymnasium: -100), 1,500
steps (Gymnasium: 1,600). The walker, its checks and the flags take their defaults from here."""
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
    """One body: what the physics is built from. Lengths and width in drawing units."""

    thigh_length: float
    shin_length: float
    leg_width: float
    motor_torque: float

    @classmethod
    def from_parameters(cls, values: Mapping[str, float]) -> WalkerDesign:
        """`thigh_length` and `shin_length` default to `leg_length` (both segments)."""
        def segment(name: str) -> float:
            value = values.get(name)
            return float(values["leg_length"] if value is None else value)

        return cls(segment("thigh_length"), segment("shin_length"), float(values["leg_width"]),
                   float(values["motor_torque"]))

    @property
    def leg_length(self) -> float:
        """The mean of the two segments: the leg length of a body whose segments are equal, and
        what a policy conditioned on `leg_length` is told of a body whose segments differ."""
        return (self.thigh_length + self.shin_length) / 2

    def value(self, name: str) -> float:
        """The body's value of design parameter `name` (what a design input observes)."""
        return float(getattr(self, name))

    @property
    def stands(self) -> bool:
        """Whether the body starts standing: a shin at most MAX_SHIN_TO_THIGH times the thigh."""
        return self.shin_length <= MAX_SHIN_TO_THIGH * self.thigh_length


def scale_to_unit(value: float, low: float, high: float) -> float:
    """`value` in [low, high] -> [-1, 1]; 0 for a degenerate range."""
    return 0.0 if high == low else 2.0 * (value - low) / (high - low) - 1.0


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


def check_proportions(design: Mapping[str, float | None],
                      design_ranges: Mapping[str, Sequence[float]]) -> None:
    """Every body must start standing (a shin at most MAX_SHIN_TO_THIGH times its thigh): a
    fixed body must, and ranges must hold such bodies, which are the only ones drawn (a segment
    that follows `leg_length` takes its value or range). A `leg_length` range must also change
    the body: not with both segments set."""
    def follows_leg(name: str) -> bool:
        return design[name] is None and name not in design_ranges

    def extreme(name: str, end: int) -> float:
        source = "leg_length" if follows_leg(name) else name
        return float(design_ranges[source][end] if source in design_ranges else design[source])

    if "leg_length" in design_ranges and not (follows_leg("thigh_length")
                                              or follows_leg("shin_length")):
        raise InvalidWalkerArgument(
            "leg_length", "a single value when thigh_length and shin_length are both given "
            "(a range could not change the body)",
            "{:g}:{:g}".format(*design_ranges["leg_length"]))
    if follows_leg("thigh_length") and follows_leg("shin_length"):
        return  # equal segments
    if not ranged_body(design_ranges):
        shortest_thigh, longest_shin = extreme("thigh_length", 0), extreme("shin_length", 1)
        allowed = f"({shortest_thigh:g}) so the walker starts standing"
    else:  # the shortest shin under the longest thigh is the body most likely to stand
        shortest_thigh, longest_shin = extreme("thigh_length", 1), extreme("shin_length", 0)
        allowed = f"({shortest_thigh:g}) for some drawn body, so that walkers start standing"
    if longest_shin > MAX_SHIN_TO_THIGH * shortest_thigh:
        raise InvalidWalkerArgument(
            "shin_length", f"at most {MAX_SHIN_TO_THIGH:g} x thigh_length {allowed}",
            longest_shin)


def ranged_body(design_ranges: Mapping[str, Sequence[float]]) -> bool:
    """Whether the segment lengths are drawn (a range of leg_length, thigh or shin)."""
    return any(name in design_ranges for name in ("leg_length", "thigh_length", "shin_length"))


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


def design_of(settings: Mapping[str, Any]) -> dict[str, str]:
    """The design in walker settings (constructor arguments, as checkpoints record them) as
    text: parameter -> '34' or '24:46' (a range). Missing parameters (older checkpoints) take
    their defaults; a segment that follows leg_length is left out, and so is leg_length when
    both segments are set (it then changes nothing in the body)."""
    ranges = settings.get("design_ranges") or {}
    design = {}
    for name, default in DESIGN_DEFAULTS.items():
        if name in ranges:
            low, high = ranges[name]
            design[name] = f"{low:g}:{high:g}"
        elif (value := settings.get(name, default)) is not None:
            design[name] = f"{value:g}"
    if "thigh_length" in design and "shin_length" in design:
        del design["leg_length"]
    return design


def body_ranges(settings: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The range of each body dimension (BODY_PARAMETERS) the walker settings build: (v, v)
    for a fixed one. A segment that follows leg_length takes its value or range."""
    ranges = settings.get("design_ranges") or {}

    def span(name: str) -> tuple[float, float]:
        if name in ranges:
            return float(ranges[name][0]), float(ranges[name][1])
        value = settings.get(name, DESIGN_DEFAULTS[name])
        return span("leg_length") if value is None else (float(value), float(value))

    return {name: span(name) for name in BODY_PARAMETERS}


def equal_segments(settings: Mapping[str, Any]) -> bool:
    """Whether every body the settings build has thigh = shin."""
    ranges = settings.get("design_ranges") or {}
    follows = [settings.get(name) is None and name not in ranges
               for name in ("thigh_length", "shin_length")]
    if all(follows):
        return True
    spans = body_ranges(settings)
    return spans["thigh_length"] == spans["shin_length"] and not any(
        name in ranges for name in ("thigh_length", "shin_length", "leg_length"))


def outside_training(policy_settings: Mapping[str, Any],
                     target_settings: Mapping[str, Any]) -> list[str]:
    """Where the walker `target_settings` build lies outside what a policy trained on
    `policy_settings` learned: 'motor_torque 100 outside 80 (not observed)' for each body
    dimension beyond its trained range or value, and the segments when the policy only ever saw
    equal ones. Empty: the target is inside."""
    inputs = observed_inputs(policy_settings.get("design_ranges"),
                             policy_settings.get("design_inputs"))
    trained, target = body_ranges(policy_settings), body_ranges(target_settings)
    tolerance = 1e-9
    found = []
    names = list(BODY_PARAMETERS)
    if equal_segments(policy_settings) and equal_segments(target_settings):
        # One leg length on both sides: say it as the policy was trained, once.
        names.remove("shin_length")
        trained["leg_length"] = trained["thigh_length"]
        target["leg_length"] = target["thigh_length"]
        names[0] = "leg_length"
    for name in names:
        (low, high), (target_low, target_high) = trained[name], target[name]
        if target_low < low - tolerance or target_high > high + tolerance:
            observed = name in inputs or (name in ("leg_length", "thigh_length", "shin_length")
                                          and "leg_length" in inputs)
            found.append(f"{name} {format_span(target[name])} outside "
                         f"{format_span(trained[name])}" + ("" if observed else " (not observed)"))
    if equal_segments(policy_settings) and not equal_segments(target_settings):
        told = " (it is told leg_length: their mean)" if "leg_length" in inputs else ""
        found.append(f"thigh_length {format_span(target['thigh_length'])} and shin_length "
                     f"{format_span(target['shin_length'])} outside equal segments{told}")
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
    """'leg_length 34 -> 30' for each design parameter in which two walkers differ."""
    before, after = design_of(source), design_of(target)

    def shown(design: dict[str, str], name: str) -> str:
        return design.get(name, "(both segments set)" if name == "leg_length" else "=leg_length")

    return [f"{name} {shown(before, name)} -> {shown(after, name)}"
            for name in DESIGN_DEFAULTS if before.get(name) != after.get(name)]


def designs_from_observations(observations: np.ndarray,
                              settings: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The body each observation was taken on: (n, obs_dim) observations of walkers built from
    `settings` (constructor arguments) -> parameter -> (n,) values of the body: its segments, and
    as `leg_length` their mean (what a policy conditioned on leg_length is told).

    Ranged parameters are read back from the design inputs (each episode's own draw, to 1e-4:
    the observation is float32); the rest are the fixed values in `settings`.
    """
    ranges = settings.get("design_ranges") or {}
    inputs = observed_inputs(ranges, settings.get("design_inputs"))
    values = {}
    for name, default in DESIGN_DEFAULTS.items():
        value = settings.get(name, default)
        values[name] = np.full(len(observations), np.nan if value is None else float(value))
    observed = {}
    for column, (name, (low, high)) in enumerate(inputs.items(), start=BODY_OBS_DIM):
        if name in ranges:
            scaled = observations[:, column].astype(np.float64)
            observed[name] = low + (scaled + 1.0) * 0.5 * (high - low)
    values.update(observed)
    thigh, shin = values["thigh_length"], values["shin_length"]
    if "leg_length" in observed:  # the mean segment: a segment that follows it is what is left
        mean = observed["leg_length"]
        thigh, shin = (np.where(np.isnan(thigh), np.where(np.isnan(shin), mean, 2 * mean - shin),
                                thigh),
                       np.where(np.isnan(shin), np.where(np.isnan(thigh), mean, 2 * mean - thigh),
                                shin))
    else:
        thigh = np.where(np.isnan(thigh), values["leg_length"], thigh)
        shin = np.where(np.isnan(shin), values["leg_length"], shin)
    values.update(thigh_length=thigh, shin_length=shin, leg_length=(thigh + shin) / 2)
    values = {name: np.round(column, 4) for name, column in values.items()}
    return values

"""The design space: which parameters are searched (ranges) and which are fixed, checked against
what the policy observes; leg area; the default body."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import envs
from designsearch.choices import DESIGN_FLAGS
from designsearch.project import UsageError
from envs.design import check_design_value


def leg_area(design: Mapping[str, float | None]) -> float:
    """Both legs' side area in drawing units squared: each segment's length x width, summed
    (segments follow the shorthands the design leaves them to)."""
    body = envs.WalkerDesign.from_parameters({**envs.DESIGN_DEFAULTS, **design})
    return sum(thigh * thigh_width + shin * shin_width
               for thigh, shin, thigh_width, shin_width in map(body.leg, ("left", "right")))


def check_space(ranges: dict[str, tuple[float, float]], fixed: dict[str, float],
                observed: Mapping[str, list[float]], policy_name: str) -> None:
    """Raise a one-line UsageError naming the flag for a space the policy cannot search."""
    for name, value in fixed.items():  # a bad value is named before what the space lacks
        try:
            check_design_value(name, value)
        except envs.InvalidWalkerArgument as error:
            raise walker_argument_error(error) from None
    if not ranges:
        seen = " ".join(f"--{name}={low:g}:{high:g}" for name, (low, high) in observed.items())
        raise UsageError(f"--{DESIGN_FLAGS[0]}: give at least one design flag as a range "
                         f"LOW:HIGH to search ({policy_name} observes: "
                         f"{seen or 'nothing: it is a fixed-design policy'})")
    for name, (low, high) in ranges.items():
        if name not in observed:
            seen = ", ".join(observed) or "no design parameter (a fixed-design policy)"
            raise UsageError(f"--{name}: {policy_name} observes {seen}, not {name}: a search "
                             f"over {low:g}:{high:g} would give it bodies it cannot tell apart; "
                             f"give a fixed value, or a policy conditioned on {name}")
        if not low < high:
            raise UsageError(f"--{name}: a range to search needs LOW < HIGH, got "
                             f"{low:g}:{high:g}")
    try:
        envs.check_walker_arguments(
            **{**{name: envs.DESIGN_DEFAULTS[name] for name in DESIGN_FLAGS}, **fixed},
            design_ranges=ranges)
    except envs.InvalidWalkerArgument as error:
        raise walker_argument_error(error) from None


def walker_argument_error(error: envs.InvalidWalkerArgument) -> UsageError:
    return UsageError(f"--{error.argument}: must be {error.allowed}, got {error.value}")


def outside_warning(policy_file: str, policy_env: Mapping[str, object],
                    ranges: dict[str, tuple[float, float]], fixed: dict[str, float]) -> str:
    """run.py's `warning: POLICY is used outside what it learned: ...` for a search space that
    reaches beyond the designs the policy was trained on; "" if it stays inside."""
    if not policy_env:
        return ""
    return envs.outside_warning(policy_file, policy_env, {**fixed, "design_ranges": ranges})


def default_values(names: Iterable[str]) -> dict[str, float]:
    """The default walker's value of each named design parameter (one that follows another
    takes the value its design input would observe: the default body's)."""
    body = envs.WalkerDesign.from_parameters(envs.DESIGN_DEFAULTS)
    return {name: body.value(name) for name in names}


def default_body(ranges: dict[str, tuple[float, float]]) -> dict[str, float] | None:
    """The default walker's values of the searched parameters, if it lies inside the ranges
    (the search evaluates it first, as the baseline), else None."""
    baseline = default_values(ranges)
    inside = all(low <= baseline[name] <= high for name, (low, high) in ranges.items())
    return baseline if inside else None


def stands(design: Mapping[str, float]) -> bool:
    """Whether the walker can build the body and start it standing (envs' rule, on each leg):
    a box of independent per-leg lengths holds bodies that cannot."""
    return envs.WalkerDesign.from_parameters({**envs.DESIGN_DEFAULTS, **design}).stands


def full_design(params: Mapping[str, float], fixed: Mapping[str, float]) -> dict[str, float]:
    """Searched values over fixed ones: the design flags a candidate is evaluated with."""
    return {**fixed, **{name: float(value) for name, value in params.items()}}

"""The grid of a sweep: `--grid` axes and `--fixed` flags, the run.py flags of each point (the
`strategy` pseudo-flag resolved) and its save_name. Documented for users in `sweep.py`."""

from __future__ import annotations

import dataclasses
import re

from common.config import TRANSFER_FLAGS, TRANSFER_STRATEGIES, Config, names_a_model
from common.errors import UsageError

STRATEGY = "strategy"
SCRATCH = "scratch"
STRATEGIES = (SCRATCH, *TRANSFER_STRATEGIES)
CONFIG_FLAGS = tuple(spec.name for spec in dataclasses.fields(Config))
SWEEP_OWNED_FLAGS = ("save_name", "resume", "overwrite", "models_dir", "results_dir",
                     "tensorboard", "render", "record")
"""Flags the sweep sets itself; they cannot be put in --grid or --fixed (it skips, resumes or
starts each study itself, and never overwrites one)."""
TOKEN_PREFIXES = {"leg_length": "leg", "seed": "seed", STRATEGY: ""}


class SweepError(UsageError):
    """A grid the sweep cannot run (bad axis, missing initial model for a transfer strategy)."""


def split_values(text: str) -> list[str]:
    """`30,40` -> ['30', '40']; bracketed commas stay: `[32,32],[64]` -> ['[32,32]', '[64]']."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[(") - (char in "])")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    values.append(current.strip())
    if any(not value for value in values):
        raise SweepError(f"empty value in {text!r}")
    return values


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    flag, sep, value = text.partition("=")
    flag = flag.strip().removeprefix("--")
    if not sep or not flag or not value.strip():
        raise SweepError(f"{option} expects FLAG=VALUE, got {text!r}")
    known = (*CONFIG_FLAGS, STRATEGY) if option == "--grid" else CONFIG_FLAGS
    if flag not in known:
        raise SweepError(f"{option} {flag}: not a run.py flag")
    if flag in SWEEP_OWNED_FLAGS:
        raise SweepError(f"{option} {flag}: set by the sweep itself (use sweep.py --{flag} "
                         f"where it exists)")
    return flag, value.strip()


def parse_grid(grid_args: list[str], fixed_args: list[str]) -> tuple[dict[str, list[str]],
                                                                     dict[str, str]]:
    """`--grid` and `--fixed` texts -> ({axis: values} in order given, {flag: value})."""
    grid: dict[str, list[str]] = {}
    for text in grid_args:
        flag, values = parse_assignment(text, "--grid")
        if flag in grid:
            raise SweepError(f"--grid {flag}: given twice")
        values = split_values(values)
        if len(set(values)) != len(values):
            raise SweepError(f"--grid {flag}: repeated value in {values}")
        grid[flag] = values
    fixed: dict[str, str] = {}
    for text in fixed_args:
        flag, value = parse_assignment(text, "--fixed")
        if flag in grid:
            raise SweepError(f"--fixed {flag}: already a --grid axis")
        fixed[flag] = value
    if STRATEGY in grid:
        unknown = [value for value in grid[STRATEGY] if value not in STRATEGIES]
        if unknown:
            raise SweepError(f"--grid strategy: {unknown[0]!r} is not one of {STRATEGIES}")
        if "transfer_learning" in grid or "transfer_learning" in fixed:
            raise SweepError("--grid strategy sets --transfer_learning; do not give both")
        has_model = "initial_model" in grid or names_a_model(fixed.get("initial_model", "none"))
        if any(value != SCRATCH for value in grid[STRATEGY]) and not has_model:
            raise SweepError("--grid strategy: transfer strategies need --fixed "
                             "initial_model=NAME (the policy to transfer from)")
    return grid, fixed


def point_flags(point: dict[str, str], fixed: dict[str, str]) -> dict[str, str]:
    """The run.py flags of one grid point (strategy resolved), without the sweep's own flags."""
    flags = {**fixed, **{k: v for k, v in point.items() if k != STRATEGY}}
    strategy = point.get(STRATEGY)
    if strategy == SCRATCH:
        for flag in ("initial_model", *TRANSFER_FLAGS):
            flags.pop(flag, None)
    elif strategy is not None:
        flags["transfer_learning"] = strategy
    return flags


def format_number(value: str) -> str:
    """'30.0' -> '30', '30.50' -> '30.5', a range '24.0:46.0' -> '24:46' (one study, one
    name, however its numbers are written); anything else unchanged."""
    try:
        return ":".join(f"{float(part):g}" for part in value.split(":"))
    except ValueError:
        return value


def point_token(flag: str, value: str) -> str:
    """A file-name-safe token for one axis value: `leg30`, `seed2`, `hidden_layers-32-32`."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", format_number(value)).strip("-.") or "x"
    return TOKEN_PREFIXES[flag] + value if flag in TOKEN_PREFIXES else f"{flag}-{value}"


def save_name_of(name: str, point: dict[str, str]) -> str:
    return "__".join([name, *(point_token(flag, value) for flag, value in point.items())])

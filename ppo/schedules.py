"""A study's schedules in absolute frames: the exploration noise's decay, and when frozen layers
thaw (`freeze_then_thaw`; `transfer.freezing` applies it to the layers).

The flags give both as fractions of `--total_frames` (`--action_std_end`, `--tl_end`). A study
resolves them to frame numbers once, when it starts, and saves them with its checkpoint and
results. Extended later with a larger `--total_frames` (`--resume=true`), it carries on with
the frames it started with: the noise never jumps back up, and thawed layers stay thawed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol


class ScheduleSettings(Protocol):
    """What the schedules are resolved from: the study's configuration (`common.config.Config`)
    has these fields; the schedules need not know the rest of it."""

    @property
    def total_frames(self) -> int: ...
    @property
    def uses_schedule(self) -> bool:
        """Whether the noise decays (else a fixed `action_std`)."""
    @property
    def action_std(self) -> float: ...
    @property
    def action_std_start(self) -> float: ...
    @property
    def action_std_final(self) -> float: ...
    @property
    def action_std_end(self) -> float:
        """Fraction of `total_frames` over which the noise decays."""
    @property
    def transfer_learning(self) -> str: ...
    @property
    def tl_end(self) -> float:
        """freeze_then_thaw: fraction of `total_frames` by which every layer has thawed."""
    @property
    def hidden_layers(self) -> Sequence[int]: ...


def fraction_of(fraction: float, frames: int) -> Fraction:
    """`fraction` of `frames`, exactly as written (0.1 is 1/10, not the float just above it),
    so a threshold that lands on an update's frame count, as 0.1 * 1e6 does, is not missed
    by a batch."""
    return Fraction(str(fraction)) * frames


def thaw_frames(total_frames: int, tl_end: float, num_layers: int) -> tuple[int, ...]:
    """freeze_then_thaw: the first frame at which each frozen layer trains, nearest the output
    first. The `num_layers - 1` non-final layers thaw evenly over `tl_end * total_frames`."""
    end = fraction_of(tl_end, total_frames)
    return tuple(math.ceil(end * rank / (num_layers - 1)) for rank in range(1, num_layers))


@dataclass(frozen=True)
class Schedules:
    """The noise std, linear from `action_std_start` to `action_std_final` over the first
    `action_std_end_frame` frames (a fixed std: both equal), and the thaw frames."""

    action_std_start: float
    action_std_final: float
    action_std_end_frame: int
    thaw_frames: tuple[int, ...] = ()
    """freeze_then_thaw: `thaw_frames[k]` is the first frame at which the (k+1)-th frozen layer
    from the output trains; empty for every other strategy."""

    @classmethod
    def resolve(cls, config: ScheduleSettings) -> Schedules:
        """The schedules of a study that starts now with `config`'s budget."""
        thaws = ()
        if config.transfer_learning == "freeze_then_thaw":
            thaws = thaw_frames(config.total_frames, config.tl_end,
                                len(config.hidden_layers) + 1)
        if not config.uses_schedule:
            return cls(config.action_std, config.action_std, 0, thaws)
        end_frame = round(fraction_of(config.action_std_end, config.total_frames))
        return cls(config.action_std_start, config.action_std_final, end_frame, thaws)

    def action_std_at(self, frame: int) -> float:
        """The noise std at `frame`: linear until the end frame, constant after it."""
        if frame >= self.action_std_end_frame:
            return self.action_std_final
        progress = frame / self.action_std_end_frame
        return self.action_std_start + progress * (self.action_std_final - self.action_std_start)

    def frozen_layer_count(self, frame: int) -> int:
        """freeze_then_thaw: how many layers, counted from the input, are still frozen."""
        return sum(1 for thaw in self.thaw_frames if frame < thaw)

    def as_dict(self) -> dict[str, Any]:
        """Builtins only, for checkpoints loaded with `weights_only` and for results files."""
        return {"action_std_start": float(self.action_std_start),
                "action_std_final": float(self.action_std_final),
                "action_std_end_frame": int(self.action_std_end_frame),
                "thaw_frames": list(self.thaw_frames)}

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Schedules:
        return cls(float(saved["action_std_start"]), float(saved["action_std_final"]),
                   int(saved["action_std_end_frame"]), tuple(int(f) for f in saved["thaw_frames"]))

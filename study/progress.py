"""Progress display: one rewritten line on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

PLAIN_INTERVAL_S = 30.0


class Progress:
    def __init__(self, total_frames: int, quiet: bool, start_frames: int = 0,
                 stream: TextIO | None = None, best_label: str = "best") -> None:
        """`start_frames`: frames already done when timing starts (a resumed study's).

        `stream` defaults to the sys.stdout of the moment (a sweep task redirects it per study).
        """
        self.total_frames = total_frames
        self.quiet = quiet
        self.best_label = best_label
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty()
        self.started = time.monotonic()
        self.start_frames = start_frames
        self.last_plain = -PLAIN_INTERVAL_S

    def update(self, frames: int, running_average: float, best: float, averaged: int) -> None:
        """`averaged`: how many episodes the running average is over, shown beside it, since
        an average of the first few episodes says little."""
        if self.quiet:
            return
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        rate = (frames - self.start_frames) / elapsed
        eta = (self.total_frames - frames) / rate if rate > 0 else float("inf")
        line = (f"frames {frames:>10,}/{self.total_frames:,}  {rate:7,.0f} frames/s  "
                f"ETA {format_duration(eta)}  running avg {format_score(running_average)} "
                f"over {averaged:>3} ep  {self.best_label} {format_score(best)}")
        if self.interactive:
            self.stream.write("\r" + line)
            self.stream.flush()
        elif now - self.last_plain >= PLAIN_INTERVAL_S or frames >= self.total_frames:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last_plain = now

    def message(self, text: str) -> None:
        """A line that must not be overwritten by the next update."""
        if not self.quiet:
            self.stream.write(("\n" if self.interactive else "") + text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.interactive and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def format_score(score: float) -> str:
    """Scores are undefined until episodes finish (nan) or the first window fills (-inf)."""
    return f"{score:8.1f}" if math.isfinite(score) else "     n/a"


def format_duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "--:--:--"
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

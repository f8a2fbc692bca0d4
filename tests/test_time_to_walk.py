"""benchmarks/time_to_walk.py's pure helpers: which (run, seed) pairs a resumed report still
needs, and the summary's median and worst when some seeds never reached the threshold. The
benchmark itself takes an hour; nothing here runs a study."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # the script imports its neighbour throughput.py
    sys.path.insert(0, str(BENCHMARKS))

import time_to_walk  # noqa: E402


def study_result(reached: bool, frames: int, seconds: float, wall_s: float) -> dict:
    """What run_ours records, reduced to what the summary reads."""
    return {"reached": reached, "cap_frames": 1_000_000, "wall_s": wall_s,
            "frames_to_threshold": frames if reached else None,
            "study_seconds_to_threshold": seconds if reached else None,
            "curve": {"seconds": [seconds]}}


def test_pending_skips_what_the_report_holds_seed_by_seed() -> None:
    results = {"scratch": {"1": {}, "2": {}}, "sb3": {"1": {}}}
    todo = time_to_walk.pending(results, ["sb3", "scratch", "transfer"], [1, 2])
    assert todo == [("transfer", 1), ("transfer", 2), ("sb3", 2)]


def test_sb3_needs_its_seeds_scratch_measured_or_to_come() -> None:
    results = {"scratch": {"1": {}}}
    todo = time_to_walk.pending(results, ["sb3"], [1, 2])
    assert time_to_walk.sb3_without_scratch(results, todo) == [2]
    todo = time_to_walk.pending(results, ["scratch", "sb3"], [1, 2])
    assert time_to_walk.sb3_without_scratch(results, todo) == []


def test_order_statistics_rank_unreached_last_as_lower_bounds() -> None:
    values = [(500.0, False), (1_000_000.0, True), (300.0, False), (900.0, False),
              (1_000_000.0, True)]
    assert time_to_walk.order_statistics(values) == {
        "median": 900.0, "median_at_least": False,
        "worst": 1_000_000.0, "worst_at_least": True}
    # Even counts average the middle two; one of them unreached makes it a bound.
    assert time_to_walk.order_statistics([(300.0, False), (1e6, True)]) == {
        "median": 500_150.0, "median_at_least": True, "worst": 1e6, "worst_at_least": True}


def test_summary_counts_reached_seeds_and_bounds_the_rest() -> None:
    seeds = {"1": study_result(True, 600_000, 50.0, 58.0),
             "2": study_result(False, 0, 90.0, 95.0),
             "3": study_result(True, 700_000, 55.0, 61.0)}
    summary = time_to_walk.summarize_study(seeds)
    assert (summary["seeds"], summary["reached"]) == (3, 2)
    assert summary["frames_to_threshold"]["median"] == 700_000
    assert summary["frames_to_threshold"]["worst"] == 1_000_000
    assert summary["frames_to_threshold"]["worst_at_least"]
    assert summary["study_seconds_to_threshold"]["worst"] == 90.0
    assert summary["whole_command_s_median"] == 61.0
    table = time_to_walk.format_summary({"transfer": summary}, 300.0)
    assert "2 of 3" in table and ">= 1.00M" in table

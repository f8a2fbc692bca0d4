"""What a mechanism gives at the level a user sees it: the wall time of whole studies.

Each variant is a source tree (a git worktree of this repository, e.g. one at a commit that
removes a mechanism) and, optionally, run.py flags (e.g. `--num_workers=1`). Every study runs
in every variant in turn, round after round, so that a shared or drifting machine slows them
alike; the report is each variant's median wall time and the median of its per-round ratio to
the first variant (the reference); each round starts one variant later than the last. A
mechanism's switch lives in the tree, never in a hidden flag of the product.

    git worktree add /tmp/without_x COMMIT_THAT_REMOVES_X
    python benchmarks/mechanisms.py --variant "with=." --variant "without=/tmp/without_x" \
        --variant "one_worker=. --num_workers=1" --repeats 3 --out benchmarks/mechanisms.json

Each study is `python run.py` in the variant's tree with its own results and models folders
(a temporary folder, removed afterwards), timed from the command's start to its exit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FINE_TUNE = ("--initial_model=universal_design --thigh_length=30 --shin_length=40 "
             "--leg_width=6 --motor_torque=100 --total_frames=1e5 --action_std_start=0.2 "
             "--action_std_final=0.1 --action_std_end=0.6")
"""The design search's fine-tuning stage (`designsearch.confirm.fine_tune_flags`' schedule)
on one unseen design, from the shipped design-space policy."""

STUDIES = {
    "80k": "--total_frames=8e4",
    "1m": "--total_frames=1e6",
    "finetune": FINE_TUNE,
}
"""The studies a user runs: the default 80k-frame study, a 1M-frame one, a fine-tuning."""


@dataclass(frozen=True)
class Variant:
    label: str
    tree: Path
    flags: tuple[str, ...]


def parse_variant(text: str) -> Variant:
    """"LABEL=PATH [FLAG ...]" -> Variant; the tree must hold run.py."""
    first, *flags = shlex.split(text)
    label, separator, tree = first.partition("=")
    if not separator or not label or not (Path(tree) / "run.py").is_file():
        raise argparse.ArgumentTypeError(
            f"--variant: {text!r}: expected 'LABEL=PATH [FLAG ...]' with PATH/run.py")
    return Variant(label, Path(tree).resolve(), tuple(flags))


def run_study(variant: Variant, study: str, python: str) -> float:
    """The wall seconds of one study in the variant's tree, in folders of its own."""
    with tempfile.TemporaryDirectory(prefix="mechanisms_") as scratch:
        command = [python, "run.py", f"--save_name=mech_{variant.label}_{study}",
                   "--overwrite=true", "--quiet=true", f"--results_dir={scratch}/results",
                   f"--models_dir={scratch}/models", f"--tensorboard={scratch}/runs",
                   *shlex.split(STUDIES[study]), *variant.flags]
        started = time.monotonic()
        done = subprocess.run(command, cwd=variant.tree, capture_output=True, text=True)
        seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{variant.label} {study}: exit status {done.returncode}: "
                 f"{done.stderr.strip().splitlines()[-1:]}")
    return seconds


def summarise(samples: list[dict], variants: list[Variant], studies: list[str]) -> list[dict]:
    """Per study and variant: median and range of the wall time, and the median over rounds
    of its ratio to the reference's time in the same round."""
    reference = variants[0].label
    rows = []
    for study in studies:
        times = {v.label: [s["seconds"] for s in samples
                           if s["study"] == study and s["variant"] == v.label]
                 for v in variants}
        for variant in variants:
            own = times[variant.label]
            ratios = [mine / ref for mine, ref in zip(own, times[reference], strict=True)]
            rows.append({"study": study, "variant": variant.label,
                         "median_s": statistics.median(own), "min_s": min(own),
                         "max_s": max(own), f"ratio_to_{reference}": statistics.median(ratios),
                         "ratios": ratios})
    return rows


def report(rows: list[dict], reference: str) -> str:
    lines = [f"{'study':<9} {'variant':<22} {'median s':>9} {'range s':>15} "
             f"{'x ' + reference:>10}  per round"]
    for row in rows:
        lines.append(f"{row['study']:<9} {row['variant']:<22} {row['median_s']:>9.1f} "
                     f"{row['min_s']:>7.1f}-{row['max_s']:<7.1f} "
                     f"{row[f'ratio_to_{reference}']:>10.3f}  "
                     + " ".join(f"{ratio:.3f}" for ratio in row["ratios"]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", type=parse_variant, required=True,
                        help="'LABEL=PATH [FLAG ...]': a source tree and run.py flags; the "
                             "first is the reference (repeat the option, at least twice)")
    parser.add_argument("--studies", default="80k,finetune,1m",
                        help=f"comma-separated, from {', '.join(STUDIES)}")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, at least 1")
    parser.add_argument("--out", type=Path, help="JSON file for every sample and the summary")
    args = parser.parse_args()
    studies = args.studies.split(",")
    unknown = [study for study in studies if study not in STUDIES]
    if unknown or args.repeats < 1 or len(args.variant) < 2:
        parser.error(f"--studies from {', '.join(STUDIES)}, --repeats >= 1 and at least two "
                     f"--variant (unknown studies: {unknown})")
    samples: list[dict] = []
    load_before = os.getloadavg()

    def write(rows: list[dict]) -> None:
        """Every sample so far (a run cut short keeps them) and the summary once there is one."""
        if not args.out:
            return
        result = {"variants": [{"label": v.label, "tree": str(v.tree), "flags": v.flags}
                               for v in args.variant],
                  "studies": {study: STUDIES[study] for study in studies},
                  "machine": {"cpus": os.cpu_count(), "processor": platform.processor(),
                              "python": platform.python_version(),
                              "load_average_before": load_before,
                              "load_average_now": os.getloadavg()},
                  "samples": samples, "summary": rows}
        temporary = args.out.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=1))
        temporary.replace(args.out)

    for round_number in range(args.repeats):
        for study in studies:
            # Each round starts one variant later: a load that rises or falls within a round
            # does not always fall on the same variants.
            shift = round_number % len(args.variant)
            for variant in args.variant[shift:] + args.variant[:shift]:
                seconds = run_study(variant, study, sys.executable)
                samples.append({"round": round_number, "study": study,
                                "variant": variant.label, "seconds": seconds,
                                "load_average_1m": os.getloadavg()[0]})
                print(f"round {round_number + 1} {study} {variant.label}: {seconds:.1f} s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
                write([])
    rows = summarise(samples, args.variant, studies)
    print(report(rows, args.variant[0].label))
    write(rows)


if __name__ == "__main__":
    main()

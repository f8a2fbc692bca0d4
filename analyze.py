"""Learning curves, transfer metrics and zero-shot transfer from finished studies.

    python analyze.py 'results/headline__*.p' --out docs --prefix headline_
    python analyze.py results/headline_manifest.json results/zeroshot_manifest.json
    python analyze.py docs/headline_studies.jsonl.gz     # redraw from a committed export

Inputs (globs are expanded here, so quote them): results pickles (`*.p`), sweep manifests
(`*_manifest.json`), evaluation reports (`*_eval.json`, from `run.py --eval_episodes=N`), and
exports written by `--export`. Studies that differ only by seed (and execution flags such as
--num_envs) form a group; each transfer group is compared with the from-scratch group whose
other settings are equal (e.g. the same leg length). Metric definitions: analysis/metrics.py,
also written under the table.

Writes into --out (default results/; the committed figures in docs/ are written with --out docs),
each name starting with --prefix:
- learning_curves.png: one panel per compared setting (e.g. leg length), mean running average
  over seeds with a bootstrap band;
- transfer_metrics.md: the metrics table with intervals, and the definitions used;
- zero_shot.png and zero_shot.md, when evaluation reports are given.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from common.config import OneLineErrorParser
from envs import DESIGN_PARAMETERS

EXTRA_INSTALL = "pip install -r requirements-extra.txt"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="analyze.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("inputs", nargs="*", default=["results/*.p"],
                        help="results files, manifests, eval reports or exports (globs allowed; "
                             "default: results/*.p)")
    parser.add_argument("--out", default="results",
                        help="folder for the figures and tables (default: results)")
    parser.add_argument("--prefix", default="", help="prefix of every file written")
    parser.add_argument("--window", type=int, default=100,
                        help="episodes in the running average (run.py's score uses 100)")
    parser.add_argument("--jumpstart_episodes", type=int, default=10,
                        help="first episodes averaged for initial performance and jumpstart")
    parser.add_argument("--asymptote_fraction", type=float, default=0.1,
                        help="final fraction of the frames whose episodes give the asymptote")
    parser.add_argument("--threshold", type=float, default=200.0,
                        help="running-average return for time to threshold (over a "
                             "full window of --window episodes)")
    parser.add_argument("--points", type=int, default=200,
                        help="frames in the common grid the curves are read on")
    parser.add_argument("--ratio_floor", type=float, default=None,
                        help="floor for the transfer ratio (default: lowest point of the curves)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--include_incomplete", action="store_true",
                        help="also use studies that stopped before their total_frames")
    parser.add_argument("--zero_shot_axis", default=None, choices=list(DESIGN_PARAMETERS),
                        help="design parameter along which zero-shot results are drawn "
                             "(default: the one the evaluated walkers differ in)")
    parser.add_argument("--export", default=None, metavar="PATH.jsonl[.gz]",
                        help="also write the inputs, compactly, to redraw everything later")
    return parser


def check(args: argparse.Namespace) -> str | None:
    if args.window < 1 or args.jumpstart_episodes < 1 or args.points < 1 or args.resamples < 1:
        return "--window, --jumpstart_episodes, --points and --resamples must be >= 1"
    if not 0 < args.asymptote_fraction <= 1:
        return "--asymptote_fraction must be in (0, 1]"
    if not 0 < args.confidence < 1:
        return "--confidence must be in (0, 1)"
    return None


def cli(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = check(args)
    if problem:
        print(f"analyze.py: error: {problem}", file=sys.stderr)
        return 2
    try:
        return analyze(args, argv)
    except ModuleNotFoundError as error:  # scipy (statistics); matplotlib is optional
        package = (error.name or "scipy").split(".")[0]
        print(f"analyze.py: error: the {package} package is not installed; the analysis needs "
              f"it: {EXTRA_INSTALL}", file=sys.stderr)
        return 2


def analyze(args: argparse.Namespace, argv: list[str] | None) -> int:
    from analysis.data import InputError, export, group_studies, load_inputs
    from analysis.metrics import (
        Settings,
        compare,
        pairwise_improvements,
        panel_metrics,
        panels,
        ratio_floor_used,
    )
    from analysis.report import definitions, improvement_table, metrics_table, zero_shot_table
    from analysis.stats import Bootstrap
    from analysis.zero_shot import zero_shot_lines

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"analyze.py: error: --out: {out} exists and is not a folder; name a folder",
              file=sys.stderr)
        return 2
    try:
        studies, evaluations = load_inputs(args.inputs)
    except InputError as error:
        print(f"analyze.py: error: {error}", file=sys.stderr)
        return 2
    incomplete = [s for s in studies if not s.complete]
    if incomplete and not args.include_incomplete:
        print(f"left out {len(incomplete)} unfinished studies (--include_incomplete to use "
              f"them): {', '.join(s.name for s in incomplete)}")
        studies = [s for s in studies if s.complete]
    studies = [s for s in studies if len(s.rewards)]
    if not studies and not evaluations:
        print("analyze.py: error: no finished study or evaluation in the inputs", file=sys.stderr)
        return 2

    settings = Settings(args.window, args.jumpstart_episodes, args.asymptote_fraction,
                        args.threshold, args.points, args.ratio_floor)
    bootstrap = Bootstrap(args.resamples, args.confidence, args.seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(f"analyze.py: error: --out: cannot make {out} ({error.strerror or error})",
              file=sys.stderr)
        return 2
    command = shlex.join(["python", "analyze.py", *(sys.argv[1:] if argv is None else argv)])
    written = []
    if args.export:
        export(Path(args.export), studies, evaluations)
        written.append(Path(args.export))

    try:
        from analysis import plots
    except ImportError:
        plots = None
        print(f"matplotlib is not installed ({EXTRA_INSTALL}): tables only, no PNG")

    if studies:
        groups = group_studies(studies)
        measured = [panel_metrics(members, settings) for members in panels(groups)]
        rows = [row for members in measured for row in compare(members, settings, bootstrap)]
        improvements = [item for members in measured
                        for item in pairwise_improvements(members, bootstrap)]
        floors = {m[0].group.panel_label: ratio_floor_used(m, settings) for m in measured}
        budgets = {m[0].group.panel_label: m[0].budget for m in measured}
        table = metrics_table(rows, settings)
        pairs = f"{improvement_table(improvements)}\n" if improvements else ""
        text = (f"# Transfer metrics\n\n{len(studies)} studies in {len(groups)} groups. "
                f"Regenerate: `{command}`\n\n{table}\n{pairs}"
                f"{definitions(settings, bootstrap, floors, budgets)}")
        path = out / f"{args.prefix}transfer_metrics.md"
        path.write_text(text)
        written.append(path)
        print(table)
        if plots:
            path = out / f"{args.prefix}learning_curves.png"
            plots.plot_learning_curves(path, measured, settings, bootstrap)
            written.append(path)

    if evaluations:
        lines = zero_shot_lines(evaluations, bootstrap, args.zero_shot_axis)
        table = zero_shot_table(lines)
        path = out / f"{args.prefix}zero_shot.md"
        path.write_text(f"# Zero-shot transfer\n\nDeterministic policy, no training on the "
                        f"evaluated walker; {bootstrap.confidence:.0%} bootstrap interval over "
                        f"episodes. Regenerate: `{command}`\n\n{table}")
        written.append(path)
        print(table)
        if plots:
            path = out / f"{args.prefix}zero_shot.png"
            plots.plot_zero_shot(path, lines)
            written.append(path)

    print("wrote " + ", ".join(str(path) for path in written))
    return 0 if plots else 1


if __name__ == "__main__":
    sys.exit(cli())

"""Wall-clock to walk over five seeds (issue 27, item 3; first as one seed in issue 19, item 4):
how long a user waits for a walker that walks, and how much that depends on the seed.

    python benchmarks/time_to_walk.py            # about an hour on 2 cores; resumable
    python benchmarks/time_to_walk.py --threshold=-150 --seeds=1 --cap_frames=30000 \
        --out=/tmp/ttw_smoke.json                # smoke test: half a minute
    python benchmarks/time_to_walk.py --plot_only benchmarks/time_to_walk.json  # the figure

Run it as a script (it imports its neighbour throughput.py); it needs requirements-extra.txt
(Stable-Baselines3, matplotlib).

Five runs for each seed (`--seeds`, default 1-5; `--runs` selects), each until its training
running average first reaches 300 (the last 100 episodes, as `analyze.py` computes it: over
the episodes so far until 100 have ended), or until its frame cap:

- scratch: `run.py --leg_length=34` with the default hyperparameters (cap 4M frames);
- schedule: the same with the sample policy's noise schedule (experiments/sample_policy.sh:
  0.5 -> 0.1 over the first 60% of 3M frames); the schedule is laid out over --total_frames,
  so its cap is the sample policy's 3M;
- transfer: `run.py --leg_length=30 --initial_model=leg_34_trained`, defaults (cap 1M);
- universal: `run.py --initial_model=universal_design` at thigh 30, shin 40, leg width 6,
  motor torque 100 (cap 1M): the README's example of a new design, inside the box the policy was
  made for (thigh and shin 24-46, width 5-11, torque 60-120), none of its corners nor any
  design it was evaluated at (docs/data/universal_design_box.jsonl), and unlike leg 34 in
  every parameter: a long shin under a short thigh, light legs, a strong motor. At
  `--action_std=0.1`, the noise its last stages trained at (as experiments/outside_box.sh
  fine-tunes it): at the default 0.5 its training episodes fall (running average about -25
  over its first 20k frames, against 696 over 10 deterministic episodes), so the training
  running average would measure how long it takes to unlearn that noise, not how long a user
  waits;
- sb3: Stable-Baselines3 PPO with RL Zoo's BipedalWalker-v3 settings as the zoo runs them (32
  walkers in one process, VecNormalize, the default MlpPolicy, torch's default threads), on
  our walker at leg 34 with training's settings, given the wall-clock that the same seed's
  scratch run needed (from the command's start until this script noticed the threshold).

Runs go one after another, never overlapping, seed by seed (all runs of seed 1, then seed 2,
...), so that an interrupted benchmark leaves whole seeds and the machine's drift in speed
falls on every run alike. Each (run, seed) is added to the report (`--out`, written
atomically) as soon as it ends; running the same command again skips what the report holds.

Our studies run as a user runs them (a fresh `python run.py`); each result gives the study's
own clock at the episode that reached the threshold, when this script noticed it, and the
whole command's time (start-up, the batches until it was noticed, and shut-down). A study is
stopped (SIGINT, which keeps its files) once the threshold shows. A run that ends at its cap
without reaching it counts as not reached: the summary gives "k of n reached", and a median or
worst that falls on such a run as ">=" its cap (or, in seconds, its study's clock at the end).
Returns are training returns (exploration noise in force), episode by episode, for every run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from throughput import SB3_ZOO_PPO, machine_description  # noqa: E402

from analysis.metrics import running_average  # noqa: E402
from common.results import SCORE_WINDOW, read_results  # noqa: E402

SB3_ZOO_ENVS = 32
"""RL Zoo's n_envs for BipedalWalker-v3 (its default vec_env: DummyVecEnv, one process)."""

LEG_LENGTH = 34
"""The walker trained from scratch, by us and by SB3."""


@dataclasses.dataclass(frozen=True)
class Study:
    """One of our runs: its flags after --save_name, and --total_frames, which is only a cap
    (a few times what it needed when measured, so that a slow seed ends instead of running
    for 10M frames), except for the schedule, whose noise is laid out over it."""

    flags: tuple[str, ...]
    cap: int
    label: str


STUDIES = {
    "scratch": Study((f"--leg_length={LEG_LENGTH}",), 4_000_000,
                     f"ours, from scratch, leg {LEG_LENGTH}"),
    "schedule": Study((f"--leg_length={LEG_LENGTH}", "--action_std_start=0.5",
                       "--action_std_final=0.1", "--action_std_end=0.6"), 3_000_000,
                      f"ours, from scratch, leg {LEG_LENGTH}, the sample policy's schedule"),
    "transfer": Study(("--leg_length=30", "--initial_model=leg_34_trained"), 1_000_000,
                      "ours, from leg_34_trained, leg 30"),
    "universal": Study(("--thigh_length=30", "--shin_length=40", "--leg_width=6",
                        "--motor_torque=100", "--initial_model=universal_design",
                        "--action_std=0.1"), 1_000_000,
                       "ours, from universal_design, thigh 30 shin 40 width 6 torque 100"),
}
SB3_LABEL = f"SB3 PPO (RL Zoo settings), leg {LEG_LENGTH}, scratch's time"
RUNS = (*STUDIES, "sb3")
"""In the order each seed runs them: sb3 after scratch, whose time it is given."""

POLL_S = 2.0
"""How often a study's results file is read (it is rewritten after every batch): up to this
much is added to the time a study's threshold is noticed, and so to SB3's budget."""

STOP_GRACE_S = 60.0
"""How long a study may take to write its files and exit once told to stop."""

NEEDED = ("stable_baselines3", "matplotlib")


def first_reaching(rewards: np.ndarray, threshold: float) -> int | None:
    """Index of the first episode whose running average reaches `threshold`."""
    reached = np.flatnonzero(running_average(rewards, SCORE_WINDOW) >= threshold)
    return int(reached[0]) if len(reached) else None


def threshold_summary(episodes: dict[str, list[float]], threshold: float) -> dict[str, Any]:
    """Whether, at which frame and at which second of the study's clock the running average
    first reached `threshold`; the learning curve (running average by second and frame)."""
    rewards = np.asarray(episodes["reward"])
    index = first_reaching(rewards, threshold) if len(rewards) else None
    return {"episodes": len(rewards),
            "reached": index is not None,
            "frames_to_threshold": episodes["frames"][index] if index is not None else None,
            "study_seconds_to_threshold":
                episodes["wall_time"][index] if index is not None else None,
            "curve": {"seconds": list(episodes["wall_time"]),
                      "frames": list(episodes["frames"]),
                      "running_average": running_average(rewards, SCORE_WINDOW).tolist()}}


def read_episodes(results: Path) -> dict[str, list[float]]:
    return read_results(results)["episodes"]


def stop(process: subprocess.Popen) -> None:
    """SIGINT (the study writes its files and exits), then, past the grace period, SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_ours(name: str, flags: list[str], threshold: float, seed: int, folder: Path) -> dict:
    """One `python run.py` study, stopped once its results file shows the threshold."""
    command = [sys.executable, "run.py", f"--save_name=ttw_{name}", *flags, f"--seed={seed}",
               f"--models_dir={folder}", f"--results_dir={folder}", "--tensorboard=none",
               "--quiet=true"]  # as throughput.py measures: no events
    results = folder / f"ttw_{name}.p"  # written atomically, from the first batch on
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    noticed_after_s = None
    try:
        while process.poll() is None:
            time.sleep(POLL_S)
            if noticed_after_s is None and results.exists() and first_reaching(
                    np.asarray(read_episodes(results)["reward"]), threshold) is not None:
                noticed_after_s = time.perf_counter() - started
                stop(process)
    finally:
        stop(process)  # also when this script is interrupted: no study is left running
    wall_s = time.perf_counter() - started
    if process.returncode not in (0, 128 + signal.SIGINT) or not results.exists():
        raise SystemExit(f"time_to_walk: {name}: `{' '.join(command[1:])}` exited with "
                         f"{process.returncode} and no results; run it alone to see why")
    episodes = read_episodes(results)
    if not episodes["reward"]:  # only with a tiny --cap_frames
        raise SystemExit(f"time_to_walk: {name}: no episode ended within its frames")
    return {"command": " ".join(["python", *command[1:]]), "returncode": process.returncode,
            "wall_s": wall_s, "frames": episodes["frames"][-1],
            "noticed_after_s": noticed_after_s,
            "outside_study_clock_s": wall_s - episodes["wall_time"][-1],
            **threshold_summary(episodes, threshold)}


def run_sb3(seconds: float, threshold: float, seed: int) -> dict:
    """SB3 PPO, RL Zoo settings, on our walker for `seconds` of wall-clock, counted like our
    study's clock: from building the walkers, after the imports."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import envs
    from common.config import Config

    class UntilDeadline(BaseCallback):  # here because SB3 is imported only when it runs
        """Records every finished episode (our results' columns); stops when time is up."""

        def __init__(self) -> None:
            super().__init__()
            self.episodes: dict[str, list[float]] = {"reward": [], "frames": [],
                                                     "wall_time": []}

        def _on_step(self) -> bool:
            now = time.perf_counter() - started
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.episodes["reward"].append(float(info["episode"]["r"]))
                    self.episodes["frames"].append(self.num_timesteps)
                    self.episodes["wall_time"].append(now)
            return now < seconds

    env_kwargs = Config(save_name="time_to_walk", leg_length=LEG_LENGTH).env_kwargs()

    def make_env() -> gym.Env:
        return Monitor(gym.make(envs.ENV_ID, **env_kwargs))

    started = time.perf_counter()
    vec_env = VecNormalize(DummyVecEnv([make_env] * SB3_ZOO_ENVS), gamma=SB3_ZOO_PPO["gamma"])
    model = PPO("MlpPolicy", vec_env, device="cpu", seed=seed, verbose=0, **SB3_ZOO_PPO)
    callback = UntilDeadline()
    model.learn(total_timesteps=10**10, callback=callback)
    vec_env.close()
    averages = running_average(np.asarray(callback.episodes["reward"]), SCORE_WINDOW)
    return {"settings": {"n_envs": SB3_ZOO_ENVS, "vec_env": "DummyVecEnv", **SB3_ZOO_PPO,
                         "torch_threads": torch.get_num_threads()},
            "wall_s": time.perf_counter() - started, "frames": model.num_timesteps,
            "final_running_average": float(averages[-1]) if len(averages) else None,
            "best_running_average": float(averages.max()) if len(averages) else None,
            **threshold_summary(callback.episodes, threshold)}


def study_flags(study: Study, cap_frames: int | None) -> list[str]:
    """The flags of `study`, its cap replaced by `cap_frames` when given (smoke tests)."""
    return [*study.flags, f"--total_frames={cap_frames or study.cap}"]


def sb3_budget(scratch: dict) -> float:
    """The seconds SB3 gets: until this script noticed scratch's threshold, or, unnoticed (it
    ended on its own first), the whole command's time."""
    return scratch["noticed_after_s"] or scratch["wall_s"]


def pending(results: dict[str, dict[str, dict]], runs: list[str],
            seeds: list[int]) -> list[tuple[str, int]]:
    """The (run, seed) pairs still to measure, seed by seed, each seed's runs in RUNS' order."""
    return [(run, seed) for seed in seeds for run in RUNS
            if run in runs and str(seed) not in results.get(run, {})]


def sb3_without_scratch(results: dict[str, dict[str, dict]],
                        todo: list[tuple[str, int]]) -> list[int]:
    """Seeds whose SB3 run would have no scratch time to be given: none measured or to come."""
    return [seed for run, seed in todo if run == "sb3"
            and str(seed) not in results.get("scratch", {}) and ("scratch", seed) not in todo]


def order_statistics(values: list[tuple[float, bool]]) -> dict[str, Any]:
    """Median and worst of (value, at_least) pairs, at_least for a run that never reached the
    threshold (its value is where it ended: the true one lies beyond it, so it ranks after
    every reached one). A median or worst that involves one is itself only a lower bound."""
    ordered = sorted(values, key=lambda pair: (pair[1], pair[0]))
    middle = ordered[(len(ordered) - 1) // 2: len(ordered) // 2 + 1]
    return {"median": statistics.fmean(value for value, _ in middle),
            "median_at_least": any(at_least for _, at_least in middle),
            "worst": ordered[-1][0], "worst_at_least": ordered[-1][1]}


def summarize_study(seeds: dict[str, dict]) -> dict[str, Any]:
    """One of our runs over its seeds: how many reached the threshold, frames and study
    seconds to it (median, worst; a run that did not reach it counts as its cap, and as its
    study's clock when it ended, as lower bounds), and the whole command's seconds (median)."""
    runs = list(seeds.values())
    return {"seeds": len(runs), "reached": sum(run["reached"] for run in runs),
            "frames_to_threshold": order_statistics(
                [(run["frames_to_threshold"], False) if run["reached"]
                 else (run["cap_frames"], True) for run in runs]),
            "study_seconds_to_threshold": order_statistics(
                [(run["study_seconds_to_threshold"], False) if run["reached"]
                 else (run["curve"]["seconds"][-1], True) for run in runs]),
            "whole_command_s_median": statistics.median(run["wall_s"] for run in runs)}


def summarize_sb3(seeds: dict[str, dict]) -> dict[str, Any]:
    """SB3 seed by seed: its budget, frames, and running average when the budget ran out."""
    return {"seeds": len(seeds), "reached": sum(run["reached"] for run in seeds.values()),
            "by_seed": {seed: {"budget_s": run["budget_s"], "frames": run["frames"],
                               "final_running_average": run["final_running_average"],
                               "reached": run["reached"]}
                        for seed, run in sorted(seeds.items(), key=lambda item: int(item[0]))}}


def summarize(results: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """The summary of every run measured so far, in RUNS' order."""
    return {run: summarize_sb3(results[run]) if run == "sb3" else summarize_study(results[run])
            for run in RUNS if results.get(run)}


def frames_text(frames: float) -> str:
    if frames >= 1e6:
        return f"{frames / 1e6:.2f}M"
    return f"{frames / 1e3:.0f}k" if frames >= 1e4 else f"{frames:,.0f}"


def bound_text(statistic: dict[str, Any], key: str, unit: Callable[[float], str]) -> str:
    """A median or worst as text, ">= " before a lower bound."""
    return (">= " if statistic[f"{key}_at_least"] else "") + unit(statistic[key])


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f} s"


def format_summary(summary: dict[str, Any], threshold: float) -> str:
    """The summary as a text table: our runs, then SB3 seed by seed."""
    lines = [f"{'run':<10} {'reached':>9}  {'frames to ' + format(threshold, 'g'):>22}  "
             f"{'study s to ' + format(threshold, 'g'):>22}  {'command s':>9}",
             f"{'':<10} {'':>9}  {'median':>10} {'worst':>11}  {'median':>10} {'worst':>11}  "
             f"{'median':>9}"]
    for name, run in summary.items():
        if name == "sb3":
            continue
        frames, seconds = run["frames_to_threshold"], run["study_seconds_to_threshold"]
        lines.append(
            f"{name:<10} {str(run['reached']) + ' of ' + str(run['seeds']):>9}  "
            f"{bound_text(frames, 'median', frames_text):>10} "
            f"{bound_text(frames, 'worst', frames_text):>11}  "
            f"{bound_text(seconds, 'median', seconds_text):>10} "
            f"{bound_text(seconds, 'worst', seconds_text):>11}  "
            f"{seconds_text(run['whole_command_s_median']):>9}")
    if "sb3" in summary:
        sb3 = summary["sb3"]
        lines.append(f"sb3: {sb3['reached']} of {sb3['seeds']} reached {threshold:g} "
                     "in scratch's time")
        for seed, run in sb3["by_seed"].items():
            average = run["final_running_average"]
            lines.append(f"  seed {seed}: {seconds_text(run['budget_s'])}, "
                         f"{frames_text(run['frames'])} frames, running average at the end "
                         + ("-" if average is None else f"{average:.0f}")
                         + (", reached" if run["reached"] else ""))
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """Running average against each study's own clock: every seed of a run in its colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {**{name: study.label for name, study in STUDIES.items()}, "sb3": SB3_LABEL}
    figure, axis = plt.subplots(figsize=(8, 5.5), layout="constrained")
    for index, (name, label) in enumerate(labels.items()):
        for number, run in enumerate(report["results"].get(name, {}).values()):
            axis.plot(run["curve"]["seconds"], run["curve"]["running_average"],
                      color=f"C{index}", alpha=0.6, linewidth=1,
                      label=label if number == 0 else None)
    axis.axhline(report["threshold"], color="grey", linestyle="--", linewidth=1,
                 label=f"running average {report['threshold']:g}")
    axis.set(xlabel="wall-clock seconds since the study started (after start-up)",
             ylabel=f"running average of {SCORE_WINDOW} episodes",
             title="Time to walk on this machine, one line per seed")
    axis.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize="small")  # clear of the curves
    figure.savefig(path, dpi=120)
    plt.close(figure)


def describe(name: str, seed: int, run: dict) -> str:
    """One line of progress for a finished run."""
    where = f"{run['frames']:,} frames, {run['wall_s']:.0f} s in all"
    if not run["reached"]:
        return f"{name}, seed {seed}: not reached ({where})"
    return (f"{name}, seed {seed}: reached at {run['frames_to_threshold']:,} frames, "
            f"{run['study_seconds_to_threshold']:.0f} s into the study ({where})")


def read_report(path: Path) -> dict[str, Any]:
    """A report of this version of the script (issue 19's one-seed reports have no results)."""
    report = json.loads(path.read_text())
    if "results" not in report:
        raise SystemExit(f"time_to_walk: {path} is a one-seed report of an earlier version; "
                         "give another --out, or remove it to measure again")
    return report


def load_report(path: Path, threshold: float, cap_frames: int | None) -> dict[str, Any]:
    """The report to add to: `path`'s, to resume it, if it was measured with the same
    settings; otherwise a new one."""
    if not path.exists():
        return {"machine": machine_description(), "threshold": threshold,
                "cap_frames": cap_frames, "results": {}}
    report = read_report(path)
    if (report["threshold"], report["cap_frames"]) != (threshold, cap_frames):
        raise SystemExit(f"time_to_walk: {path} was measured with --threshold="
                         f"{report['threshold']:g} and --cap_frames={report['cap_frames']}; "
                         "resume it with those, or give another --out")
    return report


def write_atomically(path: Path, text: str) -> None:
    """A report killed while being written is left as it was, never half-written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: same disk
    temporary.write_text(text)
    os.replace(temporary, path)


def measure(name: str, seed: int, results: dict[str, dict[str, dict]],
            args: argparse.Namespace) -> dict:
    """One (run, seed), alone on the machine (the caller runs them one at a time)."""
    if name == "sb3":
        budget = sb3_budget(results["scratch"][str(seed)])
        return {"budget_s": budget, **run_sb3(budget, args.threshold, seed)}
    with tempfile.TemporaryDirectory() as folder:
        flags = study_flags(STUDIES[name], args.cap_frames)
        return {"cap_frames": args.cap_frames or STUDIES[name].cap,
                **run_ours(name, flags, args.threshold, seed, Path(folder))}


def seed_list(text: str) -> list[int]:
    """--seeds: comma-separated, each once."""
    return list(dict.fromkeys(int(item) for item in text.split(",")))


def run_list(text: str) -> list[str]:
    """--runs: comma-separated names of RUNS, each once."""
    names = list(dict.fromkeys(text.split(",")))
    unknown = [name for name in names if name not in RUNS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)} "
                                         f"(known: {', '.join(RUNS)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/time_to_walk.json",
                        help="the report (JSON), rewritten after every run; an existing one "
                             "is resumed: the (run, seed) pairs it holds are not run again")
    parser.add_argument("--figure", type=Path,
                        help="the figure (PNG); default: --out with .png")
    parser.add_argument("--threshold", type=float, default=300.0,
                        help="running average (last 100 episodes) that counts as walking")
    parser.add_argument("--seeds", type=seed_list, default=[1, 2, 3, 4, 5],
                        help="seeds, comma-separated (default 1,2,3,4,5)")
    parser.add_argument("--runs", type=run_list, default=list(RUNS),
                        help=f"runs, comma-separated (default {','.join(RUNS)}); sb3 needs the "
                             "same seed's scratch, measured already or in this command")
    parser.add_argument("--cap_frames", type=int,
                        help="for smoke tests: every study's frame cap instead of its own "
                             "(the schedule's noise then follows this cap, not the sample "
                             "policy's 3M)")
    parser.add_argument("--plot_only", type=Path, metavar="JSON",
                        help="redraw the figure from a report this script wrote; run nothing")
    args = parser.parse_args(argv)
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing and not args.plot_only:
        parser.error(f"needs {', '.join(missing)}: pip install -r requirements-extra.txt")
    if args.figure is None:
        args.figure = (args.plot_only or args.out).with_suffix(".png")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_only:
        plot(read_report(args.plot_only), args.figure)
        return 0

    report = load_report(args.out, args.threshold, args.cap_frames)
    results = report["results"]
    todo = pending(results, args.runs, args.seeds)
    orphans = sb3_without_scratch(results, todo)
    if orphans:
        raise SystemExit(f"time_to_walk: sb3 is given scratch's time, and scratch has not run "
                         f"for seed {', '.join(map(str, orphans))}: add scratch to --runs")
    skipped = len(args.runs) * len(args.seeds) - len(todo)
    if skipped:
        print(f"{args.out}: {skipped} of the runs asked for are measured already", flush=True)
    for name, seed in todo:
        load_before = os.getloadavg()
        run = measure(name, seed, results, args)
        results.setdefault(name, {})[str(seed)] = {
            **run, "load_average_before": load_before, "load_average_after": os.getloadavg()}
        report["summary"] = summarize(results)
        write_atomically(args.out, json.dumps(report, indent=1) + "\n")
        print(describe(name, seed, run), flush=True)
    report["summary"] = summarize(results)
    print(format_summary(report["summary"], args.threshold))
    plot(report, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())

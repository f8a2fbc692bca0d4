"""Wall-clock to walk (issue 19, item 4): how long a user waits for a walker that walks.

    python benchmarks/time_to_walk.py --out benchmarks/time_to_walk.json   # ~4 minutes on 2 cores
    python benchmarks/time_to_walk.py --plot_only benchmarks/time_to_walk.json  # redraw the figure

Run it as a script (it imports its neighbour throughput.py); it needs requirements-extra.txt
(Stable-Baselines3, matplotlib).

One run each, one after another, on the same machine:

- scratch: `run.py --leg_length=34` with the default hyperparameters, until its training
  running average first reaches 300 (the last 100 episodes, as `analyze.py` computes it: over
  the episodes so far until 100 have ended);
- transfer: `run.py --leg_length=30 --initial_model=leg_34_trained` (the default strategy,
  `initialize`), the same;
- SB3: Stable-Baselines3 PPO with RL Zoo's BipedalWalker-v3 settings as the zoo runs them (32
  walkers in one process, VecNormalize, the default MlpPolicy, torch's default threads), on
  our walker with training's settings, given the wall-clock that scratch needed (from the
  command's start until this script noticed the threshold).

Our studies run as a user runs them (a fresh `python run.py`); the report gives the study's
own clock at the episode that reached the threshold, when this script noticed it, and the
whole command's time (start-up, the batches until it was noticed, and shut-down). Each one's
frame budget is a cap: it is stopped (SIGINT, which keeps its files) once the threshold shows.
The report is written after every run, so an interrupted benchmark keeps what it measured.
Returns are training returns (exploration noise in force), episode by episode, for all three.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from throughput import SB3_ZOO_PPO, machine_description  # noqa: E402

from analysis.metrics import running_average  # noqa: E402
from study.results import SCORE_WINDOW  # noqa: E402

SB3_ZOO_ENVS = 32
"""RL Zoo's n_envs for BipedalWalker-v3 (its default vec_env: DummyVecEnv, one process)."""

LEG_LENGTH = 34
"""The walker trained from scratch, by us and by SB3."""

STUDIES = {
    "scratch": [f"--leg_length={LEG_LENGTH}", "--total_frames=4e6"],
    "transfer": ["--leg_length=30", "--initial_model=leg_34_trained", "--total_frames=1e6"],
}
"""Our two studies: the flags after --save_name. --total_frames is only a cap, a few times
what each needed when measured, so that a slow seed ends instead of running for 10M frames."""

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
    return pickle.loads(results.read_bytes())["episodes"]


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
    from study.config import Config

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


def plot(report: dict, path: Path) -> None:
    """Running average against each study's own clock, the three runs on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"scratch": f"ours, from scratch, leg {LEG_LENGTH}",
              "transfer": "ours, from leg_34_trained, leg 30",
              "sb3": f"SB3 PPO (RL Zoo settings), leg {LEG_LENGTH}"}
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, label in labels.items():
        if name in report:
            run = report[name]["curve"]
            axis.plot(run["seconds"], run["running_average"], label=label)
    axis.axhline(report["threshold"], color="grey", linestyle="--", linewidth=1,
                 label=f"running average {report['threshold']:g}")
    axis.set(xlabel="wall-clock seconds since the study started (after start-up)",
             ylabel=f"running average of {SCORE_WINDOW} episodes",
             title="Time to walk on this 2-core machine, one run each")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 0.1))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def describe(name: str, run: dict) -> str:
    """One line of progress for a finished run."""
    where = f"{run['frames']:,} frames, {run['wall_s']:.0f} s in all"
    if not run["reached"]:
        return f"{name}: not reached ({where})"
    return (f"{name}: reached at {run['frames_to_threshold']:,} frames, "
            f"{run['study_seconds_to_threshold']:.0f} s into the study ({where})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/time_to_walk.json",
                        help="the report (JSON), rewritten after every run")
    parser.add_argument("--figure", type=Path,
                        help="the figure (PNG); default: --out with .png")
    parser.add_argument("--threshold", type=float, default=300.0,
                        help="running average (last 100 episodes) that counts as walking")
    parser.add_argument("--seed", type=int, default=1, help="seed of all three runs")
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
        plot(json.loads(args.plot_only.read_text()), args.figure)
        return 0

    report: dict[str, Any] = {"machine": machine_description(), "threshold": args.threshold,
                              "seed": args.seed, "load_average_before": os.getloadavg()}

    def record(name: str, run: dict) -> None:
        report[name] = run
        report["load_average_after"] = os.getloadavg()
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(describe(name, run), flush=True)

    with tempfile.TemporaryDirectory() as folder:
        for name, flags in STUDIES.items():
            record(name, run_ours(name, flags, args.threshold, args.seed, Path(folder)))
    scratch = report["scratch"]
    # Unnoticed (it ended on its own first): the whole command's time.
    budget = scratch["noticed_after_s"] or scratch["wall_s"]
    record("sb3", run_sb3(budget, args.threshold, args.seed))
    plot(report, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Wall-clock to walk (issue 19, item 4): how long a user waits for a walker that walks.

    python benchmarks/time_to_walk.py --out benchmarks/time_to_walk.json   # ~5 minutes on 2 cores
    python benchmarks/time_to_walk.py --plot_only benchmarks/time_to_walk.json  # redraw the figure

One run each, one after another, on the same machine:

- scratch: `run.py --leg_length=34` with the default hyperparameters, until its training
  running average (last 100 episodes, as `analyze.py` computes it) first reaches 300;
- transfer: `run.py --leg_length=30 --initial_model=leg_34_trained` (the default strategy,
  `initialize`), the same;
- SB3: Stable-Baselines3 PPO with RL Zoo's BipedalWalker-v3 settings as the zoo runs them (32
  walkers in one process, VecNormalize, the default MlpPolicy, torch's default threads), on
  our walker with training's settings, given the wall-clock that scratch needed.

Our studies run as a user runs them (a fresh `python run.py`); the report gives the study's
own clock at the episode that reached the threshold and the whole command's time (start-up and
shut-down included). Each one's frame budget is a cap: it is stopped once the threshold shows.
Returns are training returns (exploration noise in force), episode by episode, for all three.
"""

from __future__ import annotations

import argparse
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
from ppo.results import SCORE_WINDOW  # noqa: E402

SB3_ZOO_ENVS = 32
"""RL Zoo's n_envs for BipedalWalker-v3 (its default vec_env: DummyVecEnv, one process)."""

STUDIES = {
    "scratch": ["--leg_length=34", "--total_frames=4e6"],
    "transfer": ["--leg_length=30", "--initial_model=leg_34_trained", "--total_frames=1e6"],
}
"""Our two studies: the flags after --save_name; --total_frames is only a cap."""


def first_reaching(rewards: np.ndarray, threshold: float) -> int | None:
    """Index of the first episode whose running average reaches `threshold`."""
    reached = np.flatnonzero(running_average(rewards, SCORE_WINDOW) >= threshold)
    return int(reached[0]) if len(reached) else None


def curve(episodes: dict[str, list[float]]) -> dict[str, list[float]]:
    """Running average against the study's wall-clock."""
    rewards = np.asarray(episodes["reward"])
    return {"seconds": list(episodes["wall_time"]),
            "frames": list(episodes["frames"]),
            "running_average": running_average(rewards, SCORE_WINDOW).tolist()}


def run_ours(name: str, flags: list[str], threshold: float, seed: int, folder: Path) -> dict:
    """One `python run.py` study, stopped (SIGINT, which keeps its files) once the running
    average reaches `threshold`; polled from its results file every few seconds."""
    command = [sys.executable, "run.py", f"--save_name=ttw_{name}", *flags, f"--seed={seed}",
               f"--models_dir={folder}", f"--results_dir={folder}", "--quiet=true"]
    results = folder / f"ttw_{name}.p"
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    reached_at = None
    while process.poll() is None:
        time.sleep(2)
        if reached_at is None and results.exists() and reached(results, threshold):
            reached_at = time.perf_counter() - started
            process.send_signal(signal.SIGINT)
    wall_s = time.perf_counter() - started
    episodes = pickle.loads(results.read_bytes())["episodes"]
    index = first_reaching(np.asarray(episodes["reward"]), threshold)
    return {"command": " ".join(["python", *command[1:]]), "returncode": process.returncode,
            "wall_s": wall_s, "episodes": len(episodes["reward"]),
            "frames": episodes["frames"][-1],
            "reached": index is not None,
            "frames_to_threshold": episodes["frames"][index] if index is not None else None,
            "study_seconds_to_threshold":
                episodes["wall_time"][index] if index is not None else None,
            "noticed_after_s": reached_at,
            "outside_study_clock_s": wall_s - episodes["wall_time"][-1],
            "curve": curve(episodes)}


def reached(results: Path, threshold: float) -> bool:
    """Whether the study's results file (written after every batch) shows the threshold."""
    try:
        episodes = pickle.loads(results.read_bytes())["episodes"]
    except (OSError, EOFError, pickle.UnpicklingError):
        return False
    return first_reaching(np.asarray(episodes["reward"]), threshold) is not None


def run_sb3(seconds: float, seed: int) -> dict:
    """SB3 PPO, RL Zoo settings, on our walker for `seconds` of wall-clock (start-up included)."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    import envs
    from ppo.config import Config

    started = time.perf_counter()
    env_kwargs = Config(save_name="time_to_walk").env_kwargs()

    def make_env() -> gym.Env:
        return Monitor(gym.make(envs.ENV_ID, **env_kwargs))

    class UntilDeadline(BaseCallback):
        """Records every finished episode; stops the study when the time is up."""

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

    vec_env = VecNormalize(DummyVecEnv([make_env] * SB3_ZOO_ENVS), gamma=SB3_ZOO_PPO["gamma"])
    model = PPO("MlpPolicy", vec_env, device="cpu", seed=seed, verbose=0, **SB3_ZOO_PPO)
    callback = UntilDeadline()
    model.learn(total_timesteps=10**10, callback=callback)
    vec_env.close()
    episodes = callback.episodes
    rewards = np.asarray(episodes["reward"])
    averages = running_average(rewards, SCORE_WINDOW) if len(rewards) else np.array([np.nan])
    return {"settings": {"n_envs": SB3_ZOO_ENVS, "vec_env": "DummyVecEnv", **SB3_ZOO_PPO,
                         "torch_threads": torch.get_num_threads()},
            "wall_s": time.perf_counter() - started, "frames": model.num_timesteps,
            "episodes": len(rewards), "final_running_average": float(averages[-1]),
            "best_running_average": float(averages.max()), "curve": curve(episodes)}


def plot(report: dict, path: Path) -> None:
    """Running average against wall-clock, the three runs on one axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"scratch": "ours, from scratch, leg 34",
              "transfer": "ours, from leg_34_trained, leg 30",
              "sb3": "SB3 PPO (RL Zoo settings), leg 34"}
    figure, axis = plt.subplots(figsize=(7, 4))
    for name, label in labels.items():
        run = report[name]["curve"]
        axis.plot(run["seconds"], run["running_average"], label=label)
    axis.axhline(report["threshold"], color="grey", linestyle="--", linewidth=1,
                 label=f"running average {report['threshold']:g}")
    axis.set(xlabel="wall-clock seconds since the study started",
             ylabel=f"running average of {SCORE_WINDOW} episodes",
             title="Time to walk on this 2-core machine, one run each")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", bbox_to_anchor=(1.0, 0.1))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks/time_to_walk.json")
    parser.add_argument("--threshold", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--figure", type=Path, default=REPO_ROOT / "docs/time_to_walk.png")
    parser.add_argument("--plot_only", type=Path, metavar="JSON",
                        help="redraw --figure from a report this script wrote; run nothing")
    args = parser.parse_args(argv)
    if args.plot_only:
        plot(json.loads(args.plot_only.read_text()), args.figure)
        return 0

    report: dict[str, Any] = {"machine": machine_description(), "threshold": args.threshold,
                              "seed": args.seed, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as folder:
        for name, flags in STUDIES.items():
            report[name] = run_ours(name, flags, args.threshold, args.seed, Path(folder))
            print(f"{name}: {summary(report[name])}", flush=True)
    scratch = report["scratch"]
    budget = scratch["noticed_after_s"] or scratch["wall_s"]
    report["sb3"] = run_sb3(budget, args.seed)
    print(f"sb3 in {budget:.0f} s: {report['sb3']['frames']:,} frames, running average "
          f"{report['sb3']['final_running_average']:.1f} "
          f"(best {report['sb3']['best_running_average']:.1f})", flush=True)
    report["load_average_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    plot(report, args.figure)
    return 0


def summary(study: dict) -> str:
    if not study["reached"]:
        return f"not reached in {study['frames']:,} frames ({study['wall_s']:.0f} s)"
    return (f"{study['frames_to_threshold']:,} frames, {study['study_seconds_to_threshold']:.0f} s "
            f"into the study, noticed {study['noticed_after_s']:.0f} s after the command started")


if __name__ == "__main__":
    sys.exit(main())

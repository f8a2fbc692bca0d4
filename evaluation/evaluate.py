"""Running a saved policy without training it: evaluate it, watch it, or record it.

All three act deterministically (the actor's mean action, through the policy's own observation
normaliser) and play episode i (counting from 0) with seed `--seed` + i in a walker of its own,
so an episode depends only on the policy, the env flags and its seed: the same flags give the
same episodes, and `--seed=7 --record=x.gif` shows exactly the episode that `--seed=5
--eval_episodes=3` scored third. (A fresh walker per episode is needed for that: a Box2D world
reused across resets, Gymnasium's BipedalWalker-v3's included, plays a seed slightly
differently after an even number of earlier episodes.)

The walker is the one the env flags describe, which need not be the one the policy was trained
for: `--leg_length=30` with a policy trained at 34 is a zero-shot transfer check. A
design-conditioned policy (trained with a design range such as `--leg_length=24:46`) is fed the
walker's design in its observation, scaled as in its training, at whatever fixed design or range
the flags give.

Which policy: `--initial_model` if given (looked up as for training), else
`<models_dir>/<save_name>.pt`.
"""

from __future__ import annotations

import itertools
import json
import math
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.bipedal_walker import VIEWPORT_H, VIEWPORT_W

import envs
from common.checkpoint import (
    atomic_write_bytes,
    design_inputs_of,
    library_versions,
    load_checkpoint,
    policy_from_checkpoint,
    trained_env,
)
from common.config import Config
from common.errors import OutputError, UsageError, interrupt_exit_status, raise_interrupted
from common.models import resolve_model_path
from common.study_files import StudyFiles, check_output_file
from evaluation.policy import fit_problem
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic

FrameHook = Callable[[gym.Env, int, int, float], None]
"""Called after each reset and each step with (env, episode index, step, return so far)."""

@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    episode_return: float
    length: int
    outcome: str
    """"fell" (hull touched the ground or walker left the course to the left: the fall penalty),
    "finished" (passed the finish line) or "time limit" (truncated at max_time_steps)."""

    @property
    def fell(self) -> bool:
        return self.outcome == "fell"

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "return": self.episode_return, "length": self.length,
                "fell": self.fell, "outcome": self.outcome}


# ----- the policy ------------------------------------------------------------------------------

def policy_path(config: Config) -> Path:
    """The .pt to run; a missing one is the same one-line UsageError as for `--initial_model`."""
    models_dir = Path(config.models_dir)
    if config.has_initial_model:
        return resolve_model_path(config.initial_model, models_dir)
    if not config.save_name:
        raise UsageError("--initial_model: name the policy to run (trained_models/NAME.pt or a "
                         "path to a .pt), or give the --save_name of a trained study")
    try:
        return resolve_model_path(config.save_name, models_dir)
    except UsageError as error:
        detail = str(error).removeprefix("--initial_model: ")
        raise UsageError(f"--save_name: {detail}; train it first, or name a policy with "
                         f"--initial_model") from None


def load_policy(config: Config) -> tuple[ActorCritic, dict[str, Any], Path]:
    """The policy the flags name, checked to fit the walker, in eval mode; its checkpoint; path.

    Any file that is not a usable policy is one UsageError line naming the mode's flag.
    """
    path = policy_path(config)
    flag = config.mode
    checkpoint = load_checkpoint(path, flag)
    try:
        env = make_env(config, design_inputs_of(checkpoint))
    except (TypeError, ValueError) as error:  # design inputs the walker cannot take
        raise UsageError(f"--{flag}: {path}: its design inputs do not fit this walker "
                         f"({error})") from None
    problem = fit_problem(checkpoint, env)
    env.close()
    if problem:
        raise UsageError(f"--{flag}: {path}: {problem}")
    return policy_from_checkpoint(checkpoint).eval(), checkpoint, path


def act(policy: ActorCritic | PolicySnapshot, observation: np.ndarray) -> np.ndarray:
    """Deterministic action, shape (act_dim,), float32: the mean of the policy's distribution.

    Through the NumPy pass the rollout uses (`ppo.inference`): a quarter of torch's time per
    step on one row, and the same actions to float32 rounding."""
    snapshot = policy if isinstance(policy, PolicySnapshot) else PolicySnapshot(policy)
    return snapshot.mean_action(snapshot.normalize(observation[np.newaxis]))[0]


def describe_policy(path: Path, checkpoint: dict[str, Any], config: Config) -> str:
    details = []
    trained_on = trained_env(checkpoint)
    if trained_on:
        details.append(f"trained on {envs.describe_design(trained_on)}")
    if isinstance(checkpoint.get("frames"), int):
        details.append(f"{checkpoint['frames']:,} frames")
    if isinstance(checkpoint.get("score"), int | float) and math.isfinite(checkpoint["score"]):
        kind = checkpoint.get("score_kind") or "running average of training episodes"
        details.append(f"score {checkpoint['score']:.1f}: {kind}")
    line = f"policy: {path}" + (f" ({', '.join(details)})" if details else "")
    differences = envs.design_differences(trained_on, config.env_kwargs()) if trained_on else []
    if differences:
        line += f"\nzero-shot transfer: {', '.join(differences)}"
    return line


def warn_if_outside(path: Path, checkpoint: dict[str, Any], config: Config) -> None:
    """On stderr, quiet or not: a policy run where it never learned to walk."""
    trained_on = trained_env(checkpoint)
    warning = envs.outside_warning(path.name, trained_on, config.env_kwargs())
    if trained_on and warning:
        print(warning, file=sys.stderr, flush=True)


def describe_walker(config: Config) -> str:
    kwargs = config.env_kwargs()
    course = ", ".join(f"{name} {kwargs[name]:g}"
                       for name in ("terrain_length_scale", "fall_penalty", "max_time_steps"))
    return f"walker: {envs.describe_design(kwargs)}; {course}"


# ----- episodes --------------------------------------------------------------------------------

def make_env(config: Config, design_inputs: dict[str, list[float]] | None = None,
             render_mode: str | None = None) -> gym.Env:
    """The walker the flags describe, observing `design_inputs` (None: its own ranges)."""
    return gym.make(config.env, render_mode=render_mode,
                    **{**config.env_kwargs(), "design_inputs": design_inputs})


def outcome_of(env: gym.Env, terminated: bool) -> str:
    """Why an episode ended, by the walker's own rule for the fall penalty."""
    if not terminated:
        return "time limit"
    walker = env.unwrapped
    return "fell" if walker.game_over or walker.hull.position[0] < 0 else "finished"


def run_episode(env: gym.Env, policy: ActorCritic | PolicySnapshot, seed: int, episode: int = 0,
                on_frame: FrameHook | None = None) -> EpisodeResult:
    """One deterministic episode from `env.reset(seed=seed)`; `episode` is only passed on."""
    policy = policy if isinstance(policy, PolicySnapshot) else PolicySnapshot(policy)
    observation, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 0
    if on_frame:
        on_frame(env, episode, length, episode_return)
    while True:
        observation, reward, terminated, truncated, _ = env.step(act(policy, observation))
        episode_return += reward
        length += 1
        if on_frame:
            on_frame(env, episode, length, episode_return)
        if terminated or truncated:
            return EpisodeResult(seed, episode_return, length, outcome_of(env, terminated))


def play(config: Config, policy: ActorCritic | PolicySnapshot, episodes: int | None,
         render_mode: str | None = None, on_frame: FrameHook | None = None,
         design_inputs: dict[str, list[float]] | None = None,
         seeds: Sequence[int] | None = None) -> Iterator[EpisodeResult]:
    """Episode i with seed `config.seed + i` (or `seeds[i]`), each in a fresh walker;
    `episodes=None`: no end.

    `design_inputs`: what the policy observes of the design (its checkpoint's). A fresh walker
    reset with a seed draws its terrain and, over a design range, its body from that seed
    alone, so fixed seeds are fixed episodes, designs included.
    """
    # The weights do not change during the episodes. A snapshot is taken as it is: a worker
    # process plays its share of an evaluation with the one the trainer sent it.
    snapshot = policy if isinstance(policy, PolicySnapshot) else PolicySnapshot(policy)
    counter: Iterable[int] = range(episodes) if episodes is not None else itertools.count()
    for episode in counter:
        seed = seeds[episode] if seeds is not None else config.seed + episode
        env = make_env(config, design_inputs, render_mode)
        try:
            yield run_episode(env, snapshot, seed, episode, on_frame)
        finally:
            env.close()


CONFIDENCE = 0.95
RECOMMENDED_EPISODES = 30
"""Numbers quoted from deterministic episodes use at least this many (docs/guide.md)."""


def interval95(values: Sequence[float]) -> tuple[float, float]:
    """95% Student-t interval of the mean of `values` (a point for a single value)."""
    data = np.asarray(values, dtype=np.float64)
    mean = float(data.mean())
    if len(data) < 2:
        return mean, mean
    from scipy.stats import t

    half = float(t.ppf(0.5 + CONFIDENCE / 2, len(data) - 1) * data.std(ddof=1)
                 / math.sqrt(len(data)))
    return mean - half, mean + half


def summarize(results: list[EpisodeResult], with_interval: bool = True) -> dict[str, Any]:
    """Mean return with its 95% t interval (`with_interval`) and (population) standard
    deviation, mean length, fall and finish rates, and the mean steps of the finished episodes
    (None: none finished).

    Evaluation during training keeps no interval: leaving it out spares the study's clock the
    import of scipy.stats (measured: benchmarks/README.md, issue 27)."""
    returns = np.array([r.episode_return for r in results], dtype=np.float64)
    finished = [r.length for r in results if r.outcome == "finished"]
    interval = {"return_ci95": list(interval95(returns))} if with_interval else {}
    return {
        "episodes": len(results),
        "mean_return": float(returns.mean()),
        **interval,
        "std_return": float(returns.std()),
        "mean_length": float(np.mean([r.length for r in results])),
        "fall_rate": sum(r.fell for r in results) / len(results),
        "finish_rate": len(finished) / len(results),
        "mean_steps_to_finish": float(np.mean(finished)) if finished else None,
    }


def describe_episode(result: EpisodeResult, episode: int, episodes: int | None) -> str:
    of = f"/{episodes}" if episodes else ""
    return (f"episode {episode + 1}{of} (seed {result.seed}): return {result.episode_return:.2f}, "
            f"{result.length} steps, {result.outcome}")


def print_summary(summary: dict[str, Any], results: list[EpisodeResult]) -> None:
    episodes = summary["episodes"]
    falls = sum(r.fell for r in results)
    finishes = sum(r.outcome == "finished" for r in results)
    if episodes > 1:
        low, high = summary["return_ci95"]
        print(f"return: {summary['mean_return']:.2f} \u00b1 {summary['std_return']:.2f} "
              f"(mean \u00b1 std over {episodes} episodes), 95% interval of the mean "
              f"[{low:.2f}, {high:.2f}]")
    else:  # one episode has no spread: an interval would be a point
        print(f"return: {summary['mean_return']:.2f} (one episode: no interval)")
    print(f"length: {summary['mean_length']:.1f} steps (mean)")
    print(f"falls:  {falls}/{episodes} ({100 * summary['fall_rate']:.1f}%)")
    steps = (f", in {summary['mean_steps_to_finish']:.0f} steps (mean)" if finishes else "")
    print(f"finished: {finishes}/{episodes} ({100 * summary['finish_rate']:.1f}%){steps}")
    if episodes < RECOMMENDED_EPISODES:
        print(f"note: fewer than {RECOMMENDED_EPISODES} episodes; quote numbers from at least "
              f"{RECOMMENDED_EPISODES}, with their interval (docs/guide.md)")


# ----- the three modes, each returning run.py's exit status --------------------------------------

def walker_name(config: Config) -> str:
    """The walker in a report's name: each design and course setting that is not its default
    (`thigh_length30_leg_width6`, a range `leg_length24-46`), or `default`. Evaluating one
    policy on many bodies then keeps one report per body, with no name to choose."""
    settings = {**config.design(), **{name: getattr(config, name) for name in envs.COURSE_DEFAULTS}}
    defaults = {**envs.DESIGN_DEFAULTS, **envs.COURSE_DEFAULTS}
    parts = [f"{name}{value.low:g}-{value.high:g}" if isinstance(value, tuple)
             else f"{name}{value:g}" for name, value in settings.items()
             if value != defaults[name]]
    return "_".join(parts) or "default"


def evaluate(config: Config) -> int:
    """--eval_episodes=N: print the statistics, write results/<save_name>_eval.json (without
    --save_name, <policy>_on_<walker>_eval.json: one per policy and body), and end with the
    machine-readable line `mean_return=<float>`."""
    policy, checkpoint, path = load_policy(config)
    name = config.save_name or f"{path.stem}_on_{walker_name(config)}"
    results_path = StudyFiles(Path(config.models_dir), Path(config.results_dir), name).evaluation
    check_output_file(results_path, "results_dir")  # before the episodes, not after them
    walker = {"env": config.env, **config.env_kwargs(),
              "design_inputs": design_inputs_of(checkpoint)}
    if not config.overwrite:
        check_same_evaluation(results_path, path, walker)
    print(describe_policy(path, checkpoint, config))
    warn_if_outside(path, checkpoint, config)
    print(describe_walker(config))
    results = []
    try:
        for result in play(config, policy, config.eval_episodes,
                           design_inputs=design_inputs_of(checkpoint)):
            if not config.quiet:
                print(describe_episode(result, len(results), config.eval_episodes), flush=True)
            results.append(result)
    except KeyboardInterrupt as interrupt:
        print("run.py: evaluation interrupted; nothing written", file=sys.stderr)
        return interrupt_exit_status(interrupt)
    summary = summarize(results)
    print_summary(summary, results)
    report = {
        "save_name": name,
        "policy": str(path),
        "policy_env": checkpoint.get("env"),
        "policy_frames": checkpoint.get("frames"),
        "env": walker,
        "seed": config.seed,
        "deterministic": True,
        "summary": summary,
        "episodes": [result.as_dict() for result in results],
        "versions": library_versions(),
    }
    atomic_write_bytes(results_path, (json.dumps(report, indent=2) + "\n").encode())
    print(f"results: {results_path}")
    print(f"mean_return={summary['mean_return']!r}")
    return 0


def check_same_evaluation(results_path: Path, policy: Path, walker: dict[str, Any]) -> None:
    """An evaluation report is replaced only by one of the same policy on the same walker (a
    rerun, perhaps with other episodes); another's is refused unless --overwrite=true."""
    if not results_path.exists():
        return
    try:
        report = json.loads(results_path.read_text())
        same = (Path(report["policy"]).resolve() == policy.resolve()
                and report["env"] == json.loads(json.dumps(walker)))
    except (OSError, ValueError, TypeError, KeyError):
        same = False
    if not same:
        raise UsageError(f"--overwrite: {results_path} holds the evaluation of another policy "
                         f"or walker; keep both with another --save_name, or replace it with "
                         f"--overwrite=true")


def overlay_lines(env: gym.Env, episode: int, episodes: int | None, step: int,
                  episode_return: float) -> list[str]:
    """The body being shown (drawn anew each episode for a design range), episode, return."""
    of = f"/{episodes}" if episodes else ""
    design = env.unwrapped.design
    legs = [design.leg(side)[:2] for side in ("left", "right")]
    if legs[0] != legs[1]:
        body = " / ".join(f"{side} thigh {thigh:.3g} shin {shin:.3g}"
                          for side, (thigh, shin) in zip(("left", "right"), legs, strict=True))
    elif design.thigh_length == design.shin_length:
        body = f"leg length {design.thigh_length:g}"
    else:
        body = f"thigh {design.thigh_length:g} shin {design.shin_length:g}"
    return [f"{body}    episode {episode + 1}{of}",
            f"step {step}    return {episode_return:.1f}"]


def record(config: Config) -> int:
    """--record=PATH: write `--eval_episodes` episodes (default 1) as a .gif or .mp4, with an
    overlay; needs no display. Frames per episode: see `evaluation.video.frames_in_video`."""
    from evaluation.video import (  # pygame and imageio only for the modes that draw
        Overlay,
        VideoFile,
    )

    episodes = config.eval_episodes or 1
    check_output_file(Path(config.record), "record", create_folder=False)  # before the policy
    policy, checkpoint, path = load_policy(config)
    print(describe_policy(path, checkpoint, config))
    warn_if_outside(path, checkpoint, config)
    print(describe_walker(config))
    overlay = Overlay()
    try:
        video = VideoFile(Path(config.record))
    except OSError as error:
        raise OutputError(config.record, error) from None

    def add_frame(env: gym.Env, episode: int, step: int, episode_return: float) -> None:
        lines = overlay_lines(env, episode, episodes, step, episode_return)
        video.offer(lambda: overlay.draw(env.render(), lines))

    results = []
    try:
        for result in play(config, policy, episodes, "rgb_array", add_frame,
                           design_inputs_of(checkpoint)):
            print(describe_episode(result, len(results), episodes), flush=True)
            results.append(result)
            video.end_episode()
        video.close()
    except BaseException as error:
        video.discard()
        if isinstance(error, OSError):  # disk full, permission lost
            raise OutputError(config.record, error) from None
        if not isinstance(error, KeyboardInterrupt):
            raise
        print("run.py: recording interrupted; no video written", file=sys.stderr)
        return interrupt_exit_status(error)
    summary = summarize(results)
    print_summary(summary, results)
    print(f"video: {config.record} ({video.written} frames at {video.fps:g} fps)")
    print(f"mean_return={summary['mean_return']!r}")
    return 0


def watch(config: Config) -> int:
    """--render=true: show the policy in a window, episode after episode, until the window is
    closed (or Escape, q), or after `--eval_episodes` episodes if given; then status 0. Ctrl-C
    ends it with 130 and SIGTERM with 143, as they end a training run. Writes nothing."""
    from evaluation.video import Overlay, Window, WindowClosed, display_problem, no_window_error

    problem = display_problem()  # before loading anything: say at once that it cannot work
    if problem:
        raise no_window_error(problem)
    episodes = config.eval_episodes or None
    policy, checkpoint, path = load_policy(config)
    print(describe_policy(path, checkpoint, config))
    warn_if_outside(path, checkpoint, config)
    print(describe_walker(config))
    overlay = Overlay()
    window = None

    def show_frame(env: gym.Env, episode: int, step: int, episode_return: float) -> None:
        lines = overlay_lines(env, episode, episodes, step, episode_return)
        caption = f"transfer_rl: {path.name} | " + " | ".join(lines)
        window.show(overlay.draw(env.render(), lines), caption)

    # Installed before the window exists: SDL turns SIGTERM into a window-close event (status 0)
    # only where the process still has the default handler.
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        window = Window(VIEWPORT_W, VIEWPORT_H, f"transfer_rl: {path.name}")
        print("close the window, or press Escape or Ctrl-C, to stop", flush=True)
        shown = play(config, policy, episodes, "rgb_array", show_frame,
                     design_inputs_of(checkpoint))
        for count, result in enumerate(shown):
            print(describe_episode(result, count, episodes), flush=True)
        status = 0
    except WindowClosed:
        print("stopped")
        status = 0
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (raise_interrupted)
        status = interrupt_exit_status(interrupt)
        print("stopped" if status == 128 + signal.SIGINT else f"stopped by signal {status - 128}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if window is not None:
            window.close()
    return status


"""Throughput of the walker and of training, as ratios taken in one run (issues 9 and 19).

    python benchmarks/throughput.py --out benchmarks/results.json
    python benchmarks/throughput.py --quick      # 8 walkers, 2 repeats, no SB3: ~1-2 minutes

Every figure is measured in its own fresh Python process (no state, threads or memory carried
from one measurement to the next), and each repeat measures everything once, in turn, so that
a machine whose load changes during the run slows all figures alike. The report gives medians
over the repeats and the ratios the issues set goals for:

- training / machine (the headline): frames per second of a whole study against what the
  machine can step: our walker with training's settings and random actions, stepped by one
  independent process per core (`os.cpu_count()`), nothing crossing between them, all at once;
- ours / Gymnasium: raw `step` rate of our walker against BipedalWalker-v3, both made with
  `gym.make` at the settings where they are the same walker, random actions, one process,
  taking turns;
- training / pool: frames per second of a whole study (`study.trainer.train` with default
  hyperparameters: rollouts, updates, checkpoints) against stepping the same WalkerPool
  (same environments and worker processes) with random actions and nothing else;
- ours / SB3: our study against Stable-Baselines3 PPO (RL Zoo's BipedalWalker-v3 settings,
  MlpPolicy [32, 32, 32, 32]) on our walker with the same number of environments, when
  stable_baselines3 is installed;
- TensorBoard on / off: the same study with its events written (`--tensorboard`) against
  without (the default here), taken one after the other; and, within each study, the share of
  its wall time spent writing events and computing the per-update diagnostics.

Each ratio is the median over repeats of two figures taken one after the other. Timings are
wall-clock. A study's time is split by the training process's clock (waiting for the walkers,
its own rollout work, updates, the rest) and by CPU time: what the trainer and the workers
did not spend on a core is their idle time. Peak memory is that of the whole study (trainer
and workers), sampled from /proc while it runs. A study's figure includes its start-up
(creating walkers and worker processes), as a user would see it; so does SB3's (torch's
one-off lazy imports are paid before the clock).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

GYMNASIUM_ARGS = {"leg_length": 34, "terrain_length_scale": 1, "fall_penalty": -100,
                  "max_time_steps": 1600}
"""Our walker's arguments under which it is Gymnasium's BipedalWalker-v3, bit for bit."""

SB3_ZOO_PPO = {"n_steps": 2048, "batch_size": 64, "gae_lambda": 0.95, "gamma": 0.999,
               "n_epochs": 10, "ent_coef": 0.0, "learning_rate": 3e-4, "clip_range": 0.18}
"""RL Zoo's hyperparameters for BipedalWalker-v3 (hyperparams/ppo.yml; observations and
rewards normalised by VecNormalize there too)."""

MIB = 1024 * 1024


# ----- measurements, each run in a fresh process --------------------------------------------


def measure_envs(steps: int, seed: int, chunk: int = 250) -> dict:
    """Raw `step` rates of Gymnasium's walker and ours, taken in turns of `chunk` steps.

    Both made with `gym.make`, ours with GYMNASIUM_ARGS (the same walker, the same episodes),
    stepped with the same uniform random float32 actions, finished episodes reset. Taking
    turns in one process shares out the machine's changing load between the two.
    """
    import gymnasium as gym
    import numpy as np

    from envs import ENV_ID

    walkers = {"gymnasium": gym.make("BipedalWalker-v3"),
               "ours": gym.make(ENV_ID, **GYMNASIUM_ARGS)}
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, 4)).astype(np.float32)
    elapsed = dict.fromkeys(walkers, 0.0)
    episodes = dict.fromkeys(walkers, 0)
    for env in walkers.values():
        env.reset(seed=seed)
    for start in range(0, steps, chunk):
        for name, env in walkers.items():
            started = time.perf_counter()
            for action in actions[start:start + chunk]:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
                    episodes[name] += 1
            elapsed[name] += time.perf_counter() - started
    return {"gymnasium_steps_per_s": steps / elapsed["gymnasium"],
            "ours_steps_per_s": steps / elapsed["ours"], "steps": steps,
            "episodes": episodes["ours"]}


def step_walker_until(start: float, seconds: float, seed: int) -> int:
    """Steps of one walker (training's settings, uniform random actions, finished episodes
    reset) from `start` until `seconds` later, both on the `time.monotonic` clock."""
    import gymnasium as gym
    import numpy as np

    from common.config import Config

    config = Config(save_name="benchmark")
    env = gym.make(config.env, **config.env_kwargs())
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-1, 1, (4096, *env.action_space.shape)).astype(np.float32)
    env.reset(seed=seed)
    time.sleep(max(0.0, start - time.monotonic()))
    deadline = start + seconds
    steps = 0
    while time.monotonic() < deadline:
        _, _, terminated, truncated, _ = env.step(actions[steps % len(actions)])
        if terminated or truncated:
            env.reset()
        steps += 1
    return steps


def measure_machine(seconds: float, seed: int) -> dict:
    """What the machine can step: one independent process per core, each stepping its own
    walker for the same `seconds` window, nothing crossing between them; frames/s of all."""
    import multiprocessing as mp

    processes = os.cpu_count() or 1
    # Every process builds its walker first; the window starts once all could have.
    start = time.monotonic() + 2.0 + 0.2 * processes
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with context.Pool(processes) as pool:
        steps = pool.starmap(step_walker_until,
                             [(start, seconds, seed + i) for i in range(processes)])
    return {"frames_per_s": sum(steps) / seconds, "processes": processes,
            "per_process_frames_per_s": [count / seconds for count in steps]}


def benchmark_config(num_envs: int, batches: int, folder: str, **overrides: Any):
    """Default hyperparameters, `batches` batches, output into `folder`, no TensorBoard events
    unless `tensorboard=folder` is among the overrides."""
    from common.config import Config

    settings = {"tensorboard": "none", **overrides}
    base = Config(save_name="benchmark", num_envs=num_envs, quiet=True, models_dir=folder,
                  results_dir=folder, **settings)
    return dataclasses.replace(base, total_frames=batches * base.frames_per_batch)


def measure_pool(num_envs: int, frames: int, seed: int) -> dict:
    """The WalkerPool a study of `num_envs` would use, stepped with random actions only."""
    import numpy as np

    from study.trainer import walker_seeds
    from workers.vector import WalkerPool

    with tempfile.TemporaryDirectory() as folder:
        config = benchmark_config(num_envs, 1, folder)
    pool = WalkerPool(config.env, config.env_kwargs(), config.num_envs, config.worker_processes)
    steps = max(frames // num_envs, 1)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, num_envs, 4)).astype(
        np.float32)
    try:
        pool.reset(walker_seeds(seed, num_envs))
        started = time.perf_counter()
        for step_actions in actions:
            pool.step(step_actions)
        elapsed = time.perf_counter() - started
    finally:
        pool.close()
    return {"frames_per_s": steps * num_envs / elapsed, "frames": steps * num_envs,
            "workers": len(pool.workers)}


def warm_up_torch() -> None:
    """Pay torch's one-off lazy imports (the first optimizer pulls in torch._dynamo, seconds on
    a busy machine) before the clock starts, for our study and SB3's alike."""
    import torch

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def measure_training(num_envs: int, batches: int, seed: int, tensorboard: bool = False
                     ) -> dict:
    """A whole study (`study.trainer.train`), default hyperparameters, `batches` batches, with
    or without TensorBoard events.

    Also where the training process's time went: stepping the walkers (waiting for the
    workers' rollouts, or stepping in this process without workers), the rest of the rollouts
    (buffers, bookkeeping; the policy too without workers), the updates, and the remainder
    (start-up, advantages, checkpoints, results files); inside those, writing the events
    (`add_batch`, per batch; the writer's own thread is not on this clock), opening and
    closing the writer (once per study: importing tensorboard, flushing) and the diagnostics
    (`UpdateDiagnostics`); and the CPU time of the training process and of its workers, the
    rest of their wall-clock time being idle.
    """
    from ppo import algorithm, diagnostics
    from study import tensorboard_log, trainer
    from workers.vector import WalkerPool

    clocks = {"step_s": 0.0, "rollout_wait_s": 0.0, "rollout_s": 0.0, "update_s": 0.0,
              "tensorboard_s": 0.0, "tensorboard_open_close_s": 0.0, "diagnostics_s": 0.0}

    def timed(function, clock):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                clocks[clock] += time.perf_counter() - started
        return wrapper

    class TimedPool(WalkerPool):
        _take = timed(WalkerPool._take, "step_s")
        finish_rollout = timed(WalkerPool.finish_rollout, "rollout_wait_s")

    trainer.WalkerPool = TimedPool
    for phase in ("start_rollout", "finish_rollout"):
        setattr(algorithm, phase, timed(getattr(algorithm, phase), "rollout_s"))
    algorithm.update = timed(algorithm.update, "update_s")
    tensorboard_log.TensorBoardLog.add_batch = timed(tensorboard_log.TensorBoardLog.add_batch,
                                                     "tensorboard_s")
    trainer.open_tensorboard = timed(trainer.open_tensorboard, "tensorboard_open_close_s")
    tensorboard_log.TensorBoardLog.close = timed(tensorboard_log.TensorBoardLog.close,
                                                 "tensorboard_open_close_s")
    for method in ("add", "summary"):
        setattr(diagnostics.UpdateDiagnostics, method,
                timed(getattr(diagnostics.UpdateDiagnostics, method), "diagnostics_s"))
    warm_up_torch()
    with tempfile.TemporaryDirectory() as folder:
        events = {"tensorboard": folder} if tensorboard else {}
        config = benchmark_config(num_envs, batches, folder, seed=seed, **events)
        trainer_cpu = cpu_seconds(resource.RUSAGE_SELF)
        workers_cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        outcome = trainer.train(config)
        elapsed = time.perf_counter() - started
        trainer_cpu = cpu_seconds(resource.RUSAGE_SELF) - trainer_cpu
        workers_cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - workers_cpu  # reaped by now
    # ru_maxrss is in KiB on Linux; for children it is the largest one (a worker).
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    workers = config.worker_processes
    stepping = clocks["rollout_wait_s"] if workers else clocks["step_s"]
    return {"frames_per_s": outcome.frames / elapsed, "frames": outcome.frames,
            "collect_frames_per_s": outcome.frames / clocks["rollout_s"],
            "wall_s": elapsed, **clocks, "stepping_s": stepping,
            "policy_and_bookkeeping_s": clocks["rollout_s"] - stepping,
            "other_s": elapsed - clocks["rollout_s"] - clocks["update_s"],
            "trainer_cpu_s": trainer_cpu, "trainer_idle_s": elapsed - trainer_cpu,
            "workers_cpu_s": workers_cpu,
            "workers_idle_s": workers * elapsed - workers_cpu if workers else 0.0,
            "peak_rss_main_mib": main_rss / MIB,
            "peak_rss_worker_mib": worker_rss / MIB if workers else 0.0, "workers": workers,
            "peak_rss_total_mib": (main_rss + workers * worker_rss) / MIB}


def measure_sb3(num_envs: int, rollouts: int, seed: int) -> dict:
    """SB3 PPO on our walker (training defaults), RL Zoo settings, `rollouts` rollouts."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

    import envs
    from common.config import Config

    # Same thread setting as our trainer: tiny networks, and the cores belong to the walkers.
    torch.set_num_threads(1)
    warm_up_torch()
    env_kwargs = Config(save_name="benchmark").env_kwargs()

    def make_env() -> gym.Env:
        return gym.make(envs.ENV_ID, **env_kwargs)

    started = time.perf_counter()
    if num_envs == 1:
        vec_env = DummyVecEnv([make_env])
    else:
        vec_env = SubprocVecEnv([make_env] * num_envs, start_method="fork")
    vec_env = VecNormalize(vec_env)
    model = PPO("MlpPolicy", vec_env, policy_kwargs={"net_arch": [32, 32, 32, 32]},
                device="cpu", seed=seed, verbose=0, **SB3_ZOO_PPO)
    frames = rollouts * SB3_ZOO_PPO["n_steps"] * num_envs
    model.learn(total_timesteps=frames)
    elapsed = time.perf_counter() - started
    vec_env.close()
    return {"frames_per_s": model.num_timesteps / elapsed, "frames": model.num_timesteps,
            "wall_s": elapsed}


TASKS = {"envs": measure_envs, "machine": measure_machine, "pool": measure_pool,
         "train": measure_training, "sb3": measure_sb3}


MEMORY_SAMPLE_S = 0.2
"""How often the orchestrator reads the memory of a measurement's processes."""


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc; just `pid` where that is missing)."""
    pids = [pid]
    for parent in pids:  # grows while iterated: breadth first
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids += [int(child) for child in children.read_text().split()]
            except OSError:  # the thread or process ended meanwhile
                continue
    return pids


def tree_memory(pid: int) -> dict[str, int]:
    """Resident memory of a process tree, in bytes: the sum of RSS (pages shared between a
    forked worker and its parent counted in each) and of PSS (shared pages split between
    the processes sharing them: what the tree adds to the machine)."""
    total = {"rss": 0, "pss": 0}
    for member in process_tree(pid):
        try:
            lines = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition(":")
            if key.lower() in total:
                total[key.lower()] += int(value.split()[0]) * 1024
    return total


def run_task(task: str, **params: Any) -> dict:
    """One measurement in a fresh interpreter; its result is the last line it prints.

    Adds the peak memory of the measurement's whole process tree (sampled every
    MEMORY_SAMPLE_S; zero where /proc is missing)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--task", task,
               "--params", json.dumps(params)]
    child_env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    peak = {"rss": 0, "pss": 0}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=REPO_ROOT,
                                 env=child_env)
        while child.poll() is None:
            for key, value in tree_memory(child.pid).items():
                peak[key] = max(peak[key], value)
            time.sleep(MEMORY_SAMPLE_S)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"{task} {params} failed:\n{err.read()[-3000:]}")
        result = json.loads(out.read().strip().splitlines()[-1])
    return {**result, "peak_tree_rss_mib": peak["rss"] / MIB,
            "peak_tree_pss_mib": peak["pss"] / MIB}


# ----- orchestration and report --------------------------------------------------------------


def sb3_version() -> str | None:
    try:
        import stable_baselines3
    except ImportError:
        return None
    return stable_baselines3.__version__


def machine_description() -> dict:
    import Box2D
    import gymnasium
    import numpy
    import torch

    return {
        "platform": platform.platform(), "processor": platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": numpy.__version__,
        "gymnasium": gymnasium.__version__, "box2d": Box2D.__version__,
        "stable_baselines3": sb3_version(),
    }


def median_of(samples: list[dict], key: str) -> float:
    return statistics.median(sample[key] for sample in samples)


def median_ratio(numerators: list[dict], denominators: list[dict],
                 key: str = "frames_per_s") -> float:
    """Median over repeats of the ratio of two figures taken one after the other: `key` of
    the numerator against the denominator's frames per second."""
    return statistics.median(a[key] / b["frames_per_s"]
                             for a, b in zip(numerators, denominators, strict=True))


def ceiling_given_update(train: list[dict], pool: list[dict]) -> float:
    """The best training/pool a study could reach if its rollouts cost no more than stepping
    the pool: its frames at the pool's rate, plus its measured update time (median)."""
    return statistics.median(
        1 / (1 + t["update_s"] * p["frames_per_s"] / t["frames"])
        for t, p in zip(train, pool, strict=True))


TIME_SPLIT = ("wall_s", "stepping_s", "policy_and_bookkeeping_s", "update_s", "other_s",
              "trainer_cpu_s", "trainer_idle_s", "workers_cpu_s", "workers_idle_s")
"""A study's time split as reported: the training process's clock, then CPU and idle time."""


def run_benchmark(args: argparse.Namespace) -> dict:
    use_sb3 = not args.skip_sb3 and sb3_version() is not None
    samples: dict[str, list[dict]] = {}

    def record(name: str, task: str, **params: Any) -> None:
        result = run_task(task, **params)
        samples.setdefault(name, []).append(result)
        print(f"  {name}: {json.dumps(result)}", flush=True)

    load_before = os.getloadavg()
    started = time.monotonic()
    for repeat in range(args.repeats):
        print(f"repeat {repeat + 1}/{args.repeats}", flush=True)
        seed = repeat
        record("envs", "envs", steps=args.env_steps, seed=seed)
        record("machine", "machine", seconds=args.machine_seconds, seed=seed)
        for num_envs in args.num_envs:
            record(f"pool/{num_envs}", "pool", num_envs=num_envs, frames=args.pool_frames,
                   seed=seed)
            record(f"train/{num_envs}", "train", num_envs=num_envs, batches=args.batches,
                   seed=seed)
            if not args.skip_tensorboard:
                record(f"train_tb/{num_envs}", "train", num_envs=num_envs,
                       batches=args.batches, seed=seed, tensorboard=True)
            if use_sb3:
                record(f"sb3/{num_envs}", "sb3", num_envs=num_envs,
                       rollouts=args.sb3_rollouts, seed=seed)

    machine = samples["machine"]
    rows = []
    for num_envs in args.num_envs:
        train, pool = samples[f"train/{num_envs}"], samples[f"pool/{num_envs}"]
        sb3 = samples.get(f"sb3/{num_envs}")
        with_events = samples.get(f"train_tb/{num_envs}")
        rows.append({
            "num_envs": num_envs,
            "workers": train[0]["workers"],
            "machine_frames_per_s": median_of(machine, "frames_per_s"),
            "pool_frames_per_s": median_of(pool, "frames_per_s"),
            "train_frames_per_s": median_of(train, "frames_per_s"),
            "sb3_frames_per_s": median_of(sb3, "frames_per_s") if sb3 else None,
            "train_over_machine": median_ratio(train, machine),
            "pool_over_machine": median_ratio(pool, machine),
            "train_over_pool": median_ratio(train, pool),
            "collect_over_pool": median_ratio(train, pool, "collect_frames_per_s"),
            "train_ceiling_given_update": ceiling_given_update(train, pool),
            "ours_over_sb3": median_ratio(train, sb3) if sb3 else None,
            "tensorboard_on_over_off": median_ratio(with_events, train) if with_events else None,
            "tensorboard_share": statistics.median(
                t["tensorboard_s"] / t["wall_s"] for t in with_events) if with_events else None,
            "tensorboard_open_close_s": median_of(with_events, "tensorboard_open_close_s")
            if with_events else None,
            "diagnostics_share": statistics.median(t["diagnostics_s"] / t["wall_s"]
                                                   for t in train),
            "train_time_split_s": {key: median_of(train, key) for key in TIME_SPLIT},
            "train_peak_rss_main_mib": max(s["peak_rss_main_mib"] for s in train),
            "train_peak_rss_worker_mib": max(s["peak_rss_worker_mib"] for s in train),
            "train_peak_rss_total_mib": max(s["peak_rss_total_mib"] for s in train),
            "train_peak_tree_pss_mib": max(s["peak_tree_pss_mib"] for s in train),
            "train_peak_tree_rss_mib": max(s["peak_tree_rss_mib"] for s in train),
        })
    walkers = samples["envs"]
    return {
        "machine": machine_description(),
        "settings": {**vars(args), "out": str(args.out), "sb3_zoo_ppo": SB3_ZOO_PPO},
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_s": time.monotonic() - started,
        "env": {"gymnasium_steps_per_s": median_of(walkers, "gymnasium_steps_per_s"),
                "ours_steps_per_s": median_of(walkers, "ours_steps_per_s"),
                "ours_over_gymnasium": statistics.median(
                    w["ours_steps_per_s"] / w["gymnasium_steps_per_s"] for w in walkers),
                "machine_frames_per_s": median_of(machine, "frames_per_s"),
                "machine_processes": machine[0]["processes"]},
        "training": rows,
        "samples": samples,
    }


def format_optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: dict) -> str:
    env = report["env"]
    lines = [
        f"machine: {report['machine']['platform']}, {report['machine']['cpu_count']} cores; "
        f"load average before/after {report['load_average_before'][0]:.1f}/"
        f"{report['load_average_after'][0]:.1f}; medians of {report['settings']['repeats']} "
        f"repeats ({report['wall_s']:.0f} s)",
        "",
        f"walker steps/s (one process, random actions, taking turns): Gymnasium "
        f"{env['gymnasium_steps_per_s']:,.0f}, ours {env['ours_steps_per_s']:,.0f}; "
        f"ours/Gymnasium {env['ours_over_gymnasium']:.2f} (goal >= 1.5)",
        f"machine f/s (our walker, training's settings, {env['machine_processes']} independent "
        f"processes): {env['machine_frames_per_s']:,.0f}",
        "",
        f"{'envs':>4} {'workers':>7} {'train f/s':>9} {'train/machine':>13} {'pool f/s':>9} "
        f"{'train/pool':>10} {'SB3 f/s':>8} {'ours/SB3':>8}  peak memory MiB",
    ]
    for row in report["training"]:
        lines.append(
            f"{row['num_envs']:>4} {row['workers']:>7} {row['train_frames_per_s']:>9,.0f} "
            f"{row['train_over_machine']:>13.2f} {row['pool_frames_per_s']:>9,.0f} "
            f"{row['train_over_pool']:>10.2f} "
            f"{format_optional(row['sb3_frames_per_s'], ',.0f'):>8} "
            f"{format_optional(row['ours_over_sb3'], '.2f'):>8}  "
            f"PSS {row['train_peak_tree_pss_mib']:.0f} (RSS: {row['train_peak_rss_main_mib']:.0f}"
            f" + {row['workers']} x {row['train_peak_rss_worker_mib']:.0f})"
        )
    lines += [
        "goals: train/machine >= 0.7 at 8 walkers, ours/SB3 >= 2 (ratios: medians over",
        "repeats of figures taken one after the other)",
        "",
        "rollouts alone (collect/pool), the pool against the machine, and the best train/pool",
        "the updates leave room for (ceiling: rollouts as fast as the pool, updates as measured):",
    ]
    lines += [f"  {row['num_envs']} envs: collect/pool {row['collect_over_pool']:.2f}, "
              f"pool/machine {row['pool_over_machine']:.2f}, "
              f"ceiling {row['train_ceiling_given_update']:.2f}" for row in report["training"]]
    lines += [
        "",
        "cost of the diagnostics and TensorBoard events (TB on/off: median over repeats of a",
        "study with events against the one without, taken one after the other; shares: of the",
        "study's wall time, in the training process):",
    ]
    for row in report["training"]:
        on_off, share = row["tensorboard_on_over_off"], row["tensorboard_share"]
        once = row["tensorboard_open_close_s"]
        lines.append(
            f"  {row['num_envs']} envs: TB on/off "
            f"{'-' if on_off is None else format(on_off, '.3f')}, writing events "
            f"{'-' if share is None else format(share, '.3%')}, opening and closing the writer "
            f"{'-' if once is None else format(once, '.2f')} s once, diagnostics "
            f"{row['diagnostics_share']:.3%}")
    lines += [
        "",
        "where a study's time went (s, medians; the training process's clock, then CPU time):",
    ]
    for row in report["training"]:
        split = ", ".join(f"{key.removesuffix('_s')} {value:.2f}"
                          for key, value in row["train_time_split_s"].items())
        lines.append(f"  {row['num_envs']} envs: {split}")
    return "\n".join(lines)


QUICK = {"repeats": 2, "num_envs": [8], "skip_sb3": True, "skip_tensorboard": True}
"""--quick: the default study only, no SB3, no TensorBoard study, two repeats."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results.json",
                        help="where to write the JSON report")
    parser.add_argument("--quick", action="store_true",
                        help="8 walkers only, 2 repeats, no SB3 or TensorBoard study (a "
                             "couple of minutes); flags given too override it")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    parser.add_argument("--num_envs", type=lambda s: [int(n) for n in s.split(",")],
                        default=[1, 2, 8], help="comma-separated env counts (default 1,2,8)")
    parser.add_argument("--env_steps", type=int, default=3000,
                        help="steps per raw walker measurement")
    parser.add_argument("--machine_seconds", type=float, default=3.0,
                        help="length of the machine's raw stepping measurement")
    parser.add_argument("--pool_frames", type=int, default=8000,
                        help="frames per raw pool measurement")
    parser.add_argument("--batches", type=int, default=2,
                        help="batches (rollout + update) per training measurement")
    parser.add_argument("--sb3_rollouts", type=int, default=1,
                        help="SB3 rollouts (n_steps x num_envs frames, then 10 epochs) each")
    parser.add_argument("--skip_sb3", action="store_true", help="leave SB3 out")
    parser.add_argument("--skip_tensorboard", action="store_true",
                        help="leave out the study with TensorBoard events (its cost)")
    parser.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.task:  # a single measurement, in a child process
        print(json.dumps(TASKS[args.task](**json.loads(args.params))))
        return 0
    report = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(format_report(report))
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

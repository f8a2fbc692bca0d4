"""Walkers stepped in batches by a few worker processes.

Gymnasium's AsyncVectorEnv gives every environment its own process and a round trip per
step; on a 2-core box that message passing costs more than the physics. Here each worker
owns a slice of the environments and steps them all per message, so the number of
environments (which decides the results) is independent of the number of processes (which
only decides the speed): the same seed gives the same study on any machine.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class StepResult:
    """One step of every environment; finished ones are already reset.

    `final_obs[i]` is the last observation of an episode that ended on this step (else a
    copy of `obs[i]`), needed to bootstrap the value of a truncated episode.
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray


class EnvSlice:
    """A few environments stepped one after another, with same-step autoreset."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], count: int) -> None:
        self.envs = [gym.make(env_id, **env_kwargs) for _ in range(count)]

    def reset(self, seeds: list[int]) -> np.ndarray:
        return np.stack([env.reset(seed=seed)[0] for env, seed in zip(self.envs, seeds,
                                                                       strict=True)])

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        count = len(self.envs)
        obs = np.empty((count, *self.envs[0].observation_space.shape), dtype=np.float32)
        rewards = np.empty(count)
        terminated = np.zeros(count, dtype=bool)
        truncated = np.zeros(count, dtype=bool)
        final_obs = np.empty_like(obs)
        for i, env in enumerate(self.envs):
            final_obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            obs[i] = env.reset()[0] if terminated[i] or truncated[i] else final_obs[i]
        return obs, rewards, terminated, truncated, final_obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def serve(connection: Connection, env_id: str, env_kwargs: dict[str, Any], count: int) -> None:
    """Worker process: answer reset/step/close messages for one slice of environments."""
    # Ctrl-C reaches the whole process group; the trainer decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    envs = EnvSlice(env_id, env_kwargs, count)
    try:
        while True:
            command, payload = connection.recv()
            if command == "step":
                connection.send(envs.step(payload))
            elif command == "reset":
                connection.send(envs.reset(payload))
            else:
                break
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        envs.close()


class WalkerPool:
    """`num_envs` environments over `num_workers` processes (0: all in this process)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], num_envs: int,
                 num_workers: int) -> None:
        self.num_envs = num_envs
        probe = gym.make(env_id, **env_kwargs)
        self.observation_shape = probe.observation_space.shape
        self.action_shape = probe.action_space.shape
        probe.close()
        self.local: EnvSlice | None = None
        self.connections: list[Connection] = []
        self.processes: list[mp.Process] = []
        if num_workers == 0:
            self.local = EnvSlice(env_id, env_kwargs, num_envs)
            self.slices = [slice(0, num_envs)]
            return
        bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        # fork: fast, and the caller's main module is not re-imported (scripts without a
        # __main__ guard, notebooks, Ray tasks); workers touch no torch state.
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(target=serve, daemon=True,
                                      args=(child, env_id, env_kwargs, part.stop - part.start))
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)

    def reset(self, seed: int) -> np.ndarray:
        """Environment i is seeded with `seed + i`, whatever the number of workers."""
        seeds = list(range(seed, seed + self.num_envs))
        if self.local is not None:
            return self.local.reset(seeds)
        for connection, part in zip(self.connections, self.slices, strict=True):
            connection.send(("reset", seeds[part]))
        return np.concatenate([connection.recv() for connection in self.connections])

    def step(self, actions: np.ndarray) -> StepResult:
        if self.local is not None:
            return StepResult(*self.local.step(actions))
        for connection, part in zip(self.connections, self.slices, strict=True):
            connection.send(("step", actions[part]))
        parts = [connection.recv() for connection in self.connections]
        return StepResult(*(np.concatenate(column) for column in zip(*parts, strict=True)))

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        for connection in self.connections:
            try:
                connection.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()

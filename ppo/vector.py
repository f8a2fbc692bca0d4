"""Walkers stepped in batches by a few worker processes.

Gymnasium's AsyncVectorEnv gives every environment its own process and a round trip per
step; on a 2-core box that message passing costs more than the physics. Here each worker
owns a slice of the environments and steps them all per message, so the number of
environments (which decides the results) is independent of the number of processes (which
only decides the speed): the same seed gives the same study on any machine.

Actions and results travel through memory shared with the workers, not through the pipes:
per step the pool writes the actions, sends each worker a tiny "step" message, and each
worker steps its environments, writes observations, rewards and flags in place, and answers
with another. Pickling the arrays both ways used to cost more than the round trip itself.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import signal
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

STEP_MESSAGE = pickle.dumps(("step", None))
"""Sent to every worker each step, so pickled once."""


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


def array_layout(num_envs: int, observation_space: gym.Space, action_space: gym.Space
                 ) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Name -> (dtype, shape) of the arrays a pool and its workers share."""
    obs = (np.dtype(np.float32), (num_envs, *observation_space.shape))
    return {
        "actions": (np.dtype(action_space.dtype), (num_envs, *action_space.shape)),
        "obs": obs,
        "final_obs": obs,
        "rewards": (np.dtype(np.float64), (num_envs,)),
        "terminated": (np.dtype(np.bool_), (num_envs,)),
        "truncated": (np.dtype(np.bool_), (num_envs,)),
    }


def as_arrays(buffers: dict[str, Any], layout: dict[str, tuple[np.dtype, tuple[int, ...]]],
              rows: slice = slice(None)) -> dict[str, np.ndarray]:
    """Numpy views of `buffers` (shared or private memory), restricted to `rows`."""
    return {name: np.frombuffer(buffers[name], dtype=dtype).reshape(shape)[rows]
            for name, (dtype, shape) in layout.items()}


class EnvSlice:
    """A few environments stepped one after another, with same-step autoreset.

    Reads its actions from, and writes its results into, `arrays` (its rows of the pool's).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], arrays: dict[str, np.ndarray]
                 ) -> None:
        self.arrays = arrays
        self.envs = [gym.make(env_id, **env_kwargs) for _ in range(len(arrays["obs"]))]

    def reset(self, seeds: list[int]) -> None:
        for i, (env, seed) in enumerate(zip(self.envs, seeds, strict=True)):
            self.arrays["obs"][i] = env.reset(seed=seed)[0]

    def step(self) -> None:
        actions, obs, final_obs, rewards, terminated, truncated = (
            self.arrays[name] for name in
            ("actions", "obs", "final_obs", "rewards", "terminated", "truncated"))
        for i, env in enumerate(self.envs):
            final_obs[i], rewards[i], terminated[i], truncated[i], _ = env.step(actions[i])
            obs[i] = env.reset()[0] if terminated[i] or truncated[i] else final_obs[i]

    def close(self) -> None:
        for env in self.envs:
            env.close()


def serve(connection: Connection, env_id: str, env_kwargs: dict[str, Any],
          buffers: dict[str, Any], layout: dict[str, tuple[np.dtype, tuple[int, ...]]],
          rows: slice) -> None:
    """Worker process: answer reset/step/close messages for one slice of environments.

    Replies None when done, or the traceback of an environment's exception.
    """
    # Ctrl-C reaches the whole process group; the trainer decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    envs = EnvSlice(env_id, env_kwargs, as_arrays(buffers, layout, rows))
    try:
        while True:
            command, payload = connection.recv()
            if command == "close":
                break
            try:
                if command == "step":
                    envs.step()
                else:
                    envs.reset(payload)
            except Exception:  # reported to the trainer, which raises it
                connection.send(traceback.format_exc())
            else:
                connection.send(None)
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
        layout = array_layout(num_envs, probe.observation_space, probe.action_space)
        probe.close()
        self.local: EnvSlice | None = None
        self.connections: list[Connection] = []
        self.processes: list[mp.Process] = []
        self.closed = False
        if num_workers == 0:
            buffers = {name: bytearray(dtype.itemsize * int(np.prod(shape)))
                       for name, (dtype, shape) in layout.items()}
            self.arrays = as_arrays(buffers, layout)
            self.local = EnvSlice(env_id, env_kwargs, self.arrays)
            self.slices = [slice(0, num_envs)]
            return
        bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        # fork: fast, and the caller's main module is not re-imported (scripts without a
        # __main__ guard, notebooks, Ray tasks); workers touch no torch state.
        context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        buffers = {name: context.RawArray("b", dtype.itemsize * int(np.prod(shape)))
                   for name, (dtype, shape) in layout.items()}
        self.arrays = as_arrays(buffers, layout)
        for part in self.slices:
            parent, child = context.Pipe()
            process = context.Process(target=serve, daemon=True,
                                      args=(child, env_id, env_kwargs, buffers, layout, part))
            process.start()
            child.close()
            self.connections.append(parent)
            self.processes.append(process)

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Environment i is reset with `seeds[i]`, whatever the number of workers."""
        seeds = [int(seed) for seed in seeds]
        if len(seeds) != self.num_envs:
            raise ValueError(f"{self.num_envs} walkers need {self.num_envs} seeds, got "
                             f"{len(seeds)}")
        if self.local is not None:
            self.local.reset(seeds)
        else:
            for connection, part in zip(self.connections, self.slices, strict=True):
                connection.send(("reset", seeds[part]))
            self._wait_for_workers()
        return self.arrays["obs"].copy()

    def step(self, actions: np.ndarray) -> StepResult:
        self.arrays["actions"][:] = actions
        if self.local is not None:
            self.local.step()
        else:
            for connection in self.connections:
                connection.send_bytes(STEP_MESSAGE)
            self._wait_for_workers()
        # Copies: the shared arrays are overwritten by the next step.
        arrays = self.arrays
        return StepResult(arrays["obs"].copy(), arrays["rewards"].copy(),
                          arrays["terminated"].copy(), arrays["truncated"].copy(),
                          arrays["final_obs"].copy())

    def _wait_for_workers(self) -> None:
        """One reply from every worker; raise the first worker error among them."""
        replies = [connection.recv() for connection in self.connections]
        for worker, error in enumerate(replies):
            if error is not None:
                raise RuntimeError(f"an environment in walker worker {worker} failed:\n{error}")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
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
                process.join(timeout=5)
        for connection in self.connections:
            connection.close()

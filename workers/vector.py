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

A whole rollout crosses in one message each way (`WalkerPool.start_rollout`): each worker runs
the policy snapshot on its own walkers (`workers.sampler`) and writes the samples in place, so the
cores step walkers without waiting on the trainer or on each other between steps.

Other work can be shared out too (`WalkerPool.call`: a function and each worker's share of its
arguments, the results back through the pipes), such as the evaluation episodes during training
(`study.evaluations`), so that it does not run on one core while the workers wait.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import mmap
import pickle
import select
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from common.errors import StudyFailed
from ppo.gradient import ShardTask
from ppo.inference import PolicySnapshot
from workers.processes import ChildProcess, ParentGone, ParentWatch, start_child
from workers.sampler import run_policy, sample_layout

STEP_MESSAGE = pickle.dumps(("step", None))
"""Sent to every worker each step, so pickled once."""

Layout = dict[str, tuple[np.dtype, tuple[int, ...]]]


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
                 ) -> Layout:
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


def as_arrays(buffers: dict[str, Any], layout: Layout,
              rows: slice | tuple[slice, slice] = slice(None)) -> dict[str, np.ndarray]:
    """Numpy views of `buffers` (shared or private memory), restricted to `rows`."""
    return {name: np.frombuffer(buffers[name], dtype=dtype, count=math.prod(shape)
                                ).reshape(shape)[rows]
            for name, (dtype, shape) in layout.items()}


def allocate(layout: Layout, shared: bool) -> dict[str, Any]:
    """Memory for `layout`'s arrays: anonymous shared memory, inherited by forked workers, or
    private (at least a byte each: an empty mapping cannot be made)."""
    sizes = {name: max(dtype.itemsize * math.prod(shape), 1)
             for name, (dtype, shape) in layout.items()}
    return {name: mmap.mmap(-1, size) if shared else bytearray(size)
            for name, size in sizes.items()}


def first_steps(samples: dict[str, np.ndarray], num_steps: int) -> dict[str, np.ndarray]:
    """Views of a rollout's first `num_steps` steps (a study's last batch may be shorter)."""
    return {name: array[:num_steps] for name, array in samples.items()}


def control_layout(num_workers: int) -> Layout:
    """What the pool and its workers share about a rollout under way: whether to stop it, and
    how many steps each worker has started (a worker busy with a long rollout is not hung)."""
    return {"stop": (np.dtype(np.bool_), (1,)),
            "steps": (np.dtype(np.int64), (num_workers,))}


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

    def take(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        """One step with `actions`; the arrays, with its results (`workers.sampler.StepWalkers`)."""
        self.arrays["actions"][:] = actions
        self.step()
        return self.arrays

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


@dataclass(frozen=True)
class Returned:
    """A worker's reply carrying what a `call` returned, wrapped so that it cannot be taken for
    the other replies: None (done) and a str (the traceback of an exception)."""

    value: Any


class WorkerLost(StudyFailed):
    """A worker process died or stopped answering: its walkers are gone, the study cannot go on."""

    def __init__(self, worker: int, pid: int, how: str) -> None:
        super().__init__(f"walker worker {worker} (PID {pid}) {how}")


class StepInterrupted(Exception):
    """A stop was requested while workers had not answered; they were killed."""


REPLY_SLICE_S = 0.2
"""The pool waits for replies in slices this long, checking on the workers between them."""
STOP_GRACE_S = 2.0
"""After a stop request, how long a worker may still take to answer before it is killed."""
HUNG_AFTER_S = 600.0
"""A worker that answers nothing for this long is hung (a step takes milliseconds, resetting a
walker at most about a second; a rollout's worker that keeps starting steps is busy, not
hung). Counted in slices of waiting, so a study suspended with Ctrl-Z is not taken for hung
when it resumes."""
CLOSE_GRACE_S = 2.0
"""How long a worker may take to close its walkers and exit before it is killed."""


def serve(connection: Connection, parent: ParentWatch, env_id: str,
          env_kwargs: dict[str, Any], arrays: dict[str, np.ndarray], rows: slice,
          samples: dict[str, np.ndarray], control: dict[str, np.ndarray],
          gradient_arrays: dict[str, np.ndarray], index: int) -> None:
    """Worker `index`: answer reset/step/rollout/call/gradient/close messages for the
    environments `rows`.

    `arrays` and `samples` are its rows of the pool's; `control` and `gradient_arrays`, the
    pool's. Replies None when done, `Returned` with a call's result, or the traceback of an
    exception. Returns at a "close" message, at end of file (the trainer died) or when the
    trainer is gone.
    """
    stop, steps = control["stop"], control["steps"][index:index + 1]

    def keep_going() -> bool:
        steps[0] += 1
        return not stop[0]

    envs = None
    try:
        envs = EnvSlice(env_id, env_kwargs, arrays)
        while True:
            parent.wait_for_message()
            command, payload = connection.recv()
            if command == "close":
                break
            reply = None
            try:
                if command == "step":
                    envs.step()
                elif command == "rollout":
                    policy, num_steps = payload
                    run_policy(policy, rows, arrays["obs"], envs.take,
                               first_steps(samples, num_steps), keep_going)
                elif command == "call":
                    function, args = payload
                    reply = Returned(function(*args, keep_going))
                elif command == "gradient":
                    payload.run(gradient_arrays)
                else:
                    envs.reset(payload)
            except Exception:  # reported to the trainer, which raises it
                connection.send(traceback.format_exc())
            else:
                connection.send(reply)
    except (EOFError, OSError, ParentGone):
        pass
    finally:
        if envs is not None:
            envs.close()


class WalkerPool:
    """`num_envs` environments over `num_workers` processes (0: all in this process).

    `stop_requested` is asked while the pool waits for its workers: once it says True, a
    rollout under way ends at its next step, and a worker that does not answer within
    STOP_GRACE_S is killed and the call raises StepInterrupted, so a stop never waits on a
    hung or stopped (SIGSTOP) worker.

    `rollout_steps`: the longest rollout `start_rollout` runs (0: none).

    `gradient_layout(obs_dim, act_dim)`: the arrays of the update's gradient shards (see
    `ppo.algorithm.GradientSource`), shared with the workers, which compute the shards
    between rollouts: the pool is the study's gradient source too.
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], num_envs: int,
                 num_workers: int, stop_requested: Callable[[], bool] = lambda: False,
                 rollout_steps: int = 0,
                 gradient_layout: Callable[[int, int], Layout] = lambda obs, act: {}) -> None:
        self.num_envs = num_envs
        self.stop_requested = stop_requested
        self.rollout_complete = False
        self.gradient_task: ShardTask | None = None
        self.gradient_messages: list[bytes] = []
        self.rollout_under_way = False
        self.rollout_samples: dict[str, np.ndarray] = {}
        probe = gym.make(env_id, **env_kwargs)
        self.observation_shape = probe.observation_space.shape
        self.action_shape = probe.action_space.shape
        layout = array_layout(num_envs, probe.observation_space, probe.action_space)
        samples_layout = sample_layout(rollout_steps, num_envs, self.observation_shape[0],
                                       self.action_shape[0])
        shared_gradients = gradient_layout(self.observation_shape[0], self.action_shape[0])
        probe.close()
        self.local: EnvSlice | None = None
        self.workers: list[ChildProcess] = []
        self.closed = False
        shared = num_workers > 0
        buffers = allocate(layout, shared)
        sample_buffers = allocate(samples_layout, shared)
        self.arrays = as_arrays(buffers, layout)
        self.samples = as_arrays(sample_buffers, samples_layout)
        self.control = as_arrays(allocate(control_layout(num_workers), shared),
                                 control_layout(num_workers))
        self.gradient_arrays = as_arrays(allocate(shared_gradients, shared), shared_gradients)
        if num_workers == 0:
            self.local = EnvSlice(env_id, env_kwargs, self.arrays)
            self.slices = [slice(0, num_envs)]
            return
        bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.poller = select.poll()
        self.worker_of_fd: dict[int, int] = {}
        try:
            for index, part in enumerate(self.slices):
                try:
                    worker = start_child(
                        serve, env_id, env_kwargs, as_arrays(buffers, layout, part), part,
                        as_arrays(sample_buffers, samples_layout, (slice(None), part)),
                        self.control, self.gradient_arrays, index)
                except OSError as error:  # out of processes or descriptors
                    raise StudyFailed(f"cannot start walker worker {index}: {error.strerror}; "
                                      f"use fewer --num_workers") from None
                self.workers.append(worker)
                self.worker_of_fd[worker.connection.fileno()] = len(self.workers) - 1
                self.poller.register(worker.connection.fileno(), select.POLLIN)
        except BaseException:  # Ctrl-C while forking: no worker left behind
            self.close()
            raise

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Environment i is reset with `seeds[i]`, whatever the number of workers."""
        seeds = [int(seed) for seed in seeds]
        if len(seeds) != self.num_envs:
            raise ValueError(f"{self.num_envs} walkers need {self.num_envs} seeds, got "
                             f"{len(seeds)}")
        if self.local is not None:
            self.local.reset(seeds)
        else:
            for worker, part in zip(self.workers, self.slices, strict=True):
                self._send(worker, ("reset", seeds[part]))
            self._wait_for_workers()
        return self.arrays["obs"].copy()

    def step(self, actions: np.ndarray) -> StepResult:
        arrays = self._take(actions)
        # Copies: the shared arrays are overwritten by the next step.
        return StepResult(arrays["obs"].copy(), arrays["rewards"].copy(),
                          arrays["terminated"].copy(), arrays["truncated"].copy(),
                          arrays["final_obs"].copy())

    def _take(self, actions: np.ndarray) -> dict[str, np.ndarray]:
        """One step of every walker; the pool's arrays, holding its results."""
        self.arrays["actions"][:] = actions
        if self.local is not None:
            self.local.step()
        else:
            for worker in self.workers:
                self._send(worker, STEP_MESSAGE)
            self._wait_for_workers()
        return self.arrays

    def start_rollout(self, policy: PolicySnapshot, num_steps: int) -> None:
        """Start `num_steps` steps of every walker from where they are, the actions chosen by
        `policy` plus the noise already written in `samples["noise"]`; `finish_rollout`
        waits for them. The workers run it and this returns at once; without workers it runs to
        its end here."""
        self.rollout_samples = first_steps(self.samples, num_steps)
        if self.local is not None:
            self.rollout_complete = run_policy(
                policy, slice(0, self.num_envs), self.arrays["obs"], self._take,
                self.rollout_samples, keep_going=lambda: not self.stop_requested())
            return
        self.control["stop"][0] = False
        self.rollout_under_way = True
        for worker in self.workers:
            self._send(worker, ("rollout", (policy, num_steps)))

    def finish_rollout(self) -> dict[str, np.ndarray] | None:
        """The rollout started last: the first `num_steps` of `samples`, filled (see
        `workers.sampler.sample_layout`), or None if a stop cut it short."""
        if self.local is None:
            self.rollout_under_way = False
            self._wait_for_workers()
            self.rollout_complete = not self.control["stop"][0]
        return self.rollout_samples if self.rollout_complete else None

    @property
    def idle_workers(self) -> int:
        """How many worker processes `call` and `compute_gradients` can use now: none while a
        rollout is under way in them."""
        return 0 if self.rollout_under_way else len(self.workers)

    def call(self, function: Callable[..., Any], shares: Sequence[tuple[Any, ...]]
             ) -> list[Any]:
        """`function(*shares[i], keep_going)` in worker i, all at once; what each returned.

        For work other than stepping the walkers, which it leaves as they are. `function` must
        be picklable (defined at module level) and should ask `keep_going()` often, every step
        of a walker say: it tells the pool that the worker is busy, not hung, and says False
        once a stop is requested, when the function should return early. The wait is
        `_wait_for_workers`': a worker's exception is a RuntimeError here, a worker that dies
        WorkerLost, one that does not return within STOP_GRACE_S of a stop StepInterrupted.
        """
        if len(shares) != self.idle_workers:
            raise ValueError(f"{self.idle_workers} idle workers need {self.idle_workers} "
                             f"shares, got {len(shares)}")
        self.control["stop"][0] = False
        for worker, args in zip(self.workers, shares, strict=True):
            self._send(worker, ("call", (function, args)))
        return self._wait_for_workers()

    def compute_gradients(self, task: ShardTask) -> None:
        """The task's shards, split between the workers (shard s by worker s % n, n the
        workers or the shards, the fewer), or here while they are busy with a rollout or there
        are none: the same numbers either way (`ppo.gradient`)."""
        if not self.idle_workers:
            task.run(self.gradient_arrays)
            return
        if task != self.gradient_task:  # an update's steps are the same task: pickled once
            self.gradient_task = task
            sharing = min(len(self.workers), len(task.shards))
            self.gradient_messages = [
                pickle.dumps(("gradient", dataclasses.replace(
                    task, shards=task.shards[index::sharing])))
                for index in range(sharing)]
        asked = range(len(self.gradient_messages))
        for index in asked:
            self._send(self.workers[index], self.gradient_messages[index])
        self._wait_for_workers(asked)

    def _send(self, worker: ChildProcess, message: bytes | tuple[str, Any]) -> None:
        try:
            if isinstance(message, bytes):
                worker.connection.send_bytes(message)
            else:
                worker.connection.send(message)
        except OSError:
            raise self._lost(worker) from None

    def _wait_for_workers(self, asked: range | None = None) -> list[Any]:
        """One reply from every worker (or the workers `asked`): the values of their
        `Returned` replies (None for the others), in worker order; raise the first worker
        error among them.

        Bounded: a worker that dies raises WorkerLost at once; one that does not answer is
        killed after STOP_GRACE_S once a stop is requested (StepInterrupted), or after
        HUNG_AFTER_S in any case (WorkerLost).
        """
        waiting = set(range(len(self.workers)) if asked is None else asked)
        values: list[Any] = [None] * len(self.workers)
        errors: list[tuple[int, str]] = []
        idle_slices = 0
        stop_slices = 0
        started = self.control["steps"].copy()
        while waiting:
            events = self.poller.poll(int(REPLY_SLICE_S * 1000))
            if not events:
                idle_slices = 0 if self._steps_started(started) else idle_slices + 1
                if self.stop_requested():
                    stop_slices += 1
                    self.control["stop"][0] = True  # a rollout under way ends at its next step
                self._check_on(waiting, idle_slices, stop_slices)
                continue
            for fd, _ in events:
                index = self.worker_of_fd[fd]
                worker = self.workers[index]
                if index not in waiting:  # readable without being asked: it hung up
                    raise self._lost(worker)
                try:
                    reply = worker.connection.recv()
                except (EOFError, OSError):
                    raise self._lost(worker) from None
                waiting.discard(index)
                if isinstance(reply, Returned):
                    values[index] = reply.value
                elif reply is not None:
                    errors.append((index, reply))
        if errors:
            worker, error = errors[0]
            raise RuntimeError(f"walker worker {worker} failed:\n{error}")
        return values

    def _steps_started(self, before: np.ndarray) -> bool:
        """Whether a worker started steps of a rollout or a call since `before` (updated in
        place)."""
        now = self.control["steps"].copy()
        started = bool((now != before).any())
        before[:] = now
        return started

    def _check_on(self, waiting: set[int], idle_slices: int, stop_slices: int) -> None:
        """Between slices of waiting: a dead, abandoned or hung worker ends the wait."""
        for index in waiting:
            if not self.workers[index].is_alive():
                raise self._lost(self.workers[index])
        if stop_slices * REPLY_SLICE_S >= STOP_GRACE_S:
            self._kill(waiting)
            raise StepInterrupted
        if idle_slices * REPLY_SLICE_S >= HUNG_AFTER_S:
            index = min(waiting)
            self._kill(waiting)
            raise WorkerLost(index, self.workers[index].pid,
                             f"did not answer for {HUNG_AFTER_S:.0f} s and was killed")

    def _kill(self, indices: set[int]) -> None:
        for index in indices:
            self.workers[index].kill()

    def _lost(self, worker: ChildProcess) -> WorkerLost:
        """The error for a worker whose socket broke: how it ended, once the kernel says."""
        if not worker.wait(timeout_s=1.0):
            worker.kill()  # alive but deaf: of no use any more
            worker.wait(timeout_s=1.0)
            how = "stopped answering and was killed"
        else:
            how = worker.describe_exit()
        return WorkerLost(self.workers.index(worker), worker.pid, how)

    def close(self) -> None:
        """Close the walkers; workers get CLOSE_GRACE_S to exit, then are killed. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.control["stop"][0] = True  # a rollout under way ends at its next step
        if self.local is not None:
            self.local.close()
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.connection.send(("close", None))
        deadline = time.monotonic() + CLOSE_GRACE_S
        for worker in self.workers:
            if not worker.wait(max(0.0, deadline - time.monotonic())):
                worker.kill()
                worker.wait(timeout_s=5.0)
        for worker in self.workers:
            worker.close_connection()

"""A study's life: building it, running PPO iterations (`ppo.algorithm`) until its budget is
spent or a signal stops it, and its checkpoints, results and resume."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
import transfer
from common.checkpoint import (
    architecture_of,
    atomic_torch_save,
    atomic_write_bytes,
    config_as_plain_dict,
    load_resume_checkpoint,
    policy_checkpoint,
    save_policy,
)
from common.config import (
    OPTIMIZERS,
    RESUME_CHANGES,
    RESUME_KEPT,
    Config,
    config_file_text,
    experiment_differences,
    resume_command,
)
from common.errors import StudyFailed, UsageError
from common.locking import StudyLock
from common.results import (
    DESIGN_COLUMNS,
    EpisodeLog,
    stopped_before_first_checkpoint,
    write_results,
)
from common.study_files import StudyFiles, check_output_folder, longest_file_name
from ppo import algorithm
from ppo.algorithm import PPOSettings, TrainingDiverged
from ppo.diagnostics import UpdateLog
from ppo.gradient import PolicyShape
from ppo.network import ActorCritic
from ppo.normalize import RewardScaler
from ppo.schedules import Schedules
from study.banner import describe_resume, describe_study
from study.evaluations import (
    EvaluationInterrupted,
    EvaluationLog,
    describe_evaluation,
    evaluate_policy,
    is_due,
    score_kind,
)
from study.progress import Progress
from study.tensorboard_log import open_tensorboard, remove_events, tensorboard_folder
from transfer import selection
from workers.vector import StepInterrupted, WalkerPool, WorkerLost

PATH_MAX = os.pathconf("/", "PC_PATH_MAX") if hasattr(os, "pathconf") else 260
"""Longest path the OS accepts, terminating NUL included (4096 on Linux, 1024 on macOS)."""


@dataclass
class StudyOutcome:
    best_path: Path | None
    """None if no policy was saved (no episode finished)."""
    results_path: Path
    csv_path: Path
    frames: int
    best_score: float
    episodes: int
    score_kind: str
    """What `best_score` is (`study.evaluations.score_kind`)."""
    evaluations: int = 0
    stopped_by_signal: int | None = None


class StudyDiverged(StudyFailed):
    """The algorithm's `TrainingDiverged`, as the study reports it: with the frame, what was
    kept, and what to try."""


def ppo_settings(config: Config) -> PPOSettings:
    """The algorithm's hyperparameters, from the study's configuration."""
    return PPOSettings(
        num_envs=config.num_envs, num_steps=config.steps_per_env,
        optimizer=OPTIMIZERS[config.optimizer.lower()], learning_rate=config.learning_rate,
        clip_coef=config.clip, value_coef=config.value_coef, train_steps=config.train_steps,
        minibatch_size=config.minibatch_size, max_grad_norm=config.max_grad_norm,
        gamma=config.gamma, gae_lambda=config.gae_lambda, device=config.device)


def pool_gradient_layout(config: Config, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """The arrays the walker pool shares for the update's gradient shards: none off the CPU,
    where torch computes the gradients (`ppo.algorithm.update`)."""
    if config.device != "cpu":
        return {}
    shape = PolicyShape.build(obs_dim, config.hidden_layers, act_dim)
    return algorithm.gradient_layout(ppo_settings(config), shape)


def seed_everything(seed: int) -> torch.Generator:
    """Python, NumPy and torch; the returned generator draws the study's noise and minibatches
    (the walkers get theirs from `walker_seeds`)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def walker_seeds(seed: int, num_envs: int, start: int = 0) -> list[int]:
    """Reset seeds of the walkers, each from its own stream of `SeedSequence(seed)`.

    Streams spawned from one SeedSequence are independent, and those of different seeds share
    nothing (as `seed + i` did: seeds 1 and 2 shared 7 of 8 walkers). `start` tells apart the
    times a study starts its walkers (its update count: a resumed study gets new episodes
    rather than replaying its first ones); walker i's seed does not depend on `num_envs`.
    """
    starts = np.random.SeedSequence(seed, spawn_key=(start,))  # = SeedSequence(seed).spawn()[start]
    return [int(walker.generate_state(1, np.uint64)[0]) for walker in starts.spawn(num_envs)]


def saved_design_inputs(state: dict[str, Any], path: Path,
                        config: Config) -> dict[str, list[float]]:
    """The design inputs an interrupted study ran with, from its resume checkpoint."""
    return transfer.checked_design_inputs(state, config.env_kwargs(), path, "resume")


def check_outputs_and_device(config: Config) -> None:
    """Before anything is created: the output folders can be written, and the device exists."""
    check_output_folder(config.models_dir, "models_dir")
    check_output_folder(config.results_dir, "results_dir")
    folder = tensorboard_folder(config)
    if folder is not None:
        # The study's own events folder: a file in its place is named as such (the folder
        # check below would only say it cannot be written).
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"--tensorboard: {folder} exists and is not a folder (the study's "
                             f"events go there); move it away or name another --tensorboard")
        check_output_folder(str(folder), "tensorboard")
    check_device(config.device)


def check_device(name: str) -> None:
    """`--device=cuda` on a machine without CUDA is a usage error, not a traceback mid-study."""
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise UsageError(f"--device: {name} is not available here ({count} CUDA "
                             f"devices); use cpu")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device: {name} is not available here; use cpu")


def study_files(config: Config) -> StudyFiles:
    return StudyFiles(Path(config.models_dir), Path(config.results_dir), config.save_name)


def check_path_lengths(files: StudyFiles) -> None:
    """The folders' absolute paths plus the longest file name must fit in the OS's PATH_MAX."""
    for flag, folder in (("models_dir", files.models_dir), ("results_dir", files.results_dir)):
        longest = len(os.fsencode(folder.absolute())) + 1 + longest_file_name(files.save_name)
        if longest >= PATH_MAX:
            raise UsageError(f"--{flag}: the study's file paths in {folder} would be {longest} "
                             f"bytes long, more than this system allows ({PATH_MAX - 1})")


class Study:
    """One training run, resumable, that can be stopped cleanly between environment steps."""

    def __init__(self, config: Config, source_choice: str = "",
                 auto: dict[str, Any] | None = None) -> None:
        """`auto`: what `--initial_model=auto` chose at the start (`transfer.selection`):
        `chosen_initial_model`, the frozen `candidates` and the `ranking`; a resumed study
        reads its own from its checkpoint."""
        self.config = config
        self.source_choice = source_choice
        self.auto = auto or {}
        self.generator = seed_everything(config.seed)
        self.files = study_files(config)
        self.stop_signal: int | None = None

        # Each file read once: the resume checkpoint, or the initial model a new study starts
        # from (a resumed study restores its own weights).
        resume_state = (load_resume_checkpoint(self.files.last)
                        if config.resume and self.files.last.exists() else None)
        # The budget the study was run with until now, if resumed: a larger one extends it.
        self.planned_frames = (resume_state["config"].get("total_frames")
                               if resume_state is not None else None)
        if resume_state is not None and resume_state.get("auto"):
            self.auto = dict(resume_state["auto"])
        source = None if config.resume else transfer.load_source(self.source_config)
        # The observation's layout is decided before the walkers exist: they append the design.
        inputs = (saved_design_inputs(resume_state, self.files.last, config)
                  if resume_state is not None
                  else transfer.design_inputs(self.source_config, source))
        self.env_kwargs = {**config.env_kwargs(), "design_inputs": inputs}
        self.walkers = WalkerPool(config.env, self.env_kwargs, config.num_envs,
                                  config.worker_processes, lambda: self.stop_signal is not None,
                                  config.steps_per_env,
                                  partial(pool_gradient_layout, config))
        try:
            self._build(config, source, resume_state)
            self.tensorboard = open_tensorboard(config, self.frames, len(self.log),
                                                len(self.evaluations))
            self.committed = (self.frames, len(self.log), len(self.evaluations))
            self.written: tuple[int, int] | None = None  # what the results files hold, if known
            self.started = time.monotonic()
            self.last_update = (self.frames, self.started)
            self.progress = Progress(config.total_frames, config.quiet, self.frames,
                                     best_label="best eval" if config.best_by == "eval"
                                     else "best")
        except BaseException:  # refused, or Ctrl-C while starting: no worker left behind
            self.walkers.close()
            raise

    def _build(self, config: Config, source: transfer.Source | None,
               resume_state: dict[str, Any] | None) -> None:
        """The learner (its policy loaded and frozen for transfer) and the study's counters;
        both restored on resume."""
        obs_dim, act_dim = self.walkers.observation_shape[0], self.walkers.action_shape[0]
        # Design inputs keep the statistics they start with (see RunningNormalizer).
        policy = ActorCritic(obs_dim, act_dim, config.hidden_layers,
                             tracked_inputs=envs.BODY_OBS_DIM)
        reward_scaler = RewardScaler(config.num_envs, config.gamma)
        # Fixed now, in frames, for the study's whole life (a resumed one restores its own).
        self.schedules = Schedules.resolve(config)
        # A resumed study restores its own weights; the initial model only seeds a new one.
        self.transfer_summary = "" if config.resume else "\n".join(
            text for text in (self.source_choice,
                              transfer.prepare(policy, reward_scaler, self.source_config,
                                               self.schedules, source))
            if text)
        self.learner = algorithm.make_learner(ppo_settings(config), policy.to(config.device),
                                              reward_scaler, self.generator, self.walkers)
        self.log = EpisodeLog()
        self.update_log = UpdateLog()
        self.evaluations = EvaluationLog()
        self.frames = 0
        self.updates = 0
        self.best_score = float("-inf")
        self.elapsed_before = 0.0
        self.episode_reward = np.zeros(config.num_envs)
        self.episode_length = np.zeros(config.num_envs, dtype=np.int64)
        if config.resume:
            self._restore(resume_state)
            transfer.apply_thaw_schedule(policy, config.transfer_learning, self.schedules,
                                         self.frames)
        self.action_std = self.schedules.action_std_at(self.frames)

    @property
    def policy(self) -> ActorCritic:
        return self.learner.policy

    @property
    def source_config(self) -> Config:
        """The config with `--initial_model=auto` replaced by the chosen model: what loading
        and preparing the source read. `self.config`, saved and compared, keeps `auto`."""
        chosen = self.auto.get("chosen_initial_model")
        return dataclasses.replace(self.config, initial_model=chosen) if chosen else self.config

    # ----- checkpoints and results -------------------------------------------------------

    def env_settings(self) -> dict[str, Any]:
        return {"env": self.config.env, **self.env_kwargs}

    def wall_time(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _restore(self, state: dict[str, Any] | None) -> None:
        if state is None:
            raise UsageError(f"--resume: no interrupted study {self.files.last} to resume")
        # Hidden layers and optimizer are experiment settings: check_same_study compares them.
        check_same_study(state["config"], self.config)
        check_same_evaluations(state["config"], self.config)
        saved_inputs, saved_outputs, _ = architecture_of(state["state_dict"])
        if (saved_inputs, saved_outputs) != (self.walkers.observation_shape[0],
                                             self.walkers.action_shape[0]):
            raise UsageError(f"--resume: {self.files.last} was saved for {saved_inputs} "
                             f"observations and {saved_outputs} actions, these walkers have "
                             f"{self.walkers.observation_shape[0]} and "
                             f"{self.walkers.action_shape[0]}")
        try:
            self.policy.load_state_dict(state["state_dict"])
            self.learner.optimizer.load_state_dict(state["optimizer"])
            self.schedules = saved_schedules(state, self.config)
            self.learner.reward_scaler.load_state_dict(state["reward_scaler"])
            self.log = EpisodeLog(state["episodes"])
            self.update_log = UpdateLog(state.get("update_log"))
            self.evaluations = EvaluationLog(state.get("evaluations"))
            self.generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
        except Exception as error:  # noqa: BLE001 (a damaged file fails in any of these)
            raise UsageError(f"--resume: {self.files.last}: damaged, its saved state does not "
                             f"load ({type(error).__name__})") from None
        if self.config.total_frames < state["frames"]:
            raise UsageError(f"--total_frames: the interrupted study has already trained on "
                             f"{state['frames']:,} frames; give at least that many (more "
                             f"extend it), got {self.config.total_frames:,}")
        self.frames, self.updates = state["frames"], state["updates"]
        self.best_score, self.elapsed_before = state["best_score"], state["wall_time"]
        self.transfer_summary = state.get("transfer", "")

    def save_last(self) -> None:
        atomic_torch_save({
            **self.policy_state(score=self.best_score),
            "optimizer": self.learner.optimizer.state_dict(),
            "episodes": self.log.columns,
            "update_log": self.update_log.columns,
            "evaluations": self.evaluations.columns,
            "updates": self.updates,
            "best_score": self.best_score,
            "wall_time": self.wall_time(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": config_as_plain_dict(self.config),
            "schedules": self.schedules.as_dict(),
            "transfer": self.transfer_summary,
            "auto": self.auto,
        }, self.files.last)

    def policy_state(self, score: float) -> dict[str, Any]:
        return policy_checkpoint(self.policy, self.env_settings(), self.frames, score,
                                 self.learner.reward_scaler, score_kind(self.config))

    def maybe_save_best(self) -> None:
        """By the running average: until the score window has filled, keep the latest policy;
        then the best by score. By evaluation: the latest policy until the first evaluation
        (saved with no score), then `maybe_evaluate` decides."""
        if not len(self.log):
            return
        if self.config.best_by == "eval":
            if not len(self.evaluations):
                save_policy(self.files.best, self.policy, self.env_settings(), self.frames,
                            -math.inf, self.learner.reward_scaler,
                            "none yet: the latest policy, before the first evaluation")
            return
        score = self.log.running_average
        if self.log.window_full and score <= self.best_score:
            return
        if self.log.window_full:
            self.best_score = score
        save_policy(self.files.best, self.policy, self.env_settings(), self.frames, score,
                    self.learner.reward_scaler, score_kind(self.config))

    def maybe_evaluate(self, frames_before: int) -> None:
        """The deterministic evaluation the schedule puts after this batch's update, if any;
        with `--best_by=eval`, the policy is the best one if it beats every earlier one."""
        if not is_due(self.config, frames_before, self.frames):
            return
        started = time.monotonic()
        results = evaluate_policy(self.config, self.policy, self.env_kwargs["design_inputs"],
                                  lambda: self.stop_signal is not None, self.walkers)
        row = self.evaluations.add(self.frames, results, self.wall_time(),
                                   time.monotonic() - started)
        best = self.config.best_by == "eval" and row["mean_return"] > self.best_score
        self.progress.message(describe_evaluation(row, len(results), best))
        if best:
            self.best_score = row["mean_return"]
            save_policy(self.files.best, self.policy, self.env_settings(), self.frames,
                        self.best_score, self.learner.reward_scaler, score_kind(self.config))

    def write_results(self) -> tuple[Path, Path]:
        summary = {
            "config": config_as_plain_dict(self.config),
            "frames": self.frames,
            "best_score": self.best_score,
            "wall_time": self.wall_time(),
            "schedules": self.schedules.as_dict(),
            "transfer": self.transfer_summary,
            "best_by": self.config.best_by,
            "score_kind": score_kind(self.config),
            **({"chosen_initial_model": self.auto["chosen_initial_model"], "auto": self.auto}
               if self.auto else {}),
        }
        paths = write_results(self.files, self.log, summary, self.update_log, self.evaluations)
        self.written = (self.frames, len(self.log))
        return paths

    # ----- the loop ----------------------------------------------------------------------

    def request_stop(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def discard_partial_batch(self) -> None:
        """Forget the frames and episodes of a batch that a stop cut short.

        It was never trained on, and the last checkpoint does not have it: the results then
        match what `--resume` continues from, and a sweep sees the study as unfinished.
        """
        self.frames, episodes, evaluations = self.committed
        self.log.truncate(episodes)
        self.evaluations.truncate(evaluations)

    def run(self) -> StudyOutcome:
        """Train until the budget is spent or a stop is requested; the files are written.

        A worker that dies ends the study (a StudyFailed) with the files of the last completed
        batch as they were, unless a stop was requested: then it is part of the stop.
        """
        config = self.config
        # A resumed study loaded nothing now: its transfer summary is that of its start.
        summary = self.transfer_summary if not config.resume else "\n".join(
            line for line in self.transfer_summary.splitlines()
            if not line.startswith(("transfer: loaded", "auto:")))
        self.progress.message(describe_study(config, summary, self.files))
        if config.resume:
            self.progress.message(describe_resume(self.frames, len(self.log), self.best_score,
                                                  self.files.last, config.total_frames,
                                                  config.best_by, self.planned_frames))
        try:
            # What `--resume` restores and `--config` takes (inside the try: the walkers are
            # closed however the write ends).
            atomic_write_bytes(self.files.config, config_file_text(config).encode())
            if not config.resume:
                # Results of 0 frames mark the study as stopped before its first checkpoint
                # until `.last.pt` exists, however it stops (kill -9 too): it starts afresh.
                self.write_results()
            self.walkers.reset(walker_seeds(config.seed, config.num_envs, self.updates))
            while self.stop_signal is None:
                action_std = self.start_rollout()
                if action_std is None:
                    break
                self.action_std = action_std
                raw_obs = algorithm.finish_rollout(self.learner, self.walkers, self.action_std,
                                                   self.count_step)
                if raw_obs is None:
                    self.discard_partial_batch()
                    break
                self.maybe_save_best()  # with the normaliser statistics the rollout ran with
                algorithm.absorb_observations(self.policy, raw_obs)
                for layer in transfer.apply_thaw_schedule(self.policy, config.transfer_learning,
                                                          self.schedules, self.frames):
                    self.progress.message(f"thawed {layer} at frame {self.frames:,}")
                batch = algorithm.advantages_and_returns(self.learner.buffer, config.gamma,
                                                         config.gae_lambda)
                self.update(batch)
                self.maybe_evaluate(self.committed[0])
                self.save_last()
                self.committed = (self.frames, len(self.log), len(self.evaluations))
                self.write_results()
                self.tensorboard.add_batch(self.log, self.update_log.last(), self.evaluations)
                self.progress.update(self.frames, self.log.running_average, self.best_score,
                                     self.log.episodes_averaged)
        except (StepInterrupted, algorithm.UpdateInterrupted, EvaluationInterrupted):
            # A stop while a worker did not answer (it was killed), or during an update: the
            # batch is dropped, and the checkpoints stay those of the last completed one.
            self.discard_partial_batch()
        except WorkerLost as error:
            if self.stop_signal is None:
                raise StudyFailed(f"{error}; the files of the last completed batch are kept "
                                  f"(continue with {resume_command(config)})") from None
            self.discard_partial_batch()
        finally:
            self.walkers.close()
            self.tensorboard.close()
            self.progress.close()
        if self.written != (self.frames, len(self.log)):  # else the last batch's files stand
            self.write_results()
        if not self.files.last.exists():
            # Stopped during its first batch: the policy saved before the update is untrained,
            # and without it the study is one that the next run starts afresh.
            self.files.best.unlink(missing_ok=True)
        best_path = self.files.best if self.files.best.exists() else None
        return StudyOutcome(best_path, self.files.results, self.files.csv, self.frames,
                            self.best_score, len(self.log), score_kind(self.config),
                            len(self.evaluations), self.stop_signal)

    def start_rollout(self) -> float | None:
        """Start a rollout of the policy as it is now, as long as the budget leaves room for
        (None: it is spent), with the noise the schedule gives at the frames counted so far
        (returned)."""
        steps = self.config.steps_in_batch(self.frames)
        if steps == 0:
            return None
        self.fit_batch_to_budget(steps)
        action_std = self.schedules.action_std_at(self.frames)
        algorithm.start_rollout(self.learner, self.walkers, action_std)
        return action_std

    def fit_batch_to_budget(self, steps: int) -> None:
        """The last batch is shortened to what is left of the budget: new rollout storage."""
        buffer = self.learner.buffer
        if steps != buffer.num_steps:
            self.learner.buffer = algorithm.RolloutBuffer(
                steps, self.config.num_envs, buffer.obs.shape[-1], buffer.actions.shape[-1])

    def count_step(self, rewards: np.ndarray, final_obs: np.ndarray, ended: np.ndarray
                   ) -> bool:
        """For every step of the walkers, in order: frames, and the episodes that ended (with
        the design each walker had, read from its final observation); whether the rollout may
        go on (no stop requested)."""
        self.frames += self.config.num_envs
        self.episode_reward += rewards
        self.episode_length += 1
        if ended.any():
            self.record_episodes(ended, final_obs)
        return self.stop_signal is None

    def record_episodes(self, ended: np.ndarray, final_obs: np.ndarray) -> None:
        wall_time = self.wall_time()
        rows = np.flatnonzero(ended)
        designs = envs.designs_from_observations(final_obs[rows], self.env_kwargs)
        for row, i in enumerate(rows):
            self.log.add(self.frames, int(self.episode_length[i]),
                         float(self.episode_reward[i]), wall_time, self.action_std,
                         [float(designs[name][row]) for name in DESIGN_COLUMNS])
        self.episode_reward[ended] = 0.0
        self.episode_length[ended] = 0

    def update(self, batch: algorithm.Batch) -> None:
        """One PPO update on the collected batch, and its row in the update log."""
        try:
            diagnostics = algorithm.update(self.learner, batch, self.action_std,
                                           lambda: self.stop_signal is not None)
        except TrainingDiverged as error:
            raise StudyDiverged(f"{error} at frame {self.frames:,}; the last good "
                                f"checkpoints are kept (try a lower --learning_rate)") from None
        self.updates += 1
        self.update_log.add(self.update_row(diagnostics))

    def update_row(self, diagnostics: dict[str, float]) -> dict[str, float]:
        """An update's diagnostics with the study's state: frames, noise, learning rate, and
        the rate since the previous update (its rollout and update; on resume, start-up too)."""
        now = time.monotonic()
        frames_before, before = self.last_update
        self.last_update = (self.frames, now)
        return {"frames": self.frames, **diagnostics, "action_std": self.action_std,
                "learning_rate": self.learner.optimizer.param_groups[0]["lr"],
                "frames_per_s": (self.frames - frames_before) / max(now - before, 1e-9)}


def saved_schedules(state: dict[str, Any], config: Config) -> Schedules:
    """The schedules an interrupted study started with. Checkpoints from before they were
    saved had them as fractions of the budget they were saved with, so resolve that."""
    if "schedules" in state:
        return Schedules.from_dict(state["schedules"])
    budget = state.get("config", {}).get("total_frames", config.total_frames)
    return Schedules.resolve(dataclasses.replace(config, total_frames=budget))


def check_same_study(saved: dict[str, Any], config: Config) -> None:
    """A resumed study must be the experiment that was interrupted: only its run settings
    (budget, workers, device, folders...) may change."""
    current = config_as_plain_dict(config)
    changed = experiment_differences(saved, current)
    if changed:
        name = changed[0]
        raise UsageError(f"--resume: the interrupted study used --{name}={saved.get(name)}, not "
                         f"{current.get(name)}; resume the same experiment (only "
                         f"{', '.join('--' + n for n in RESUME_CHANGES)} may change)")


def check_same_evaluations(saved: dict[str, Any], config: Config) -> None:
    """A resumed study keeps the evaluation protocol it started with: its best score so far
    was measured by it. (Checkpoints from before these flags lack them: nothing to compare.)"""
    for name in RESUME_KEPT:
        if name in saved and saved[name] != getattr(config, name):
            raise UsageError(f"--{name}: the interrupted study used --{name}={saved[name]}, "
                             f"not {getattr(config, name)}; resume it with the same (its best "
                             f"policy so far was picked by them)")


def train(config: Config, source_choice: str = "") -> StudyOutcome:
    """Run a study; SIGINT/SIGTERM stop it cleanly with everything so far written.

    The study holds its name's lock throughout, refuses to start over an earlier study of that
    name unless `--overwrite=true` (then removes its files, once everything else has been
    checked), and first removes the temporary files a killed run of it left behind.
    `source_choice`: how `--initial_model=auto` chose the model (kept in the transfer summary).
    """
    torch.set_num_threads(1)  # tiny networks: threads only contend with the env workers
    check_outputs_and_device(config)
    files = study_files(config)
    check_path_lengths(files)
    with StudyLock(files.lock, config.save_name):
        restart = stopped_before_first_checkpoint(files)
        if restart:
            print(f"study {config.save_name} was stopped before its first checkpoint, so there "
                  f"is nothing to resume or lose: starting it afresh (its partial files are "
                  f"replaced)", flush=True)
            config = dataclasses.replace(config, resume=False)
        elif not config.resume:
            files.check_fresh_start(config.overwrite)
        files.remove_stale_temporaries()
        auto = None
        if selection.is_auto(config.initial_model) and not config.resume:
            # After the name, lock and folders are checked: a refusal costs no ranking.
            say = None if config.quiet else (lambda line: print(line, flush=True))
            choice = selection.choose_initial_model(config, say)
            source_choice, auto = choice.report, choice.record
        study = Study(config, source_choice, auto)
        if config.overwrite or restart:
            files.remove_training_outputs()
            remove_events(config)
        previous = {sig: signal.signal(sig, study.request_stop) for sig in (signal.SIGINT,
                                                                           signal.SIGTERM)}
        try:
            return study.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

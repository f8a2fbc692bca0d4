"""The PPO study: collect a batch from vectorised walkers, update, checkpoint, log, repeat."""

from __future__ import annotations

import math
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import envs
import transfer
from ppo import inference
from ppo.checkpoint import (
    atomic_torch_save,
    config_as_plain_dict,
    load_checkpoint,
    policy_checkpoint,
    save_policy,
)
from ppo.config import RUN_SETTINGS, Config, experiment_differences
from ppo.errors import UsageError
from ppo.network import ActorCritic
from ppo.progress import Progress
from ppo.results import DESIGN_COLUMNS, EpisodeLog, write_results
from ppo.rollout import Batch, RewardScaler, RolloutBuffer
from ppo.vector import WalkerPool

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adagrad": torch.optim.Adagrad,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; continuing would only overwrite good state with garbage."""


@dataclass
class StudyOutcome:
    best_path: Path
    results_path: Path
    csv_path: Path
    frames: int
    best_score: float
    episodes: int
    stopped_by_signal: int | None = None


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def saved_design_inputs(path: Path) -> dict[str, list[float]]:
    """The design inputs an interrupted study ran with, from its resume checkpoint."""
    try:
        return transfer.design_inputs_of(load_checkpoint(path))
    except UsageError as error:
        raise UsageError(f"--resume: {error}") from None


FUSED_OPTIMIZERS = frozenset({"adam"})
"""Optimizers whose step runs as one fused kernel over all parameters (torch >= 2.4 on CPU):
on the policy's twenty small tensors Adam's step takes ~0.1 ms fused against ~0.5 ms."""


def make_optimizer(config: Config, policy: ActorCritic) -> torch.optim.Optimizer:
    name = config.optimizer.lower()
    fused = {"fused": True} if name in FUSED_OPTIMIZERS else {}
    return OPTIMIZERS[name](policy.parameters(), lr=config.learning_rate, **fused)


def check_output_folder(folder: str, flag: str) -> None:
    """Fail before training, not at the first save, if `folder` cannot be written.

    Creates nothing: the nearest existing ancestor must be a writable folder (the rest is made
    when the first file is saved).
    """
    if not folder.strip():
        raise UsageError(f"--{flag}: must name a folder, got ''")
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--{flag}: {existing} exists and is not a folder; name a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--{flag}: cannot write in {existing}; name a writable folder")


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


def model_paths(config: Config) -> tuple[Path, Path]:
    """The best policy, and the full state of the latest update (for `--resume`)."""
    models = Path(config.models_dir)
    return models / f"{config.save_name}.pt", models / f"{config.save_name}.last.pt"


class Study:
    """One training run, resumable, that can be stopped cleanly between environment steps."""

    def __init__(self, config: Config, source_choice: str = "") -> None:
        self.config = config
        self.source_choice = source_choice
        check_output_folder(config.models_dir, "models_dir")
        check_output_folder(config.results_dir, "results_dir")
        check_device(config.device)
        self.device = torch.device(config.device)
        self.generator = seed_everything(config.seed)
        self.best_path, self.last_path = model_paths(config)
        self.results_dir = Path(config.results_dir)
        self.stop_signal: int | None = None

        # The observation's layout is decided before the walkers exist: they append the design.
        inputs = (saved_design_inputs(self.last_path) if config.resume and self.last_path.exists()
                  else transfer.design_inputs(config))
        self.env_kwargs = {**config.env_kwargs(), "design_inputs": inputs}
        self.envs = WalkerPool(config.env, self.env_kwargs, config.num_envs,
                               config.worker_processes)
        try:
            self._build_learner(config)
        except BaseException:
            self.envs.close()  # no worker processes left behind by a refused study
            raise
        self.committed = (self.frames, len(self.log))
        self.started = time.monotonic()
        self.progress = Progress(config.total_frames, config.quiet, self.frames)

    def _build_learner(self, config: Config) -> None:
        """Policy (loaded and frozen for transfer), optimiser, storage; restored on resume."""
        obs_dim, act_dim = self.envs.observation_shape[0], self.envs.action_shape[0]
        self.policy = ActorCritic(obs_dim, act_dim, config.hidden_layers)
        # A resumed study restores its own weights; the initial model only seeds a new one.
        self.transfer_summary = "" if config.resume else "\n".join(
            text for text in (self.source_choice, transfer.prepare(self.policy, config)) if text)
        if not all(torch.isfinite(t).all() for t in self.policy.state_dict().values()):
            # NaN weights would give NaN actions, which crash Box2D inside the workers.
            raise UsageError(f"--initial_model: {config.initial_model} holds NaN or infinite "
                             f"weights; train from another model")
        self.policy.to(self.device)
        self.optimizer = make_optimizer(config, self.policy)
        self.buffer = RolloutBuffer(config.steps_per_env, config.num_envs, obs_dim, act_dim)
        self.reward_scaler = RewardScaler(config.num_envs, config.gamma)
        self.log = EpisodeLog()
        self.frames = 0
        self.updates = 0
        self.best_score = float("-inf")
        self.elapsed_before = 0.0
        if config.resume:
            self._restore()
            transfer.apply_thaw_schedule(self.policy, config, self.frames)

    # ----- checkpoints and results -------------------------------------------------------

    def env_settings(self) -> dict[str, Any]:
        return {"env": self.config.env, **self.env_kwargs}

    def wall_time(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    def _restore(self) -> None:
        if not self.last_path.exists():
            raise UsageError(f"--resume: no interrupted study {self.last_path} to resume")
        try:
            state = load_checkpoint(self.last_path)
        except UsageError as error:
            raise UsageError(f"--resume: {error}") from None
        try:
            self.policy.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError):
            raise UsageError(
                f"--resume: {self.last_path} was saved with other network settings "
                f"(hidden_layers {state.get('hidden_layers')}, optimizer "
                f"{state.get('config', {}).get('optimizer')})"
            ) from None
        check_same_study(state.get("config", {}), self.config)
        self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.log = EpisodeLog(state["episodes"])
        self.frames, self.updates = state["frames"], state["updates"]
        self.best_score, self.elapsed_before = state["best_score"], state["wall_time"]
        self.transfer_summary = state.get("transfer", "")
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def save_last(self) -> None:
        atomic_torch_save({
            **self.policy_state(score=self.best_score),
            "optimizer": self.optimizer.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "episodes": self.log.columns,
            "updates": self.updates,
            "best_score": self.best_score,
            "wall_time": self.wall_time(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": config_as_plain_dict(self.config),
            "transfer": self.transfer_summary,
        }, self.last_path)

    def policy_state(self, score: float) -> dict[str, Any]:
        return policy_checkpoint(self.policy, self.env_settings(), self.frames, score)

    def maybe_save_best(self) -> None:
        """Until the score window has filled, keep the latest policy; then the best by score."""
        if not len(self.log):
            return
        score = self.log.running_average
        if self.log.window_full and score <= self.best_score:
            return
        if self.log.window_full:
            self.best_score = score
        save_policy(self.best_path, self.policy, self.env_settings(), self.frames, score)

    def write_results(self) -> tuple[Path, Path]:
        summary = {
            "config": config_as_plain_dict(self.config),
            "frames": self.frames,
            "best_score": self.best_score,
            "wall_time": self.wall_time(),
            "transfer": self.transfer_summary,
        }
        return write_results(self.results_dir, self.config.save_name, self.log, summary)

    # ----- the loop ----------------------------------------------------------------------

    def request_stop(self, signum: int, _frame: Any) -> None:
        self.stop_signal = signum

    def stopped_by_signal_soon(self, wait_s: float = 1.0) -> bool:
        """Whether a stop was requested, allowing the handler to trail the workers' death
        (Python runs signal handlers between bytecodes, after the pipe error was raised)."""
        deadline = time.monotonic() + wait_s
        while self.stop_signal is None and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.stop_signal is not None

    def discard_partial_batch(self) -> None:
        """Forget the frames and episodes of a batch that a stop cut short.

        It was never trained on, and the last checkpoint does not have it: the results then
        match what `--resume` continues from, and a sweep sees the study as unfinished.
        """
        self.frames, episodes = self.committed
        self.log.truncate(episodes)

    def run(self) -> StudyOutcome:
        if self.transfer_summary:
            self.progress.message(self.transfer_summary)
        obs = self.envs.reset(seed=self.config.seed + self.updates * self.config.num_envs)
        episode_reward = np.zeros(self.config.num_envs)
        episode_length = np.zeros(self.config.num_envs, dtype=np.int64)
        try:
            while self.frames < self.config.total_frames and self.stop_signal is None:
                action_std = self.config.action_std_at(self.frames)
                obs, collected = self.collect_rollout(obs, action_std, episode_reward,
                                                      episode_length)
                if not collected:
                    self.discard_partial_batch()
                    break
                self.maybe_save_best()
                for layer in transfer.apply_thaw_schedule(self.policy, self.config, self.frames):
                    self.progress.message(f"thawed {layer} at frame {self.frames:,}")
                self.update(self.buffer.batch(self.config.gamma, self.config.gae_lambda),
                            action_std)
                self.updates += 1
                self.save_last()
                self.committed = (self.frames, len(self.log))
                self.write_results()
                self.progress.update(self.frames, self.log.running_average, self.best_score)
        except (EOFError, OSError):
            # SIGTERM sent to the whole process group (systemd, `kill -- -PGID`) also ends the
            # environment workers: a stop like any other, with the episodes already recorded.
            if not self.stopped_by_signal_soon():
                raise
            self.discard_partial_batch()
        finally:
            self.envs.close()
            self.progress.close()
        results_path, csv_path = self.write_results()
        return StudyOutcome(self.best_path, results_path, csv_path, self.frames, self.best_score,
                            len(self.log), self.stop_signal)

    def collect_rollout(self, obs: np.ndarray, action_std: float, episode_reward: np.ndarray,
                        episode_length: np.ndarray) -> tuple[np.ndarray, bool]:
        """Fill the buffer; False if a stop was requested before it was full.

        The policy runs in NumPy on a snapshot of its weights (see `ppo.inference`), one
        batched pass of actor and critic per step over all environments, and the rollout's
        noise is drawn in one go. The value of what followed step t is the critic's value of
        step t + 1's observation, which that step computes anyway; only final observations
        (an episode ended) and the last step need a critic pass of their own.
        """
        buffer = self.buffer
        policy = inference.PolicySnapshot(self.policy)
        noise = action_std * torch.randn(buffer.actions.shape, generator=self.generator).numpy()
        raw_obs = np.zeros((buffer.num_steps, *obs.shape), dtype=np.float32)
        last_step = buffer.num_steps - 1
        for step in range(buffer.num_steps):
            if self.stop_signal is not None:
                return obs, False
            raw_obs[step] = obs
            norm_obs = buffer.obs[step] = policy.normalize(obs)
            mean = policy.mean_action(norm_obs)
            action = buffer.actions[step] = mean + noise[step]
            buffer.log_probs[step] = inference.gaussian_log_prob(action, mean, action_std)
            buffer.values[step] = policy.value(norm_obs)
            if step > 0:
                np.copyto(buffer.next_values[step - 1], buffer.values[step],
                          where=buffer.episode_ended[step - 1] == 0)

            result = self.envs.step(action)
            obs, terminated = result.obs, result.terminated
            ended = terminated | result.truncated
            buffer.rewards[step] = self.reward_scaler(result.rewards, ended)
            buffer.terminated[step] = terminated
            buffer.episode_ended[step] = ended
            if step == last_step or ended.any():
                # For an episode that ended, what followed is its final observation (its value
                # is used only if it was truncated), not the next episode's first.
                rows = slice(None) if step == last_step else np.flatnonzero(ended)
                buffer.next_values[step, rows] = policy.value(
                    policy.normalize(result.final_obs[rows]))

            self.frames += self.config.num_envs
            episode_reward += result.rewards
            episode_length += 1
            if ended.any():
                self.record_episodes(ended, episode_reward, episode_length, action_std,
                                     result.final_obs)
        if self.policy.actor[0].weight.requires_grad:
            # The normaliser is part of the input layer: while that layer is frozen (transfer)
            # it must keep seeing inputs on the scale it was trained with.
            self.policy.obs_normalizer.update(raw_obs.reshape(-1, raw_obs.shape[-1]))
        return obs, True

    def record_episodes(self, ended: np.ndarray, episode_reward: np.ndarray,
                        episode_length: np.ndarray, action_std: float,
                        final_obs: np.ndarray) -> None:
        wall_time = self.wall_time()
        rows = np.flatnonzero(ended)
        designs = envs.designs_from_observations(final_obs[rows], self.env_kwargs)
        for row, i in enumerate(rows):
            self.log.add(self.frames, int(episode_length[i]), float(episode_reward[i]), wall_time,
                         action_std, [float(designs[name][row]) for name in DESIGN_COLUMNS])
        episode_reward[ended] = 0.0
        episode_length[ended] = 0

    def update(self, batch: Batch, action_std: float) -> None:
        """`train_steps` clipped-surrogate gradient steps, each on a fresh minibatch."""
        config, device = self.config, self.device
        b_obs, b_actions, b_log_probs, b_advantages, b_returns = (
            torch.as_tensor(array, device=device) for array in vars(batch).values()
        )
        batch_size = len(b_obs)
        order = torch.randperm(batch_size, generator=self.generator)
        cursor = 0
        for _ in range(config.train_steps):
            if cursor + config.minibatch_size > batch_size:
                order, cursor = torch.randperm(batch_size, generator=self.generator), 0
            mb = order[cursor:cursor + config.minibatch_size].to(device)
            cursor += config.minibatch_size
            loss = ppo_loss(self.policy, b_obs[mb], b_actions[mb], b_log_probs[mb],
                            b_advantages[mb], b_returns[mb], action_std, config)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the loss became {loss.item()} at frame {self.frames:,}; the last good "
                    f"checkpoints are kept (try a lower --learning_rate)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in self.policy.parameters() if p.grad is not None], config.max_grad_norm
            )
            if not torch.isfinite(grad_norm):  # a finite loss can still overflow its gradient
                raise TrainingDiverged(
                    f"the gradient norm became {grad_norm.item()} at frame {self.frames:,}; "
                    f"the last good checkpoints are kept (try a lower --learning_rate)"
                )
            self.optimizer.step()


def check_same_study(saved: dict[str, Any], config: Config) -> None:
    """A resumed study must be the experiment that was interrupted: only its run settings
    (budget, workers, device, folders...) may change."""
    changed = experiment_differences(saved, config_as_plain_dict(config))
    if changed:
        name = changed[0]
        current = config_as_plain_dict(config)
        raise UsageError(f"--resume: the interrupted study used --{name}={saved.get(name)}, not "
                         f"{current.get(name)}; resume the same experiment (only "
                         f"{', '.join(sorted(set(RUN_SETTINGS) - {'resume', 'save_name'}))} "
                         f"may change)")


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """Log-density of `actions` (batch, act_dim) under independent Normals, summed over dims.

    Written out rather than via torch.distributions: it runs every environment step, and the
    distribution object's construction and validation cost more than the arithmetic.
    """
    return (-0.5 * ((actions - mean) / std).square() - math.log(std)
            - 0.5 * math.log(2 * math.pi)).sum(-1)


def ppo_loss(policy: ActorCritic, obs: torch.Tensor, actions: torch.Tensor,
             old_log_probs: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
             action_std: float, config: Config) -> torch.Tensor:
    """Clipped surrogate plus weighted value loss, on already-normalised observations.

    There is no entropy bonus: the action std is set by the study, not learned, so the
    policy's entropy is a constant with no gradient.
    """
    log_probs = gaussian_log_prob(actions, torch.tanh(policy.actor(obs)), action_std)
    ratio = torch.exp(log_probs - old_log_probs)
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    clipped = torch.clamp(ratio, 1 - config.clip, 1 + config.clip)
    policy_loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    value_loss = 0.5 * (policy.critic(obs).squeeze(-1) - returns).square().mean()
    return policy_loss + config.value_coef * value_loss


def train(config: Config, source_choice: str = "") -> StudyOutcome:
    """Run a study; SIGINT/SIGTERM stop it cleanly with everything so far written.

    `source_choice`: how `--initial_model=auto` chose the model (kept in the transfer summary).
    """
    torch.set_num_threads(1)  # tiny networks: threads only contend with the env workers
    study = Study(config, source_choice)
    previous = {sig: signal.signal(sig, study.request_stop) for sig in (signal.SIGINT,
                                                                       signal.SIGTERM)}
    try:
        return study.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

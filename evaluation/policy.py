"""A saved policy, acting from Python with no command line in between.

Stable-Baselines3's `PPO.load(path).predict(obs, deterministic=True)` is the model: a user
loads a policy by name or path and asks it for actions. The actions are the command line's
deterministic ones bit for bit (the same NumPy pass, `evaluation.evaluate.act`'s), with the
observation normaliser inside the policy. A design-conditioned policy (trained over design
ranges, it reads its body's design after the walker's 24 observations) is told its design once,
at `Policy.load(..., design=...)`, or reads it from a walker built by `Policy.make_env`: the
design inputs are never appended by hand.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import envs
from common.checkpoint import (
    architecture_of,
    design_inputs_of,
    load_checkpoint,
    policy_from_checkpoint,
    trained_env,
)
from common.models import resolve_model_path
from ppo.inference import PolicySnapshot
from ppo.network import ActorCritic

DesignValues = Mapping[str, float | None]
"""Design parameter -> value (envs.DESIGN_PARAMETERS; a segment may be None: it follows
leg_length), as the walker's constructor takes them."""


class Policy:
    """A trained policy, its walker settings and (for a design-conditioned one) its design.

    `design`: the body it drives, as walker arguments; parameters left out take the walker's
    defaults. A design-conditioned policy needs it to act on the walker's bare 24 observations;
    any policy uses it for `make_env`.
    """

    def __init__(self, network: ActorCritic, checkpoint: dict[str, Any],
                 design: DesignValues | None = None, path: Path | None = None) -> None:
        self.network = network.eval()
        self.checkpoint = checkpoint
        self.path = path
        self.design = dict(design or {})
        self.design_inputs = design_inputs_of(checkpoint)
        """What the policy observes of its body: parameter -> the range scaled to [-1, 1]."""
        self.observation_size, self.action_size, _ = architecture_of(checkpoint["state_dict"])
        self.snapshot = PolicySnapshot(self.network)
        observed = self.observed_design()  # checks, whether a design was given or not
        self.design_observation = observed if design is not None else None
        """The design inputs appended to bare observations (float32, scaled as the walker
        scales them); None: no design was given."""

    @classmethod
    def load(cls, name: str | Path, design: DesignValues | None = None,
             models_dir: str | Path = "trained_models") -> Policy:
        """The policy `name` (a .pt path, or a name looked up in `models_dir`, then in the
        repository's trained_models/, as `--initial_model` is), ready to act.

        Raises ValueError (common.errors.UsageError) for a missing or unusable file and for a
        design the walker cannot build or the policy cannot read; warns (UserWarning) when the
        design lies outside what the policy learned, as the command line does on stderr.
        """
        path = resolve_model_path(str(name), Path(models_dir), flag=None)
        checkpoint = load_checkpoint(path)
        policy = cls(policy_from_checkpoint(checkpoint), checkpoint, design, path)
        if design is not None:
            warning = envs.outside_warning(path.name, trained_env(checkpoint),
                                           policy.walker_settings({}))
            if trained_env(checkpoint) and warning:
                warnings.warn(warning.removeprefix("warning: "), stacklevel=2)
        return policy

    @property
    def conditioned(self) -> bool:
        """Whether the policy reads its body's design from its observation."""
        return bool(self.design_inputs)

    def walker_settings(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The walker's constructor arguments: the design, then `settings`, then the policy's
        design inputs (what it observes is the policy's to say, not the walker's)."""
        if "design_inputs" in settings:
            raise ValueError("design_inputs: set by the policy (what it learned to read); "
                             "leave it out")
        return {**self.design, **settings, "design_inputs": self.design_inputs}

    def make_env(self, render_mode: str | None = None, **settings: Any) -> gym.Env:
        """The registered walker (`gym.make(envs.ENV_ID, ...)`) with this policy's design,
        overridden by `settings` (any walker argument: `max_time_steps=200`, another body,
        `design_ranges=...`), whose observations carry the design inputs the policy reads.

        The walker's defaults are the command line's: `make_env()` is the walker that
        `run.py --initial_model=NAME --eval_episodes=N` plays, plus the design flags given as
        `design`."""
        return gym.make(envs.ENV_ID, render_mode=render_mode, **self.walker_settings(settings))

    def observed_design(self) -> np.ndarray:
        """The design inputs of `make_env()`'s body, read off the walker as built, after
        checking that the walker can be built and its observations and actions fit the
        policy: a policy that cannot act is refused when loaded, not at its first action."""
        try:
            env = self.make_env()
        except (TypeError, ValueError) as error:  # a design the walker cannot build or read
            message = str(error)
            raise ValueError(message if message.startswith("design") else f"design: {message}"
                             ) from None
        try:
            problem = fit_problem(self.checkpoint, env)
            if problem:
                raise ValueError(problem)
            return env.unwrapped.design_observation.copy()
        finally:
            env.close()

    def predict(self, observation: np.ndarray, deterministic: bool = True
                ) -> tuple[np.ndarray, None]:
        """(actions, None), as SB3's `predict` (None: no recurrent state): the mean action for
        one observation, shape (size,), or a batch, shape (n, size); float32 in [-1, 1]. One
        observation's is the command line's bit for bit; a batch's, to float32 rounding
        (other matrix kernels).

        `observation` is the walker's: with the design inputs (a walker from `make_env`) or,
        for a design-conditioned policy given its `design`, the bare 24 body observations,
        to which the design inputs are appended here.
        """
        if not deterministic:
            raise ValueError("deterministic: only true; the exploration noise is a setting "
                             "of the study that trained the policy, not part of the policy")
        rows = self.policy_inputs(np.asarray(observation, dtype=np.float32))
        actions = self.snapshot.mean_action(self.snapshot.normalize(rows))
        return (actions[0] if np.ndim(observation) == 1 else actions), None

    def policy_inputs(self, observation: np.ndarray) -> np.ndarray:
        """(n, observation_size) rows: the observation, with the design inputs appended to bare
        body observations."""
        rows = observation.reshape(1, -1) if observation.ndim == 1 else observation
        if rows.ndim != 2:
            raise ValueError(f"observation: one row or a batch (n, size), got shape "
                             f"{observation.shape}")
        size = rows.shape[1]
        if size == self.observation_size:
            return rows
        if size == envs.BODY_OBS_DIM and self.design_observation is not None:
            design = np.broadcast_to(self.design_observation, (len(rows), len(self.design_inputs)))
            return np.concatenate([rows, design], axis=1)
        wanted = f"{self.observation_size}" + (
            f" (or the bare {envs.BODY_OBS_DIM} with Policy.load(..., design=...))"
            if self.conditioned and self.design_observation is None else "")
        raise ValueError(f"observation: {wanted} values per row, got {size}")

    def __repr__(self) -> str:
        reads = f", reads {', '.join(self.design_inputs)}" if self.conditioned else ""
        return f"Policy({self.path or 'unsaved'}{reads}, design={self.design})"


def fit_problem(checkpoint: dict[str, Any], env: gym.Env) -> str | None:
    """Why the policy of `checkpoint` cannot drive the walker `env`, or None: its inputs and
    outputs must be the walker's observations and actions."""
    inputs, outputs, _ = architecture_of(checkpoint["state_dict"])
    observations, actions = env.observation_space.shape[0], env.action_space.shape[0]
    if (inputs, outputs) == (observations, actions):
        return None
    return (f"policy has {inputs} inputs and {outputs} outputs; {envs.ENV_ID} needs "
            f"{observations} and {actions}")

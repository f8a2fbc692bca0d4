"""The shipped policies (trained_models/*.pt) see exactly what they saw when they were trained:
for each, a few target walkers (their own ranges, a fixed design, a transfer), the observations
of two short deterministic episodes and their returns are compared with a reference recorded
from the code before the per-leg design parameters existed (main at 2f74f7b), bit for bit.

Regenerate the reference (only on purpose: it pins behaviour) with
`python tests/test_shipped_policies.py --record`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from common.config import parse_config  # noqa: E402
from evaluation.evaluate import act, load_policy, make_env, outcome_of  # noqa: E402
from ppo.inference import PolicySnapshot  # noqa: E402

REFERENCE = Path(__file__).with_name("shipped_observations.json")
STEPS = 120
"""Per episode: enough for the gait to start and the lidar to see terrain, fast in a test."""
SEEDS = (3, 4)
CASES = {
    "leg_34_trained at its own body": ("leg_34_trained",),
    "leg_34_trained at leg_length 30": ("leg_34_trained", "--leg_length=30"),
    "universal_24_46 over its range": ("universal_24_46", "--leg_length=24:46"),
    "universal_24_46 at thigh 30 shin 40": ("universal_24_46", "--thigh_length=30",
                                            "--shin_length=40"),
    "universal_design over its box": ("universal_design", "--thigh_length=22:48",
                                      "--shin_length=22:48", "--leg_width=4:12",
                                      "--motor_torque=55:125"),
    "universal_design at a fixed body": ("universal_design", "--thigh_length=30",
                                         "--shin_length=40", "--leg_width=6",
                                         "--motor_torque=100"),
}


def observe(policy_name: str, *flags: str) -> dict[str, object]:
    """SHA-256 of the float32 observations of each episode, and its return and outcome."""
    config = parse_config([f"--initial_model={REPO_ROOT / 'trained_models' / policy_name}.pt",
                           "--eval_episodes=1", f"--max_time_steps={STEPS}", *flags])
    policy, checkpoint, _ = load_policy(config)
    snapshot = PolicySnapshot(policy)
    env = make_env(config, checkpoint["env"].get("design_inputs"))
    episodes = []
    for seed in SEEDS:
        observation, _ = env.reset(seed=seed)
        observations, episode_return = [observation], 0.0
        while True:
            observation, reward, terminated, truncated, _ = env.step(act(snapshot, observation))
            observations.append(observation)
            episode_return += reward
            if terminated or truncated:
                break
        digest = hashlib.sha256(np.stack(observations).astype(np.float32).tobytes()).hexdigest()
        episodes.append({"observations_sha256": digest, "return": repr(episode_return),
                         "outcome": outcome_of(env, terminated)})
    return {"episodes": episodes}


@pytest.mark.parametrize("case", CASES)
def test_a_shipped_policy_sees_and_scores_exactly_as_before(case):
    reference = json.loads(REFERENCE.read_text())
    assert observe(*CASES[case]) == reference[case]


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_shipped_policies.py --record")
    REFERENCE.write_text(json.dumps({case: observe(*flags) for case, flags in CASES.items()},
                                    indent=1) + "\n")

"""The design space told the truth (issue 24): what a conditioned policy observes is the body the
walker built, flags that cannot change the body are refused, a policy used outside what it learned
says so, and each declared design parameter reaches flags, checkpoints, results and observations.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest
from conftest import cli_in_process, only_line, study_results, tiny_flags

import envs
from common.checkpoint import load_checkpoint
from common.config import build_parser
from envs.design import BODY_PARAMETERS, DECLARED, WalkerDesign, outside_training

ALL_INPUTS = {parameter.name: parameter.bounds for parameter in DECLARED}
"""Every parameter observed, each scaled over its whole supported range."""
BUDGET = ("--total_frames=500", "--batch_size=500", "--minibatch_size=250", "--train_steps=2",
          "--num_envs=2", "--max_time_steps=50")
UNIVERSAL_24_46 = "universal_24_46"


def observed_values(observation: np.ndarray) -> dict[str, float]:
    """The design inputs of an ALL_INPUTS walker, unscaled."""
    inputs = observation[envs.BODY_OBS_DIM:].astype(np.float64)
    return {name: low + (value + 1) / 2 * (high - low)
            for value, (name, (low, high)) in zip(inputs, ALL_INPUTS.items(), strict=True)}


SEGMENT_SETTINGS = {
    "segments follow a fixed leg": {"leg_length": 40.0},
    "segments follow a ranged leg": {"design_ranges": {"leg_length": (24.0, 46.0)}},
    "thigh set, shin follows a ranged leg": {"thigh_length": 30.0,
                                             "design_ranges": {"leg_length": (24.0, 46.0)}},
    "shin set, thigh follows the leg": {"leg_length": 30.0, "shin_length": 44.0},
    "both segments set": {"thigh_length": 30.0, "shin_length": 44.0},
    "both segments ranged": {"design_ranges": {"thigh_length": (22.0, 48.0),
                                               "shin_length": (22.0, 48.0)}},
    "one leg set, the other follows a ranged leg": {
        "left_thigh_length": 20.0, "left_shin_length": 30.0,
        "design_ranges": {"leg_length": (24.0, 46.0)}},
    "every segment of each leg ranged": {"design_ranges": {
        f"{side}_{segment}": (10.0, 40.0) for side in ("left", "right")
        for segment in ("thigh_length", "shin_length")}},
    "a shorthand range beside a fixed leg": {"right_thigh_length": 40.0,
                                             "design_ranges": {"thigh_length": (20.0, 50.0)}},
}
OTHER_SETTINGS = {
    "width and torque fixed": {"leg_width": 6.0, "motor_torque": 100.0},
    "width and torque ranged": {"design_ranges": {"leg_width": (4.0, 12.0),
                                                  "motor_torque": (55.0, 125.0)}},
}


@pytest.mark.parametrize("segments, others", itertools.product(SEGMENT_SETTINGS, OTHER_SETTINGS))
def test_the_observed_design_is_the_built_body(segments, others):
    first, second = SEGMENT_SETTINGS[segments], OTHER_SETTINGS[others]
    settings = {**first, **second,
                "design_ranges": {**first.get("design_ranges", {}),
                                  **second.get("design_ranges", {})}}
    walker = gym.make(envs.ENV_ID, design_inputs=ALL_INPUTS, **settings).unwrapped
    for seed in range(4):
        observation, _ = walker.reset(seed=seed)
        body: WalkerDesign = walker.design
        seen = observed_values(observation)
        for name in BODY_PARAMETERS:
            assert seen[name] == pytest.approx(getattr(body, name), abs=1e-4), name
        # A shorthand input is told the mean of what follows it, never the flag.
        assert seen["thigh_length"] == pytest.approx(
            (body.left_thigh_length + body.right_thigh_length) / 2, abs=1e-4)
        assert seen["shin_length"] == pytest.approx(
            (body.left_shin_length + body.right_shin_length) / 2, abs=1e-4)
        assert seen["leg_length"] == pytest.approx(
            (seen["thigh_length"] + seen["shin_length"]) / 2, abs=1e-4)
        assert seen["leg_width"] == pytest.approx(
            (body.left_thigh_width + body.right_thigh_width) / 2, abs=1e-4)


def test_results_columns_are_the_body(tmp_path):
    """A study over thigh and shin records each episode's own segments, and as leg_length their
    mean, not the --leg_length flag's default."""
    flags = tiny_flags(tmp_path, *BUDGET, "--thigh_length=22:48", "--shin_length=22:48")
    assert cli_in_process(flags) == 0
    episodes = study_results(tmp_path)["episodes"]
    thigh = np.array(episodes["thigh_length"], dtype=float)
    shin = np.array(episodes["shin_length"], dtype=float)
    leg = np.array(episodes["leg_length"], dtype=float)
    assert len(set(thigh)) > 1 and ((22 <= thigh) & (thigh <= 48)).all()
    np.testing.assert_allclose(leg, (thigh + shin) / 2, atol=1e-3)


@pytest.mark.parametrize("flags, allowed", [
    (("--leg_length=24:46", "--thigh_length=30", "--shin_length=30"), "a single value"),
    (("--leg_length=38", "--thigh_length=30", "--shin_length=44"),
     "or equal the body's leg_length (37: the mean of thigh_length and shin_length)"),
])
def test_a_flag_that_cannot_change_the_body_is_refused(tmp_path, capsys, flags, allowed):
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, *flags)) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith("run.py: error: --leg_length:") and allowed in line, line
    assert not (tmp_path / "m").exists()


def test_a_leg_length_equal_to_the_mean_segment_is_accepted(tmp_path):
    flags = ("--leg_length=37", "--thigh_length=30", "--shin_length=44")
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, *flags)) == 0


UNIVERSAL_SETTINGS = {"leg_length": 34.0, "design_ranges": {"leg_length": [24.0, 46.0]},
                      "design_inputs": {"leg_length": [24.0, 46.0]}}


@pytest.mark.parametrize("inside, outside, named", [
    ({"leg_length": 46.0}, {"leg_length": 46.5}, "leg_length 46.5 outside 24:46"),
    ({"leg_length": 24.0}, {"leg_length": 23.5}, "leg_length 23.5 outside 24:46"),
    ({"motor_torque": 80.0}, {"motor_torque": 80.5}, "motor_torque 80.5 outside 80 (not observed)"),
    ({"leg_width": 8.0}, {"leg_width": 7.5}, "leg_width 7.5 outside 8 (not observed)"),
    ({"thigh_length": 30.0, "shin_length": 30.0}, {"thigh_length": 30.0, "shin_length": 30.5},
     "outside equal segments"),
])
def test_the_outside_rule_switches_at_the_edge(inside, outside, named):
    assert outside_training(UNIVERSAL_SETTINGS, inside) == []
    assert any(named in entry for entry in outside_training(UNIVERSAL_SETTINGS, outside))


@pytest.mark.parametrize("leg, warned", [("46", False), ("46.5", True)])
def test_evaluation_warns_outside_what_the_policy_learned(tmp_path, capsys, leg, warned):
    flags = [f"--initial_model={UNIVERSAL_24_46}", "--eval_episodes=1", "--max_time_steps=20",
             f"--leg_length={leg}", f"--results_dir={tmp_path}"]
    assert cli_in_process(flags) == 0
    warnings = capsys.readouterr().err.splitlines()
    if warned:
        assert warnings == [f"warning: {UNIVERSAL_24_46}.pt is used outside what it learned: "
                            f"leg_length {leg} outside 24:46"]
    else:
        assert warnings == []


def test_fine_tuning_a_conditioned_policy_outside_warns(tmp_path, capsys):
    flags = tiny_flags(tmp_path, *BUDGET, f"--initial_model={UNIVERSAL_24_46}",
                       "--motor_torque=120")
    assert cli_in_process(flags) == 0
    assert "motor_torque 120 outside 80 (not observed)" in capsys.readouterr().err


@pytest.mark.parametrize("parameter", DECLARED, ids=lambda parameter: parameter.name)
def test_a_declared_parameter_reaches_flag_checkpoint_results_and_observation(tmp_path,
                                                                             parameter):
    helps = {action.dest: action.help for action in build_parser()._actions}
    assert helps[parameter.name].startswith(parameter.describe_help())
    low, high = parameter.bounds
    span = (low + (high - low) / 4, low + (high - low) / 2)
    flags = tiny_flags(tmp_path, *BUDGET, f"--{parameter.name}={span[0]:g}:{span[1]:g}")
    if parameter.name == "thigh_length":  # keep the shin (leg_length 34) under twice the thigh
        flags.append("--shin_length=20")
    assert cli_in_process(flags) == 0
    checkpoint = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert checkpoint["env"]["design_ranges"] == {parameter.name: [*span]}
    assert checkpoint["env"]["design_inputs"] == {parameter.name: [*span]}
    assert checkpoint["obs_dim"] == envs.BODY_OBS_DIM + 1
    recorded = np.array(study_results(tmp_path)["episodes"][parameter.name], dtype=float)
    assert ((span[0] - 1e-3 <= recorded) & (recorded <= span[1] + 1e-3)).all()
    assert len(set(recorded)) > 1

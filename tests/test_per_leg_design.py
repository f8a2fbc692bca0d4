"""Ha (2018)'s design space (issue 36): the length and width of each segment of each leg on its
own, the symmetric flags as shorthands for both legs, the standing rule per leg, asymmetric bodies
described, compared and warned about, and the edge-biased draw of design ranges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import cli_in_process, only_line, study_results, tiny_flags
from gymnasium.envs.box2d.bipedal_walker import LEG_W, SCALE, TERRAIN_HEIGHT
from test_envs import lowest_leg_point, make_walker, random_policy, rollout, segment_size

import envs
from analysis.data import walker_values
from common.checkpoint import load_checkpoint
from designsearch.space import check_space, default_body, leg_area
from envs.design import (
    BODY_PARAMETERS,
    EDGE_PROBABILITY,
    SIDES,
    WalkerDesign,
    design_differences,
    design_of,
    outside_training,
)

BUDGET = ("--total_frames=500", "--batch_size=500", "--minibatch_size=250", "--train_steps=2",
          "--num_envs=2", "--max_time_steps=50")
GYMNASIUM_LEG = {"thigh_length": 34.0, "shin_length": 34.0, "thigh_width": LEG_W * SCALE,
                 "shin_width": 0.8 * LEG_W * SCALE}
"""Gymnasium's segment sizes in drawing units."""
HA_BOX = {dimension: (0.25 * size, 1.75 * size) for dimension, size in GYMNASIUM_LEG.items()}
"""Ha (2018)'s bounds: each segment's length and width within 75% of Gymnasium's."""
CHANGES = {"left_thigh_length": 24.0, "right_thigh_length": 44.0, "left_shin_length": 48.0,
           "right_shin_length": 20.0, "left_thigh_width": 14.0, "right_thigh_width": 3.0,
           "left_shin_width": 11.2, "right_shin_width": 2.0}


def leg_sizes(walker, side: str) -> list[tuple[float, float]]:
    """(width, height) of the thigh and the shin of `side`, in drawing units."""
    first = 2 * SIDES.index(side)
    return [tuple(round(size * SCALE, 3) for size in segment_size(segment))
            for segment in walker.legs[first:first + 2]]


def test_the_declared_per_leg_parameters_are_ha_s_eight_within_their_bounds():
    assert [name for name in BODY_PARAMETERS if name != "motor_torque"] == list(CHANGES)
    for side, (dimension, (low, high)) in itertools.product(SIDES, HA_BOX.items()):
        bounds = envs.DESIGN_PARAMETERS[f"{side}_{dimension}"]
        assert bounds[0] <= round(low, 9) and round(high, 9) <= bounds[1], (side, dimension)


@pytest.mark.parametrize("name", CHANGES)
def test_each_per_leg_parameter_changes_its_own_leg_only(name):
    default, changed = make_walker().unwrapped, make_walker(**{name: CHANGES[name]}).unwrapped
    default.reset(seed=0)
    changed.reset(seed=0)
    side, dimension = name.split("_", 1)
    other = "right" if side == "left" else "left"
    assert leg_sizes(changed, other) == leg_sizes(default, other)
    (thigh, shin), value = leg_sizes(changed, side), CHANGES[name]
    expected = {"thigh_length": thigh[1], "shin_length": shin[1], "thigh_width": thigh[0],
                "shin_width": shin[0]}
    assert expected[dimension] == pytest.approx(value, abs=1e-3)
    assert leg_sizes(changed, side) != leg_sizes(default, side)
    # And the episode: same seed, same actions, another rollout.
    first = rollout(make_walker(), 5, random_policy(5), 40)
    second = rollout(make_walker(**{name: CHANGES[name]}), 5, random_policy(5), 40)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(first, second, strict=False))


def test_shorthands_set_both_legs_and_a_per_leg_value_overrides_them():
    body = WalkerDesign.from_parameters({**envs.DESIGN_DEFAULTS, "leg_length": 30.0,
                                         "shin_length": 40.0, "leg_width": 10.0,
                                         "right_thigh_length": 20.0, "left_shin_width": 5.0})
    assert body.leg("left") == (30.0, 40.0, 10.0, 5.0)
    assert body.leg("right") == (20.0, 40.0, 10.0, 8.0)  # the shin 0.8 of leg_width
    # What a symmetric design input is told: the mean of the two legs.
    assert (body.thigh_length, body.shin_length, body.leg_width) == (25.0, 40.0, 10.0)
    assert body.leg_length == 32.5


def test_an_asymmetric_body_stands_on_its_longer_leg():
    walker = make_walker(left_thigh_length=8.5, left_shin_length=8.5, right_thigh_length=59.5,
                         right_shin_length=59.5).unwrapped
    for seed in (0, 1):
        obs, _ = walker.reset(seed=seed)
        assert not walker.game_over
        assert obs[13] == 1.0 and obs[8] == 0.0, "the long (right) leg stands, the short hangs"
        assert 0 <= lowest_leg_point(walker) - TERRAIN_HEIGHT < 0.05
        hull_bottom = min((walker.hull.transform * v)[1]
                          for v in walker.hull.fixtures[0].shape.vertices)
        assert hull_bottom > TERRAIN_HEIGHT + 59.5 / SCALE


def ha_corners() -> list[dict[str, float]]:
    """Corners of Ha's box for one leg (the other Gymnasium's), shin at most twice the thigh."""
    corners = []
    for side, values in itertools.product(SIDES, itertools.product(*HA_BOX.values())):
        leg = dict(zip(HA_BOX, values, strict=True))
        if leg["shin_length"] <= 2 * leg["thigh_length"]:
            corners.append({f"{side}_{dimension}": value for dimension, value in leg.items()})
    return corners


@pytest.mark.parametrize("design", ha_corners()[::3], ids=lambda d: "-".join(
    f"{value:g}" for value in d.values()))
def test_corners_of_ha_s_box_start_standing(design):
    """Standing: not fallen, a foot on the pad. Measured: a foot of a thin or light leg may
    touch a step late or lose contact for a step while the body settles, so contact is asked
    of the reset or the two idle steps after it."""
    walker = make_walker(**design).unwrapped
    obs, _ = walker.reset(seed=0)
    touching = [obs[8] == 1.0 or obs[13] == 1.0]
    for _ in range(2):
        obs, *_ = walker.step(np.zeros(4, dtype=np.float32))
        touching.append(obs[8] == 1.0 or obs[13] == 1.0)
    assert not walker.game_over
    assert 0 <= lowest_leg_point(walker) - TERRAIN_HEIGHT < 0.06
    assert any(touching)


def test_the_standing_rule_holds_on_each_leg_and_names_it():
    with pytest.raises(ValueError, match=r"^left_shin_length must be at most 2 x "
                       r"left_thigh_length \(10\) so the walker starts standing, got 30"):
        make_walker(left_thigh_length=10, left_shin_length=30)
    with pytest.raises(ValueError, match=r"^right_shin_length must be at most 2 x "
                       r"right_thigh_length \(12\) for some drawn body"):
        make_walker(right_thigh_length=12, design_ranges={"right_shin_length": (25, 40)})
    walker = make_walker(left_thigh_length=10, left_shin_length=20, right_shin_length=60)
    assert walker.unwrapped.design.stands


def test_a_range_no_body_follows_is_refused():
    with pytest.raises(ValueError, match=r"^thigh_length must be a single value when "
                       r"left_thigh_length and right_thigh_length are both given"):
        make_walker(left_thigh_length=30, right_thigh_length=30,
                    design_ranges={"thigh_length": (24, 46)})


@pytest.mark.parametrize("flags, refused", [
    (("--thigh_length=31", "--left_thigh_length=20", "--right_thigh_length=40"), "thigh_length"),
    (("--leg_width=9", "--left_thigh_width=6", "--right_thigh_width=8",
      "--left_shin_width=5", "--right_shin_width=5"), "leg_width"),
])
def test_a_shorthand_every_leg_overrides_is_refused_unless_it_is_their_mean(tmp_path, capsys,
                                                                           flags, refused):
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, *flags)) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"run.py: error: --{refused}: must be left out when"), line
    assert not (tmp_path / "m").exists()
    mean = {"thigh_length": "30", "leg_width": "7"}[refused]
    agreeing = [flag if not flag.startswith(f"--{refused}=") else f"--{refused}={mean}"
                for flag in flags]
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, *agreeing)) == 0


def test_per_leg_ranges_reach_checkpoint_results_and_observation(tmp_path):
    flags = tiny_flags(tmp_path, *BUDGET, "--left_shin_length=20:40",
                       "--right_thigh_width=3:12", "--design_draw=edges")
    assert cli_in_process(flags) == 0
    checkpoint = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert checkpoint["env"]["design_draw"] == "edges"
    assert checkpoint["env"]["design_inputs"] == {"left_shin_length": [20.0, 40.0],
                                                  "right_thigh_width": [3.0, 12.0]}
    episodes = study_results(tmp_path)["episodes"]
    left_shin = np.array(episodes["left_shin_length"], dtype=float)
    assert ((19.999 <= left_shin) & (left_shin <= 40.001)).all() and len(set(left_shin)) > 1
    assert set(episodes["right_shin_length"]) == {34.0}
    # The symmetric column is what a symmetric input would be told: the two shins' mean.
    np.testing.assert_allclose(episodes["shin_length"], (left_shin + 34.0) / 2, atol=1e-3)


def test_asymmetric_designs_are_described_and_compared_readably():
    both = {"thigh_length": 30.0, "shin_length": 40.0}
    assert design_differences({"leg_length": 34.0}, both) == [
        "thigh_length 34 -> 30", "shin_length 34 -> 40"]
    assert design_differences({"leg_length": 34.0}, {"leg_length": 30.0}) == [
        "leg_length 34 -> 30"]
    assert design_differences({}, {"left_shin_length": 20.0}) == ["left_shin_length 34 -> 20"]
    assert design_of({"left_shin_length": 20.0}) == {
        "leg_length": "34", "leg_width": "8", "motor_torque": "80", "left_shin_length": "20"}


def test_the_analysis_reads_a_walker_whose_legs_are_all_set():
    values = walker_values({"left_thigh_length": 30.0, "right_thigh_length": 40.0,
                            "left_shin_length": 20.0, "right_shin_length": 20.0})
    assert (values["thigh_length"], values["shin_length"]) == (35.0, 20.0)
    assert values["left_thigh_length"] == 30.0 and "leg_length" not in values


def test_a_symmetric_policy_used_on_an_asymmetric_body_is_warned():
    policy = {"leg_length": 34.0, "design_ranges": {"thigh_length": [24.0, 46.0],
                                                    "shin_length": [24.0, 46.0]}}
    assert outside_training(policy, {"thigh_length": 30.0}) == []
    found = outside_training(policy, {"left_thigh_length": 30.0, "right_thigh_length": 40.0})
    assert found == ["left and right legs differ (thigh_length 30 and 40) outside two equal "
                     "legs (a symmetric design input is told the mean of the two)"]
    assert "left_thigh_length 20 outside 24:46" in outside_training(
        policy, {"left_thigh_length": 20.0})[0]


def test_the_design_search_takes_per_leg_parameters():
    assert leg_area({}) == pytest.approx(2 * (34 * 8 + 34 * 6.4))
    assert leg_area({"left_thigh_length": 17.0, "right_shin_width": 3.2}) == pytest.approx(
        17 * 8 + 34 * 6.4 + 34 * 8 + 34 * 3.2)
    ranges = {"left_thigh_length": (20.0, 40.0), "right_shin_width": (2.0, 8.0)}
    check_space(ranges, {}, {name: list(bounds) for name, bounds in ranges.items()}, "policy")
    assert default_body(ranges) == {"left_thigh_length": 34.0,
                                    "right_shin_width": pytest.approx(6.4)}


# --- The edge-biased draw ------------------------------------------------------------------------

BOX = {"left_thigh_length": (20.0, 50.0), "left_shin_width": (2.0, 10.0),
       "motor_torque": (40.0, 120.0)}


def drawn_bodies(design_draw: str, seed: int, resets: int) -> np.ndarray:
    walker = make_walker(design_ranges=BOX, design_draw=design_draw).unwrapped
    bodies = []
    for i in range(resets):
        walker.reset(seed=seed if i == 0 else None)
        bodies.append([walker.design.value(name) for name in BOX])
    return np.array(bodies)


def test_the_edge_draw_puts_parameters_and_bodies_at_the_box_s_ends():
    uniform, edges = drawn_bodies("uniform", 0, 300), drawn_bodies("edges", 0, 300)
    lows, highs = np.array([low for low, _ in BOX.values()]), np.array([h for _, h in BOX.values()])
    at_an_end = [(bodies == lows) | (bodies == highs) for bodies in (uniform, edges)]
    assert at_an_end[0].sum() == 0
    # About EDGE_PROBABILITY of each parameter's draws, either end alike.
    share = at_an_end[1].mean(axis=0)
    assert np.all(np.abs(share - EDGE_PROBABILITY) < 0.1), share
    assert 0.3 < (edges == lows).sum() / at_an_end[1].sum() < 0.7
    corners = at_an_end[1].all(axis=1).mean()
    assert corners == pytest.approx(EDGE_PROBABILITY ** len(BOX), abs=0.06)
    # Inside, still spread over the range, and every body inside the box.
    assert np.all((edges >= lows) & (edges <= highs))
    inside = edges[:, 0][~at_an_end[1][:, 0]]
    assert inside.min() < 25 and inside.max() > 45


def test_the_edge_draw_is_seeded():
    assert np.array_equal(drawn_bodies("edges", 7, 20), drawn_bodies("edges", 7, 20))
    assert not np.array_equal(drawn_bodies("edges", 7, 20), drawn_bodies("edges", 8, 20))


def test_the_edge_draw_keeps_every_body_standing():
    walker = make_walker(design_ranges={"thigh_length": (8.5, 40.0), "shin_length": (8.5, 59.5)},
                         design_draw="edges").unwrapped
    for seed in range(30):
        walker.reset(seed=seed)
        assert walker.design.stands


def test_a_design_draw_without_a_range_or_of_another_kind_is_refused(tmp_path, capsys):
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, "--design_draw=edges")) == 2
    assert "--design_draw: draws the design flags given as ranges" in capsys.readouterr().err
    assert cli_in_process(tiny_flags(tmp_path, *BUDGET, "--leg_length=24:46",
                                     "--design_draw=corners")) == 2
    line = only_line(capsys.readouterr().err)
    assert line.startswith("run.py: error: --design_draw: must be one of uniform, edges"), line

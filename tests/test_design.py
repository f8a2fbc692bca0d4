"""The walker's design space: thigh, shin, leg width and motor torque as arguments; design ranges
redrawn at every reset and observed by the policy; the validation of both."""

from __future__ import annotations

import itertools
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.bipedal_walker import LEG_W, MOTORS_TORQUE, SCALE, TERRAIN_HEIGHT
from gymnasium.utils.env_checker import check_env
from scipy import stats
from test_envs import (
    GYMNASIUM_ARGS,
    assert_same_rollouts,
    assert_starts_standing,
    lowest_leg_point,
    make_walker,
    random_policy,
    rollout,
    segment_size,
)

from envs import DESIGN_PARAMETERS, InvalidWalkerArgument, WalkerDesign
from envs.design import MAX_SHIN_TO_THIGH

BASE_OBSERVATION_SIZE = 24
DEFAULT_DESIGN = dict(thigh_length=34, shin_length=34, leg_width=8, motor_torque=80)
"""Gymnasium's walker, spelled out."""


def unit_scaled(value: float, low: float, high: float) -> float:
    """What the walker should observe for `value` of a parameter whose input range is [low, high];
    computed here rather than by the walker's own helper, so that the test can disagree with it."""
    return (value - low) / (high - low) * 2 - 1


def designs_over_resets(env: gym.Env, seed: int, resets: int) -> list[WalkerDesign]:
    """The design drawn at each of `resets` resets, the first seeded."""
    designs = []
    for i in range(resets):
        env.reset(seed=seed if i == 0 else None)
        designs.append(env.unwrapped.design)
    return designs


# --- Each parameter sets what it should and changes the physics ------------------------------


@pytest.mark.parametrize("thigh, shin", [(20, 34), (34, 60), (60, 40), (25, 50)])
def test_segment_lengths_set_bodies_joints_and_start_height(thigh, shin):
    default = make_walker().unwrapped
    walker = make_walker(thigh_length=thigh, shin_length=shin).unwrapped
    default.reset(seed=0)
    walker.reset(seed=0)
    assert (walker.design.thigh_length, walker.design.shin_length) == (thigh, shin)
    for upper, lower in (walker.legs[0:2], walker.legs[2:4]):
        assert np.allclose(segment_size(upper), (LEG_W, thigh / SCALE), rtol=1e-5)
        assert np.allclose(segment_size(lower), (0.8 * LEG_W, shin / SCALE), rtol=1e-5)
    for hip, knee in (walker.joints[0:2], walker.joints[2:4]):
        assert np.allclose(tuple(hip.GetLocalAnchorB()), (0, thigh / SCALE / 2), atol=1e-6)
        assert np.allclose(tuple(knee.GetLocalAnchorA()), (0, -thigh / SCALE / 2), atol=1e-6)
        assert np.allclose(tuple(knee.GetLocalAnchorB()), (0, shin / SCALE / 2), atol=1e-6)
    # The hull starts higher or lower by the change in leg length, feet on the ground.
    rise = walker.hull.position.y - default.hull.position.y
    assert rise == pytest.approx((thigh + shin - 68) / SCALE, abs=0.05)
    assert 0 <= lowest_leg_point(walker) - TERRAIN_HEIGHT < 0.05


@pytest.mark.parametrize("width", [2, 14, 20])
def test_leg_width_sets_segment_widths_and_masses(width):
    walker = make_walker(leg_width=width).unwrapped
    walker.reset(seed=0)
    height = 34 / SCALE
    for upper, lower in (walker.legs[0:2], walker.legs[2:4]):
        assert np.allclose(segment_size(upper), (width / SCALE, height), rtol=1e-5)
        assert np.allclose(segment_size(lower), (0.8 * width / SCALE, height), rtol=1e-5)
        # Density is fixed: a wider leg is proportionally heavier.
        assert upper.mass == pytest.approx(width / SCALE * height, rel=1e-5)
        assert lower.mass == pytest.approx(0.8 * width / SCALE * height, rel=1e-5)


@pytest.mark.parametrize("torque", [20, 80, 200])
def test_motor_torque_caps_the_joints_and_prices_the_energy(torque):
    """Each joint's torque limit is `motor_torque` x |action| (clipped at 1), and the step's
    reward is the progress shaping less 0.00035 x torque per unit of |action|."""
    env = make_walker(motor_torque=torque)
    env.reset(seed=0)
    walker = env.unwrapped
    action = np.array([1.0, -0.5, 0.25, -2.0], dtype=np.float32)
    shaping_before = walker.prev_shaping
    _, reward, *_ = env.step(action)
    fractions = [1.0, 0.5, 0.25, 1.0]
    assert [joint.GetMaxMotorTorque() for joint in walker.joints] == pytest.approx(
        [torque * f for f in fractions])
    energy_cost = (walker.prev_shaping - shaping_before) - reward
    assert energy_cost == pytest.approx(0.00035 * torque * sum(fractions), abs=1e-5)


@pytest.mark.parametrize("change", [
    dict(thigh_length=24), dict(shin_length=48), dict(leg_width=14), dict(motor_torque=150),
], ids=lambda change: next(iter(change)))
def test_each_design_parameter_changes_the_physics(change):
    """Same seed, same actions, same course: only the body differs, and so does the episode."""
    default_env, changed_env = make_walker(), make_walker(**change)
    default = rollout(default_env, 5, random_policy(5), 80)
    changed = rollout(changed_env, 5, random_policy(5), 80)
    assert default_env.unwrapped.terrain_y == changed_env.unwrapped.terrain_y
    steps = min(len(default), len(changed))
    assert steps > 20, "both walkers should last a while under random actions"
    moved_apart = [not np.array_equal(default[t][0][:14], changed[t][0][:14])
                   for t in range(1, steps)]
    assert all(moved_apart), "the body's state should differ at every step"
    assert [s[1] for s in default[1:steps]] != pytest.approx([s[1] for s in changed[1:steps]])
    if "motor_torque" in change:
        # A motor does nothing until it is driven: the walkers start alike.
        assert np.array_equal(default[0][0], changed[0][0])


def test_explicit_defaults_are_the_default_walker_bit_for_bit():
    for seed in (0, 2):
        assert_same_rollouts(rollout(make_walker(**DEFAULT_DESIGN), seed, random_policy(seed), 400),
                             rollout(make_walker(), seed, random_policy(seed), 400))


def test_explicit_defaults_are_gymnasium_bit_for_bit():
    reference = rollout(gym.make("BipedalWalker-v3"), 1, random_policy(1), 300)
    ours = rollout(make_walker(**GYMNASIUM_ARGS, **DEFAULT_DESIGN), 1, random_policy(1), 300)
    assert_same_rollouts(ours, reference)


def test_design_attributes_describe_the_body():
    walker = make_walker(leg_length=40, shin_length=50, leg_width=12, motor_torque=100).unwrapped
    design = walker.design
    assert (design.thigh_length, design.shin_length) == (40, 50)  # the thigh follows leg_length
    assert (design.leg_width, design.motor_torque) == (12, 100)
    assert walker.leg_length == 45  # the body's: the mean of its segments, not the flag
    assert walker.parameters["shin_length"] == 50
    assert walker.design_observation.shape == (0,)


# --- Every corner of the supported box starts standing ---------------------------------------


def supported_corners() -> list[dict[str, float]]:
    """The vertices of the supported symmetric box cut by shin <= MAX_SHIN_TO_THIGH x thigh,
    times the extremes of width and torque."""
    low, high = DESIGN_PARAMETERS["thigh_length"]
    assert DESIGN_PARAMETERS["shin_length"] == (low, high)
    segments = [(low, low), (low, MAX_SHIN_TO_THIGH * low), (high / MAX_SHIN_TO_THIGH, high),
                (high, high), (high, low)]
    return [dict(thigh_length=thigh, shin_length=shin, leg_width=width, motor_torque=torque)
            for (thigh, shin), width, torque in itertools.product(
                segments, DESIGN_PARAMETERS["leg_width"], DESIGN_PARAMETERS["motor_torque"])]


@pytest.mark.parametrize("design", supported_corners(),
                         ids=lambda d: "-".join(f"{v:g}" for v in d.values()))
def test_every_corner_of_the_design_space_starts_standing(design):
    longest_segment = max(design["thigh_length"], design["shin_length"])
    # Measured: under 10 with the thinnest legs (width 2), the second foot touches the pad one
    # idle step after the reset rather than at it; the walker stands all the same.
    idle_steps = 1 if min(design["thigh_length"], design["shin_length"]) < 10 else 0
    assert_starts_standing(make_walker(**design), longest_segment, idle_steps)


# --- Bad values --------------------------------------------------------------------------------


def bad_values(name: str) -> list:
    low, high = DESIGN_PARAMETERS[name]
    return [low - 0.5, high + 0.5, -high, math.nan, math.inf, -math.inf, "34"]


@pytest.mark.parametrize("name, value", [
    (name, value) for name in DESIGN_PARAMETERS for value in bad_values(name)
])
def test_bad_design_values_raise_naming_the_argument(name, value):
    low, high = DESIGN_PARAMETERS[name]
    with pytest.raises(ValueError, match=rf"^{name} must be a number in \[{low:g}, {high:g}\]"
                       ) as raised:
        make_walker(**{name: value})
    assert raised.value.argument == name


@pytest.mark.parametrize("name", list(DESIGN_PARAMETERS))
def test_the_ends_of_each_supported_range_are_accepted(name):
    low, high = DESIGN_PARAMETERS[name]
    for value in (low, high):
        # Equal segments keep the proportions valid at either end of a segment's range.
        segments = {"leg_length": value} if name.endswith(("thigh_length", "shin_length")) \
            else {}
        assert make_walker(**{**segments, name: value}).unwrapped.parameters[name] == value


@pytest.mark.parametrize("kwargs, thigh, shin", [
    (dict(thigh_length=10, shin_length=21), 10, 21),
    (dict(thigh_length=30, shin_length=70), 30, 70),
    (dict(leg_length=12, shin_length=25), 12, 25),  # the thigh follows leg_length
    (dict(leg_length=60, thigh_length=25), 25, 60),  # the shin follows leg_length
], ids=str)
def test_shin_longer_than_twice_the_thigh_is_refused(kwargs, thigh, shin):
    with pytest.raises(ValueError, match=rf"^shin_length must be at most 2 x thigh_length "
                       rf"\({thigh:g}\) so the walker starts standing, got {shin:g}(\.0)?$"):
        make_walker(**kwargs)


@pytest.mark.parametrize("kwargs, thigh, shin", [
    # Ranges where no body stands: even the longest thigh under the shortest shin does not.
    (dict(design_ranges={"thigh_length": (10, 15)}), 15, 34),
    (dict(thigh_length=12, design_ranges={"shin_length": (25, 41)}), 12, 25),
    (dict(design_ranges={"thigh_length": (10, 14), "shin_length": (30, 45)}), 14, 30),
    (dict(shin_length=50, design_ranges={"leg_length": (14, 20)}), 20, 50),
], ids=str)
def test_ranges_where_no_body_stands_are_refused(kwargs, thigh, shin):
    with pytest.raises(ValueError, match=rf"^shin_length must be at most 2 x thigh_length "
                       rf"\({thigh:g}\) for some drawn body, .* got {shin:g}(\.0)?$"):
        make_walker(**kwargs)


def test_a_leg_length_range_that_cannot_change_the_body_is_refused():
    with pytest.raises(ValueError, match=r"^leg_length must be a single value when "
                       r"thigh_length and shin_length are both given"):
        make_walker(thigh_length=30, shin_length=30, design_ranges={"leg_length": (24, 46)})


@pytest.mark.parametrize("kwargs", [
    dict(thigh_length=10, shin_length=20),
    dict(thigh_length=20, design_ranges={"shin_length": (20, 40)}),
    dict(design_ranges={"thigh_length": (20, 40), "shin_length": (30, 40)}),
    dict(design_ranges={"leg_length": (10, 70)}),  # equal segments, whatever the draw
    # Ranges whose corners hold bodies that would not stand: only standing ones are drawn.
    dict(design_ranges={"thigh_length": (15, 40)}),
    dict(design_ranges={"thigh_length": (10, 70), "shin_length": (10, 70)}),
    dict(thigh_length=20, design_ranges={"leg_length": (30, 50)}),
], ids=str)
def test_shin_up_to_twice_the_thigh_is_accepted(kwargs):
    walker = make_walker(**kwargs)
    for seed in range(20):
        obs, _ = walker.reset(seed=seed)
        assert walker.unwrapped.design.stands
        assert obs[8] == 1.0 and obs[13] == 1.0


@pytest.mark.parametrize("argument", ["design_ranges", "design_inputs"])
@pytest.mark.parametrize("ranges, message", [
    ({"leg_length": (40, 30)}, r"^leg_length must be a range LOW:HIGH with LOW <= HIGH, got 40:30"),
    ({"leg_length": (5, 30)}, r"^leg_length must be a number in \[8.5, 70\], got 5"),
    ({"motor_torque": (50, 250)}, r"^motor_torque must be a number in \[20, 200\], got 250"),
    ({"leg_width": (math.nan, 10)}, r"^leg_width must be a number in \[2, 20\], got nan"),
    ({"thigh_length": (20, math.inf)}, r"^thigh_length must be a number in \[8.5, 70\]"),
    ({"shin_length": (20,)}, r"^shin_length must be a \(low, high\) range"),
    ({"shin_length": 30}, r"^shin_length must be a \(low, high\) range"),
    ({"hull_width": (1, 2)}, r"^{argument} must be keyed by design parameters .*got hull_width"),
])
def test_bad_design_ranges_raise_naming_the_parameter(argument, ranges, message):
    with pytest.raises(InvalidWalkerArgument, match=message.format(argument=argument)):
        make_walker(**{argument: ranges})


# --- Design ranges -----------------------------------------------------------------------------

RANGES = {"thigh_length": (30, 40), "shin_length": (20, 60), "leg_width": (4, 16),
          "motor_torque": (50, 150)}


def test_ranged_designs_are_seeded():
    first, second = make_walker(design_ranges=RANGES), make_walker(design_ranges=RANGES)
    assert designs_over_resets(first, 3, 5) == designs_over_resets(second, 3, 5)
    # Rollouts replay too, including the redrawn bodies of later episodes.
    for env in (first, second):
        env.reset(seed=11)
    later = [rollout(env, None, random_policy(4), 100) for env in (first, second)]
    assert_same_rollouts(*later)
    # ...and the seed matters.
    assert designs_over_resets(first, 3, 5) != designs_over_resets(second, 4, 5)


def test_each_reset_draws_a_new_design_inside_its_ranges_covering_them():
    env = make_walker(design_ranges=RANGES, terrain_length_scale=1)
    designs = designs_over_resets(env, 0, 200)
    assert len(set(designs)) == len(designs), "every reset should draw a new body"
    for name, (low, high) in RANGES.items():
        values = np.array([getattr(design, name) for design in designs])
        assert low <= values.min() < low + 0.03 * (high - low), name
        assert high - 0.03 * (high - low) < values.max() <= high, name
        # Uniform: the draws pass a Kolmogorov-Smirnov test (deterministic: the draws are seeded).
        assert stats.kstest(values, stats.uniform(low, high - low).cdf).pvalue > 0.01, name
    # Each parameter is drawn on its own, not one draw scaled into every range.
    thighs = np.array([design.thigh_length for design in designs])
    torques = np.array([design.motor_torque for design in designs])
    assert abs(np.corrcoef(thighs, torques)[0, 1]) < 0.2


def test_ranged_leg_length_draws_both_segments():
    env = make_walker(design_ranges={"leg_length": (24, 46)})
    for design in designs_over_resets(env, 0, 10):
        assert design.thigh_length == design.shin_length
        assert 24 <= design.thigh_length <= 46
    walker = env.unwrapped
    assert walker.leg_length == walker.design.thigh_length
    assert np.allclose(segment_size(walker.legs[0])[1], walker.leg_length / SCALE, rtol=1e-5)


def test_the_drawn_body_is_the_one_simulated():
    env = make_walker(design_ranges=RANGES)
    for seed in (0, 1, 2):
        env.reset(seed=seed)
        walker = env.unwrapped
        design = walker.design
        assert np.allclose(segment_size(walker.legs[0]),
                           (design.leg_width / SCALE, design.thigh_length / SCALE), rtol=1e-5)
        assert np.allclose(segment_size(walker.legs[1]),
                           (0.8 * design.leg_width / SCALE, design.shin_length / SCALE), rtol=1e-5)
        assert 0 <= lowest_leg_point(walker) - TERRAIN_HEIGHT < 0.05
        env.step(np.ones(4, dtype=np.float32))
        assert walker.joints[0].GetMaxMotorTorque() == pytest.approx(design.motor_torque)


def test_observation_carries_the_drawn_design_in_parameter_order():
    # Given out of order: the observation follows DESIGN_PARAMETERS' order all the same.
    ranges = {"motor_torque": (50, 150), "leg_width": (4, 16), "thigh_length": (30, 40)}
    env = make_walker(design_ranges=ranges)
    assert env.observation_space.shape == (BASE_OBSERVATION_SIZE + 3,)
    tails = []
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        design = env.unwrapped.design
        expected = [unit_scaled(design.thigh_length, 30, 40),
                    unit_scaled(design.leg_width, 4, 16),
                    unit_scaled(design.motor_torque, 50, 150)]
        assert obs.shape == (BASE_OBSERVATION_SIZE + 3,)
        assert obs[BASE_OBSERVATION_SIZE:] == pytest.approx(expected, rel=1e-5, abs=1e-6)
        assert np.all(np.abs(obs[BASE_OBSERVATION_SIZE:]) <= 1)
        # The design stays in every step's observation, unchanged within the episode.
        for _ in range(3):
            step_obs, *_ = env.step(env.action_space.sample())
            assert np.array_equal(step_obs[BASE_OBSERVATION_SIZE:], obs[BASE_OBSERVATION_SIZE:])
        tails.append(tuple(obs[BASE_OBSERVATION_SIZE:]))
    assert len(set(tails)) == len(tails), "another body should be another observation"


def test_design_inputs_feed_a_fixed_design_scaled_by_their_range():
    tails = {}
    for leg_length in (24, 30, 46, 60):
        env = make_walker(leg_length=leg_length, design_inputs={"leg_length": (24, 46)})
        obs, _ = env.reset(seed=0)
        assert obs.shape == (BASE_OBSERVATION_SIZE + 1,)
        assert obs[-1] == pytest.approx(unit_scaled(leg_length, 24, 46), rel=1e-6)
        # Outside the input range the value extrapolates, and the space still contains it.
        assert env.observation_space.contains(obs)
        tails[leg_length] = obs[-1]
    assert tails[24] == -1 and tails[46] == 1 and tails[60] > 1


def test_design_inputs_leave_the_physics_alone():
    """Observing a fixed design appends to the observation; the body's 24 entries, the rewards
    and the flags are those of the walker that does not observe it, bit for bit."""
    plain = rollout(make_walker(leg_length=30), 2, random_policy(2), 200)
    informed = rollout(make_walker(leg_length=30, design_inputs={"leg_length": (24, 46),
                                                                 "motor_torque": (20, 200)}),
                       2, random_policy(2), 200)
    assert_same_rollouts(plain, [(s[0][:BASE_OBSERVATION_SIZE], *s[1:]) for s in informed])
    assert informed[0][0][-1] == pytest.approx(unit_scaled(80, 20, 200))


def test_design_inputs_can_rescale_or_hide_a_ranged_design():
    rescaled = make_walker(design_ranges={"leg_length": (30, 40)},
                           design_inputs={"leg_length": (24, 46)})
    obs, _ = rescaled.reset(seed=0)
    assert obs[-1] == pytest.approx(unit_scaled(rescaled.unwrapped.leg_length, 24, 46), rel=1e-6)
    hidden = make_walker(design_ranges={"leg_length": (30, 40)}, design_inputs={})
    obs, _ = hidden.reset(seed=0)
    assert obs.shape == hidden.observation_space.shape == (BASE_OBSERVATION_SIZE,)
    assert 30 <= hidden.unwrapped.leg_length <= 40 and hidden.unwrapped.leg_length != 34


def test_no_ranges_no_design_in_the_observation():
    env = make_walker(thigh_length=25, shin_length=45, leg_width=12, motor_torque=120)
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (BASE_OBSERVATION_SIZE,)


def test_observation_space_bounds_every_supported_design():
    """The design entries' bounds are the supported range scaled like the observation."""
    env = make_walker(design_ranges={"leg_length": (24, 46), "motor_torque": (50, 150)})
    space = env.observation_space
    assert space.low[-2:] == pytest.approx([unit_scaled(8.5, 24, 46), unit_scaled(20, 50, 150)])
    assert space.high[-2:] == pytest.approx([unit_scaled(70, 24, 46), unit_scaled(200, 50, 150)])
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert space.contains(obs)
        for _ in range(20):
            obs, *_ = env.step(env.action_space.sample())
            assert space.contains(obs)


def test_ranged_walker_passes_gymnasium_env_checker():
    check_env(make_walker(design_ranges=RANGES).unwrapped, skip_render_check=True)


def test_pickling_keeps_the_design_arguments():
    kwargs = dict(leg_length=30, thigh_length=26, shin_length=44, leg_width=11.5,
                  motor_torque=140, design_inputs={"leg_length": (24, 46)})
    copy = pickle.loads(pickle.dumps(make_walker(**kwargs).unwrapped))
    assert copy.design == WalkerDesign.from_parameters(
        {"thigh_length": 26, "shin_length": 44, "leg_width": 11.5, "motor_torque": 140})
    assert (copy.design.left_shin_length, copy.design.right_shin_width) == (44, 0.8 * 11.5)
    assert copy.parameters["leg_length"] == 30 and copy.leg_length == 35  # the mean segment
    assert copy.design_inputs == {"leg_length": (24, 46)}
    assert copy.observation_space.shape == (BASE_OBSERVATION_SIZE + 1,)

    ranged = make_walker(design_ranges=RANGES, motor_torque=MOTORS_TORQUE).unwrapped
    copy = pickle.loads(pickle.dumps(ranged))
    assert copy.design_ranges == copy.design_inputs == RANGES
    assert designs_over_resets(copy, 5, 3) == designs_over_resets(ranged, 5, 3)

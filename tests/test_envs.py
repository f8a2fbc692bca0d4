"""The walker `Bipedal_Custom_Leg_Length-v0`: fidelity to Gymnasium, arguments, rendering."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.box2d.bipedal_walker import (
    LEG_W,
    SCALE,
    TERRAIN_GRASS,
    TERRAIN_HEIGHT,
    TERRAIN_LENGTH,
    TERRAIN_STEP,
    VIEWPORT_H,
    VIEWPORT_W,
    BipedalWalkerHeuristics,
)
from gymnasium.utils.env_checker import check_env

import envs
from envs import ENV_ID, LEG_LENGTH_RANGE

Policy = Callable[[np.ndarray], np.ndarray]

# The arguments under which our walker must be Gymnasium's BipedalWalker-v3, bit for bit.
GYMNASIUM_ARGS = dict(leg_length=34, **envs.GYMNASIUM_COURSE)
"""Gymnasium's own course (envs.GYMNASIUM_COURSE): the tests below hold it to Gymnasium's."""
HULL_COLOUR = (127, 51, 229)  # the hull's fill colour in rendered frames


def make_walker(**kwargs) -> gym.Env:
    return gym.make(ENV_ID, **kwargs)


def random_policy(seed: int) -> Policy:
    """Uniform float32 actions from their own generator, so both envs see the same sequence."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1, 1, 4).astype(np.float32)


def heuristic_policy() -> Policy:
    """Gymnasium's scripted walker (float64 actions); it keeps a gait state, so one per episode."""
    heuristics = BipedalWalkerHeuristics()
    # Copy: the controller mutates the array it returned last time on its next call.
    return lambda obs: heuristics.step_heuristic(obs).copy()


def zero_policy(obs: np.ndarray) -> np.ndarray:
    return np.zeros(4, dtype=np.float32)


def rollout(env: gym.Env, seed: int, policy: Policy, max_steps: int) -> list[tuple]:
    """(observation, reward, terminated, truncated) per step, the reset observation first."""
    obs, _ = env.reset(seed=seed)
    steps = [(obs, 0.0, False, False)]
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        steps.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            break
    return steps


def assert_same_rollouts(a: list[tuple], b: list[tuple]) -> None:
    assert len(a) == len(b)
    for t, (step_a, step_b) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(step_a[0], step_b[0]), f"observations differ at step {t}"
        assert step_a[1:] == step_b[1:], f"reward or flags differ at step {t}"


def lowest_leg_point(walker) -> float:
    """World y of the lowest vertex of any leg segment."""
    return min(
        (leg.transform * vertex)[1]
        for leg in walker.legs
        for vertex in leg.fixtures[0].shape.vertices
    )


def segment_size(body) -> tuple[float, float]:
    """(width, height) of a leg segment's box fixture, in world units."""
    vertices = np.array(body.fixtures[0].shape.vertices)
    return tuple(vertices.max(axis=0) - vertices.min(axis=0))


# --- Fidelity --------------------------------------------------------------------------------

FIDELITY_CASES = [
    # (seed, policy factory, step limit, how the episode must end)
    pytest.param(0, lambda: random_policy(0), 1600, "fall", id="random-seed0-falls"),
    pytest.param(1, lambda: random_policy(1), 1600, "fall", id="random-seed1-falls"),
    pytest.param(3, lambda: random_policy(3), 1600, "fall", id="random-seed3-falls"),
    pytest.param(0, lambda: zero_policy, 1600, "fall", id="idle-seed0-collapses"),
    pytest.param(2, lambda: random_policy(2), 1600, "timeout", id="random-seed2-times-out"),
    pytest.param(6, heuristic_policy, 1600, "finish", id="heuristic-seed6-finishes"),
    pytest.param(0, heuristic_policy, 3000, "finish", id="heuristic-seed0-finishes-in-3000"),
]


@pytest.mark.parametrize("seed, make_policy, limit, ending", FIDELITY_CASES)
def test_reproduces_gymnasium_bipedal_walker_exactly(seed, make_policy, limit, ending):
    """Same seed and actions: equal observations, rewards and flags, step for step, to the end."""
    reference = gym.make("BipedalWalker-v3", max_episode_steps=limit)
    ours = make_walker(**{**GYMNASIUM_ARGS, "max_time_steps": limit})
    policy = make_policy()

    ref_obs, _ = reference.reset(seed=seed)
    our_obs, _ = ours.reset(seed=seed)
    assert np.array_equal(our_obs, ref_obs), "reset observations differ"
    episode_return, steps = 0.0, 0
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy(ref_obs)
        ref_obs, ref_reward, ref_terminated, ref_truncated, _ = reference.step(action)
        our_obs, reward, terminated, truncated, _ = ours.step(action)
        steps += 1
        assert np.array_equal(our_obs, ref_obs), f"observations differ at step {steps}"
        assert reward == ref_reward, f"rewards differ at step {steps}"
        assert (terminated, truncated) == (ref_terminated, ref_truncated), f"step {steps}"
        episode_return += reward

    # The episode ended the way the case claims, so each kind of ending is really covered.
    walker = ours.unwrapped
    if ending == "fall":
        assert terminated and not truncated and walker.game_over and reward == -100
    elif ending == "timeout":
        assert truncated and not terminated and steps == limit and not walker.game_over
    else:
        finish_x = (TERRAIN_LENGTH - TERRAIN_GRASS) * TERRAIN_STEP
        assert terminated and not truncated and not walker.game_over
        assert walker.hull.position.x > finish_x
        assert episode_return > 300


def test_the_gymnasium_course_is_gymnasium_s():
    assert envs.GYMNASIUM_COURSE["max_time_steps"] == gym.spec("BipedalWalker-v3").max_episode_steps
    walker = make_walker(**GYMNASIUM_ARGS).unwrapped
    assert walker.num_terrain_steps == TERRAIN_LENGTH


def test_passes_gymnasium_env_checker():
    check_env(make_walker(leg_length=30, terrain_length_scale=2).unwrapped, skip_render_check=True)


def test_import_registers_walker_with_issue_defaults():
    assert ENV_ID == "Bipedal_Custom_Leg_Length-v0" and ENV_ID in gym.registry
    walker = make_walker().unwrapped
    assert isinstance(walker, envs.BipedalCustomLegLength)
    assert (walker.leg_length, walker.terrain_length_scale) == (34, 2)
    assert (walker.fall_penalty, walker.max_time_steps) == (-50, 1500)
    assert walker.observation_space.shape == (24,) and walker.action_space.shape == (4,)


def test_same_seed_gives_identical_rollouts():
    kwargs = dict(leg_length=30, terrain_length_scale=2)
    first = rollout(make_walker(**kwargs), 7, random_policy(7), 200)
    second = rollout(make_walker(**kwargs), 7, random_policy(7), 200)
    assert_same_rollouts(first, second)
    # Resetting the same instance with the seed again replays it too.
    env = make_walker(**kwargs)
    rollout(env, 3, random_policy(3), 50)
    assert_same_rollouts(rollout(env, 7, random_policy(7), 200), first)
    # ...and the seed matters: another seed gives another course.
    terrain_7 = list(env.unwrapped.terrain_y)
    env.reset(seed=8)
    assert env.unwrapped.terrain_y != terrain_7


def test_pickling_keeps_the_arguments():
    kwargs = dict(leg_length=22, terrain_length_scale=0.7, fall_penalty=-3.0, max_time_steps=77)
    copy = pickle.loads(pickle.dumps(make_walker(**kwargs).unwrapped))
    assert {name: getattr(copy, name) for name in kwargs} == kwargs


# --- Each argument changes something ---------------------------------------------------------


def test_leg_length_sets_leg_bodies_joints_and_start_height():
    short, long = make_walker(leg_length=20).unwrapped, make_walker(leg_length=50).unwrapped
    start_heights = {}
    for walker, leg_length in ((short, 20), (long, 50)):
        walker.reset(seed=0)
        height = leg_length / SCALE
        for thigh, shin in (walker.legs[0:2], walker.legs[2:4]):
            assert np.allclose(segment_size(thigh), (LEG_W, height), rtol=1e-5)
            assert np.allclose(segment_size(shin), (0.8 * LEG_W, height), rtol=1e-5)
        hip, knee = walker.joints[0], walker.joints[1]
        assert np.allclose(tuple(hip.GetLocalAnchorB()), (0, height / 2), atol=1e-6)
        assert np.allclose(tuple(knee.GetLocalAnchorA()), (0, -height / 2), atol=1e-6)
        assert np.allclose(tuple(knee.GetLocalAnchorB()), (0, height / 2), atol=1e-6)
        start_heights[leg_length] = walker.hull.position.y
    # Two segments per leg: the hull starts 2 * (50 - 20) drawing units higher.
    assert start_heights[50] - start_heights[20] == pytest.approx(2 * 30 / SCALE, abs=0.15)


@pytest.mark.parametrize("leg_length", [15, 34, 60])
def test_walker_starts_standing_on_the_start_pad(leg_length):
    """Not dropped from the sky, not buried: feet on the ground, hull clear of it."""
    assert_starts_standing(make_walker(leg_length=leg_length), longest_segment=leg_length)


def assert_starts_standing(env, longest_segment: float, idle_steps: int = 0) -> None:
    """For seeds 0 and 1: both feet on the start pad (after `idle_steps` steps without torque),
    the hull above the longest segment."""
    for seed in (0, 1):
        obs, _ = env.reset(seed=seed)
        for _ in range(idle_steps):
            obs, *_ = env.step(np.zeros(4, dtype=np.float32))
        walker = env.unwrapped
        assert not walker.game_over
        assert obs[8] == 1.0 and obs[13] == 1.0, "both feet should touch the ground"
        # Box2D keeps shapes about 0.02 apart when touching; the start pad is at TERRAIN_HEIGHT.
        assert 0 <= lowest_leg_point(walker) - TERRAIN_HEIGHT < 0.05
        hull = walker.hull
        hull_bottom = min((hull.transform * v)[1] for v in hull.fixtures[0].shape.vertices)
        assert hull_bottom > TERRAIN_HEIGHT + longest_segment / SCALE


def test_terrain_length_scale_sets_course_length_and_finish_line():
    courses = {}
    for scale in (0.5, 1, 2):
        walker = make_walker(terrain_length_scale=scale).unwrapped
        walker.reset(seed=0)
        num_steps = round(TERRAIN_LENGTH * scale)
        assert len(walker.terrain_x) == len(walker.terrain_y) == num_steps
        assert walker.finish_x == pytest.approx((num_steps - TERRAIN_GRASS) * TERRAIN_STEP)
        courses[scale] = walker.finish_x
    assert courses[0.5] < courses[1] < courses[2]

    # The finish really moved: the scripted walker ends a half course at its finish line.
    env = make_walker(terrain_length_scale=0.5)
    steps = rollout(env, 2, heuristic_policy(), 1500)
    walker = env.unwrapped
    assert steps[-1][2] and not steps[-1][3] and not walker.game_over
    assert courses[0.5] < walker.hull.position.x < courses[1]


def test_fall_penalty_is_the_reward_on_a_fall():
    """Same course and actions: the rewards differ only on the falling step, by the penalty."""
    episodes = {}
    for penalty in (-50, -7):
        env = make_walker(fall_penalty=penalty)
        episodes[penalty] = rollout(env, 0, random_policy(0), 500)
        last = episodes[penalty][-1]
        assert last[2] and env.unwrapped.game_over, "the random walker should have fallen"
        assert last[1] == penalty
    rewards = {penalty: [step[1] for step in steps] for penalty, steps in episodes.items()}
    assert rewards[-50][:-1] == rewards[-7][:-1]


def test_max_time_steps_truncates_exactly_then():
    env = make_walker(max_time_steps=30)
    for _ in range(2):  # a second episode counts from zero again
        env.reset(seed=0)
        for step in range(1, 31):
            _, _, terminated, truncated, _ = env.step(np.zeros(4, dtype=np.float32))
            assert not terminated
            assert truncated == (step == 30), f"step {step}"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(leg_length=5), "leg_length"),
        (dict(leg_length=200), "leg_length"),
        (dict(leg_length=math.nan), "leg_length"),
        (dict(leg_length=math.inf), "leg_length"),
        (dict(terrain_length_scale=0), "terrain_length_scale must be a number in"),
        (dict(terrain_length_scale=-1), "terrain_length_scale must be a number in"),
        (dict(terrain_length_scale=math.nan), "terrain_length_scale must be a number in"),
        (dict(terrain_length_scale=1e6), "terrain_length_scale must be a number in"),  # hangs
        (dict(terrain_length_scale=1e308), "terrain_length_scale must be a number in"),
        (dict(fall_penalty=math.nan), "fall_penalty must be a number in"),
        (dict(fall_penalty=1e308), "fall_penalty must be a number in"),  # overflows scaling
        (dict(fall_penalty=-1e7), "fall_penalty must be a number in"),
        (dict(max_time_steps=0), "max_time_steps must be an integer in"),
        (dict(max_time_steps=2.5), "max_time_steps must be an integer in"),
        (dict(max_time_steps=math.inf), "max_time_steps must be an integer in"),
        (dict(max_time_steps=math.nan), "max_time_steps must be an integer in"),
        (dict(max_time_steps=10**30), "max_time_steps must be an integer in"),
    ],
)
def test_invalid_arguments_raise_naming_the_range(kwargs, message):
    if "leg_length" in kwargs:
        low, high = LEG_LENGTH_RANGE
        message = rf"leg_length must be a number in \[{low:g}, {high:g}\]"
    with pytest.raises(ValueError, match=message):
        make_walker(**kwargs)


def test_supported_leg_range_covers_the_issue_minimum():
    low, high = LEG_LENGTH_RANGE
    assert low <= 15 and high >= 60


# --- Rendering -------------------------------------------------------------------------------


@pytest.fixture
def no_display(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")


def hull_pixels(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the pixels painted in the hull's colour."""
    return np.nonzero(np.all(frame == HULL_COLOUR, axis=-1))


def walker_in_view(walker) -> bool:
    """Every vertex of hull and legs lies inside the 600 x 400 window that follows the walker."""
    for body in [walker.hull, *walker.legs]:
        for vertex in body.fixtures[0].shape.vertices:
            x, y = body.transform * vertex
            if not (0 <= (x - walker.scroll) * SCALE < VIEWPORT_W and 0 <= y * SCALE < VIEWPORT_H):
                return False
    return True


@pytest.mark.usefixtures("no_display")
def test_rgb_array_frames_show_the_whole_long_legged_walker():
    hull_pixel_counts = {}
    for leg_length in (34, 60):
        env = make_walker(leg_length=leg_length, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
        assert frame.shape == (VIEWPORT_H, VIEWPORT_W, 3) and frame.dtype == np.uint8
        rows, _ = hull_pixels(frame)
        assert rows.size > 0 and rows.min() > 0, "the hull is cut off at the top"
        assert walker_in_view(env.unwrapped)
        hull_pixel_counts[leg_length] = rows.size
        env.close()
    # All of the hull is drawn for the long legs: as many hull pixels as Gymnasium's walker.
    assert hull_pixel_counts[60] >= 0.95 * hull_pixel_counts[34]


@pytest.mark.usefixtures("no_display")
def test_rgb_array_view_follows_the_walker():
    env = make_walker(render_mode="rgb_array", terrain_length_scale=1)
    obs, _ = env.reset(seed=6)
    first = env.render()
    start_x = env.unwrapped.hull.position.x
    policy = heuristic_policy()
    for _ in range(300):
        obs, *_ = env.step(policy(obs))
    later = env.render()
    walker = env.unwrapped
    assert walker.hull.position.x - start_x > VIEWPORT_W / SCALE / 2, "the walker should walk"
    assert not np.array_equal(first, later)
    _, first_cols = hull_pixels(first)
    _, later_cols = hull_pixels(later)
    assert later_cols.size > 0 and walker_in_view(walker)
    # The view scrolls with the walker: the hull stays at about the same place on screen.
    assert abs(np.median(later_cols) - np.median(first_cols)) < 20
    env.close()


@pytest.mark.usefixtures("no_display")
def test_human_render_opens_a_window():
    import pygame

    env = make_walker(render_mode="human", max_time_steps=3)
    env.reset(seed=0)
    env.step(np.zeros(4, dtype=np.float32))
    screen = pygame.display.get_surface()
    assert screen is not None and screen.get_size() == (VIEWPORT_W, VIEWPORT_H)
    env.close()

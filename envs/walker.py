"""Gymnasium's BipedalWalker whose body is a design (envs/design.py): the length and width of
each leg's thigh and shin, and the motor torque, are parameters, fixed or redrawn at every reset,
and the course length and fall penalty too. This module is the physics; what a design is, and
its checks, live in design.py.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import Box2D
import numpy as np
from Box2D.b2 import contactListener, fixtureDef, polygonShape, revoluteJointDef
from gymnasium import Env, spaces
from gymnasium.envs.box2d.bipedal_walker import (
    FPS,
    HULL_FD,
    INITIAL_RANDOM,
    LEG_DOWN,
    LIDAR_RANGE,
    SCALE,
    SPEED_HIP,
    SPEED_KNEE,
    TERRAIN_GRASS,
    TERRAIN_HEIGHT,
    TERRAIN_LENGTH,
    TERRAIN_STARTPAD,
    TERRAIN_STEP,
    VIEWPORT_H,
    VIEWPORT_W,
    BipedalWalker,
)
from gymnasium.utils import EzPickle

from envs.design import (
    BODY_OBS_DIM,
    COURSE_DEFAULTS,
    DESIGN_DEFAULTS,
    DESIGN_DRAWS,
    DESIGN_PARAMETERS,
    MAX_DRAWS,
    MAX_SHIN_TO_THIGH,
    NUM_LIDAR,
    SIDES,
    WalkerDesign,
    check_walker_arguments,
    draw_value,
    observed_inputs,
    ordered_ranges,
    scale_to_unit,
)

ACT_DIM = 4
LIDAR_ANGLES = [1.5 * i / NUM_LIDAR for i in range(NUM_LIDAR)]
# Ray ends relative to the hull, as Gymnasium computes them (in float64; Box2D rounds the sum).
LIDAR_REACH_X = [math.sin(angle) * LIDAR_RANGE for angle in LIDAR_ANGLES]
LIDAR_REACH_Y = [math.cos(angle) * LIDAR_RANGE for angle in LIDAR_ANGLES]
JOINT_SPEEDS = np.array([SPEED_HIP, SPEED_KNEE, SPEED_HIP, SPEED_KNEE], dtype=np.float32)
TORQUE_COST_PER_TORQUE = 0.00035
"""Reward cost per unit of |action| on each joint, per unit of motor torque: Gymnasium charges
0.00035 * MOTORS_TORQUE, so a stronger motor costs proportionally more energy here."""

HULL_TAG = "hull"
FEET = (1, 3)
"""Indices in `legs` of the lower legs, whose ground contact is observed."""

WALKER_COLOURS = {
    side: ((153 - side * 25, 76 - side * 25, 127 - side * 25),
           (102 - side * 25, 51 - side * 25, 76 - side * 25))
    for side in (-1, +1)
}


class LidarRay(Box2D.b2.rayCastCallback):
    """Remembers the nearest terrain hit along one ray; the walker itself is see-through.

    Gymnasium's lidar callback, but it tells terrain from walker by the fixture's user data (the
    walker's fixtures are tagged, the terrain's are not) instead of reading its filter data:
    one Box2D call per reported fixture instead of two and a copied b2Filter. `render` draws
    each ray from `p1` to `p2` (the hit, or the ray's end).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fraction = 1.0
        self.p1: tuple[float, float] = (0.0, 0.0)
        self.p2: tuple[float, float] = (0.0, 0.0)

    def ReportFixture(self, fixture, point, normal, fraction):  # noqa: N802 (Box2D's name)
        # -1 tells Box2D to ignore this fixture and carry on; returning the fraction clips the
        # ray there, so what remains at the end is the nearest terrain hit.
        if fixture.userData is not None:
            return -1
        self.p2 = point
        self.fraction = fraction
        return fraction


class WalkerContacts(contactListener):
    """Gymnasium's ContactDetector, with the walker's parts told apart by fixture user data.

    Gymnasium compares both bodies of each contact with the hull and the two lower legs; reading
    the tags of the two fixtures (`HULL_TAG`, or the part's index in `env.legs`; the terrain has
    none) sets the same flags with a third of the Box2D calls.
    """

    def __init__(self, env: BipedalCustomLegLength) -> None:
        super().__init__()
        self.env = env

    def BeginContact(self, contact) -> None:  # noqa: N802 (Box2D's name)
        for tag in (contact.fixtureA.userData, contact.fixtureB.userData):
            if tag == HULL_TAG:
                self.env.game_over = True
            elif tag in FEET:
                self.env.legs[tag].ground_contact = True

    def EndContact(self, contact) -> None:  # noqa: N802 (Box2D's name)
        for tag in (contact.fixtureA.userData, contact.fixtureB.userData):
            if tag in FEET:
                self.env.legs[tag].ground_contact = False


class BipedalCustomLegLength(BipedalWalker):
    """
    ## Description
    Gymnasium's 4-joint BipedalWalker (normal terrain, not hardcore) whose body is a design:
    the length and the width of the thigh and of the shin of each leg, and the torque of the
    motors, are constructor arguments, so that walkers of different designs can be trained and
    policies transferred between them. The course length and the fall penalty are parameters
    too, and the time limit is part of the environment (it reports truncation itself).

    Left and right: Gymnasium builds its legs for i in (-1, +1). The left leg is i = -1: the
    first in the observation (hip 1, knee 1, contact 1) and in the action, built first and drawn
    behind the right one (i = +1), which is nearer to the viewer of a walker walking right.

    A design parameter can also be a range (`design_ranges`): the walker then draws a new value
    from its own seeded `np_random` at every reset (uniformly, or with `design_draw="edges"` at
    an end of the range half the time), and (by default) appends the drawn values to the
    observation so that one policy can learn to drive many bodies.

    With the default design, `terrain_length_scale=1, fall_penalty=-100, max_time_steps=1600`
    the environment reproduces Gymnasium's `BipedalWalker-v3` exactly: the same seed and actions
    give the same observations, rewards and flags, step for step.

    What follows the design and what does not:
    - follows: the segments' sizes and masses (density is fixed, so a longer or wider leg is
      heavier), the hip and knee joint anchors, the start height (every design starts standing
      on the start pad with Gymnasium's small clearance under the feet of its longer leg; a
      shorter leg hangs above the pad, from the same hip), the drawing, the
      maximum motor torque, and the torque's energy cost (0.00035 per unit of |action| and of
      torque, Gymnasium's 0.028 at torque 80);
    - stays fixed: the hull (shape, mass, the hip's position under it), the joints' angle
      limits and motor speeds, the lidar's range and angles (a long-legged walker's hull rides
      higher, so fewer rays reach the ground: at leg length 70 six of ten at rest), the
      observation's scaling, the reward for forward progress, and the camera.

    ## Action Space
    `Box(-1, 1, (4,), float32)`: motor torque, as a fraction of the maximum, for the hips and
    knees in the order (hip 1, knee 1, hip 2, knee 2).

    ## Observation Space
    `Box((24 + k,), float32)`. The first 24 are Gymnasium's walker's: hull angle, hull angular
    velocity, hull horizontal and vertical velocity, for each leg the hip angle and speed, knee
    angle and speed and ground contact of the foot, then 10 lidar distances (as fractions of
    the lidar range). Then one entry per design input (`design_inputs`, in the order of
    `DESIGN_PARAMETERS`): the parameter's current value scaled from its input range to [-1, 1]
    (values outside the range extrapolate linearly). With no design inputs (the default for a
    fixed design) k is 0 and the body is *not* observed: a policy has to infer the body it
    drives from the dynamics, which is what makes transfer between designs a real problem.

    ## Rewards
    Moving forward earns 130 per world unit over SCALE (about 300 over the standard course,
    twice that over a course of `terrain_length_scale=2`); tilting the hull costs 5 per radian
    of change; applying torque costs 0.028 per unit of |action| per joint. Falling
    (the hull touches the ground) or leaving the course to the left gives `fall_penalty`
    instead of that step's reward.

    ## Starting State
    The walker stands at the left end of the course, on a flat start pad, with both legs
    together and a slight knee bend; a small random horizontal push is applied to the hull.

    ## Episode Termination
    Terminated when the walker falls, leaves the course to the left, or passes the finish
    (the far end of the course, less a short stretch of grass). Truncated after
    `max_time_steps` steps.

    ## Arguments
    Design (supported ranges in `DESIGN_PARAMETERS`; a value outside, NaN or infinite is a
    `ValueError` naming the argument and the range):
    - `leg_length` (34): length of both leg segments, in drawing units (1/SCALE world units),
      unless `thigh_length` or `shin_length` says otherwise; range [8.5, 70].
    - `thigh_length`, `shin_length` (None: `leg_length`): length of the upper and of the
      lower segment of both legs; range [8.5, 70]; each shin at most twice its thigh.
    - `leg_width` (8, Gymnasium's LEG_W): width of both thighs; the shins are 0.8 of it; [2, 20].
    - `motor_torque` (80, Gymnasium's MOTORS_TORQUE): maximum torque of hip and knee motors;
      range [20, 200].
    - `left_thigh_length`, `right_thigh_length`, `left_shin_length`, `right_shin_length` (None:
      `thigh_length`, `shin_length`) and `left_thigh_width`, `right_thigh_width` (None:
      `leg_width`), `left_shin_width`, `right_shin_width` (None: 0.8 x `leg_width`): one leg's
      own segment; lengths in [8.5, 70], thigh widths [2, 20], shin widths [1.6, 16].
      A symmetric parameter's design input observes the mean of the two legs (leg_length: of
      thigh_length and shin_length; leg_width: of the thighs' widths), its value for a body it
      built (`WalkerDesign.value`).
    - `design_ranges` ({}): parameter name -> (low, high), inside the supported range: drawn
      at every reset, replacing the fixed value of that parameter.
    - `design_inputs` (None: the ranged parameters): parameter name -> (low, high): the
      parameters appended to the observation and the range each is scaled from. Give them
      explicitly to run a design-conditioned policy on a fixed design (the design is fed in).
    - `design_draw` ("uniform"): how ranges are drawn (envs.design.DESIGN_DRAWS): "uniform",
      or "edges": each ranged parameter at one end of its range with probability
      EDGE_PROBABILITY, uniformly in it otherwise.

    The rest:
    - `terrain_length_scale` (2): multiplies the course length (200 terrain steps) and moves the
      finish line with it; at least `MIN_TERRAIN_LENGTH_SCALE`.
    - `fall_penalty` (-50): reward on the step the walker falls (Gymnasium uses -100).
    - `max_time_steps` (1500): episode length limit (Gymnasium uses 1600).
    - `render_mode`: `None`, `"human"` or `"rgb_array"`.

    ```python
    >>> import gymnasium as gym, envs
    >>> env = gym.make("Bipedal_Custom_Leg_Length-v0", leg_length=30)
    >>> body_aware = gym.make("Bipedal_Custom_Leg_Length-v0",
    ...                       design_ranges={"leg_length": (24, 46)})
    >>> body_aware.observation_space.shape
    (25,)
    ```
    """

    def __init__(
        self,
        render_mode: str | None = None,
        terrain_length_scale: float = COURSE_DEFAULTS["terrain_length_scale"],
        fall_penalty: float = COURSE_DEFAULTS["fall_penalty"],
        max_time_steps: int = COURSE_DEFAULTS["max_time_steps"],
        design_ranges: Mapping[str, Sequence[float]] | None = None,
        design_inputs: Mapping[str, Sequence[float]] | None = None,
        design_draw: str = DESIGN_DRAWS[0],
        **design: float | None,
    ) -> None:
        """`design`: a value per declared design parameter (envs.design.DECLARED), by name;
        the ones left out take their defaults."""
        check_walker_arguments(terrain_length_scale, fall_penalty, max_time_steps,
                               design_ranges, design_inputs, design_draw, **design)
        super().__init__(render_mode=render_mode, hardcore=False)
        EzPickle.__init__(self, render_mode=render_mode,
                          terrain_length_scale=terrain_length_scale, fall_penalty=fall_penalty,
                          max_time_steps=max_time_steps, design_ranges=design_ranges,
                          design_inputs=design_inputs, design_draw=design_draw, **design)
        self.design_draw = design_draw
        self.terrain_length_scale = float(terrain_length_scale)
        self.fall_penalty = float(fall_penalty)
        self.max_time_steps = int(max_time_steps)
        self.design_ranges = ordered_ranges(design_ranges or {})
        self.design_inputs = observed_inputs(design_ranges, design_inputs)
        self.fixed_parameters = {
            name: None if (value := design.get(name, default)) is None else float(value)
            for name, default in DESIGN_DEFAULTS.items()}
        self.observation_space = self._observation_space_with_inputs()

        self.num_terrain_steps = round(TERRAIN_LENGTH * self.terrain_length_scale)
        self.finish_x = (self.num_terrain_steps - TERRAIN_GRASS) * TERRAIN_STEP
        self._set_design(self.fixed_parameters)
        self.elapsed_steps = 0

    def _observation_space_with_inputs(self) -> spaces.Box:
        """Gymnasium's bounds, then each design input's supported range, scaled as observed."""
        bounds = [sorted(scale_to_unit(limit, *self.design_inputs[name])
                         for limit in DESIGN_PARAMETERS[name]) for name in self.design_inputs]
        low = np.concatenate([self.observation_space.low, [b[0] for b in bounds]])
        high = np.concatenate([self.observation_space.high, [b[1] for b in bounds]])
        return spaces.Box(low.astype(np.float32), high.astype(np.float32))

    def _set_design(self, parameters: dict[str, float | None]) -> None:
        """Build this body: per-instance leg fixtures (Gymnasium bakes its body into module-level
        ones), torques, and the observed design inputs."""
        self.parameters = parameters
        self.design = design = WalkerDesign.from_parameters(parameters)
        self.leg_length = design.leg_length
        # Per side, in world units: thigh and shin heights, and their fixtures. A shin width
        # that follows leg_width is (0.8 x width) / SCALE here and 0.8 x (width / SCALE) in
        # Gymnasium: equal once Box2D stores it in float32 (tests/test_design.py).
        self.leg_heights, self.leg_fixtures = [], []
        for side in SIDES:
            thigh, shin, thigh_width, shin_width = (size / SCALE for size in design.leg(side))
            self.leg_heights.append((thigh, shin))
            self.leg_fixtures.append((self._leg_fixture(width=thigh_width, height=thigh),
                                      self._leg_fixture(width=shin_width, height=shin)))
        self.motor_torque = design.motor_torque
        self.torque_cost = TORQUE_COST_PER_TORQUE * design.motor_torque
        # What a conditioned policy is told is read off the body just built, never off flags.
        self.design_observation = np.array(
            [scale_to_unit(design.value(name), *bounds)
             for name, bounds in self.design_inputs.items()], dtype=np.float32)

    def _draw_design(self) -> None:
        """A new body for this episode: each ranged parameter drawn in its range (as
        `design_draw` says), among the bodies that start standing (drawn again until one does;
        `check_proportions` made sure the ranges hold some). Ranges where almost none stands
        end, after MAX_DRAWS, with the last draw's shins cut to the longest that stand."""
        for _ in range(MAX_DRAWS):
            drawn = {name: draw_value(self.np_random, low, high, self.design_draw)
                     for name, (low, high) in self.design_ranges.items()}
            parameters = {**self.fixed_parameters, **drawn}
            body = WalkerDesign.from_parameters(parameters)
            if body.stands:
                break
        else:
            for side in SIDES:
                thigh, shin, _, _ = body.leg(side)
                parameters[f"{side}_shin_length"] = min(shin, MAX_SHIN_TO_THIGH * thigh)
        self._set_design(parameters)

    @staticmethod
    def _leg_fixture(width: float, height: float) -> fixtureDef:
        return fixtureDef(
            shape=polygonShape(box=(width / 2, height / 2)),
            density=1.0,
            restitution=0.0,
            categoryBits=0x0020,
            maskBits=0x001,
        )

    def _generate_terrain(self, hardcore: bool = False) -> None:
        """Gently rolling grass, `num_terrain_steps` long, drawn from `np_random` as Gymnasium does.

        Every few steps the random walk of the slope pauses for one step (Gymnasium's
        "oneshot" grass state); the draws of that schedule are kept so the terrain matches.
        """
        rng = self.np_random
        y, velocity = TERRAIN_HEIGHT, 0.0
        steps_to_pause, pause = TERRAIN_STARTPAD, False
        self.terrain_x, self.terrain_y = [], []
        for i in range(self.num_terrain_steps):
            self.terrain_x.append(i * TERRAIN_STEP)
            if not pause:
                velocity = 0.8 * velocity + 0.01 * np.sign(TERRAIN_HEIGHT - y)
                if i > TERRAIN_STARTPAD:
                    velocity += rng.uniform(-1, 1) / SCALE
                y += velocity
            pause = False
            self.terrain_y.append(y)
            steps_to_pause -= 1
            if steps_to_pause == 0:
                steps_to_pause = rng.integers(TERRAIN_GRASS // 2, TERRAIN_GRASS)
                pause = True
        self._build_terrain_bodies()

    def _build_terrain_bodies(self) -> None:
        """One static body per edge, created by the same Box2D calls as Gymnasium's, in order.

        `CreateStaticBody(fixtures=...)` builds a body definition from keywords for every edge;
        one default (static) definition, reused, makes the same bodies at half the cost.
        """
        self.terrain, self.terrain_poly = [], []
        body_def, edge_shape = Box2D.b2BodyDef(), self.fd_edge.shape
        for i in range(self.num_terrain_steps - 1):
            edge = [(self.terrain_x[i], self.terrain_y[i]),
                    (self.terrain_x[i + 1], self.terrain_y[i + 1])]
            edge_shape.vertices = edge
            body = self.world.CreateBody(body_def)
            body.CreateFixture(self.fd_edge)
            body.color1 = body.color2 = (76, 255 if i % 2 == 0 else 204, 76)
            self.terrain.append(body)
            self.terrain_poly.append((edge + [(edge[1][0], 0), (edge[0][0], 0)], (102, 153, 76)))
        self.terrain.reverse()

    def _build_walker(self) -> None:
        """Hull and legs, positioned from the segment lengths (Gymnasium's layout at 34): the
        longer leg stands on the start pad, a shorter one hangs above it."""
        init_x = TERRAIN_STEP * TERRAIN_STARTPAD / 2
        init_y = TERRAIN_HEIGHT + max(thigh + shin for thigh, shin in self.leg_heights)
        self.hull = self.world.CreateDynamicBody(position=(init_x, init_y), fixtures=HULL_FD)
        self.hull.color1, self.hull.color2 = (127, 51, 229), (76, 76, 127)
        self.hull.fixtures[0].userData = HULL_TAG  # for WalkerContacts and LidarRay
        push = self.np_random.uniform(-INITIAL_RANDOM, INITIAL_RANDOM)
        self.hull.ApplyForceToCenter((push, 0), True)

        self.legs, self.joints = [], []
        for side, (thigh, shin), (upper_fd, lower_fd) in zip(
                (-1, +1), self.leg_heights, self.leg_fixtures, strict=True):
            upper = self._add_leg_segment(
                side, init_x, init_y - thigh / 2 - LEG_DOWN, upper_fd,
                parent=self.hull, parent_anchor=(0, LEG_DOWN), own_anchor=(0, thigh / 2),
                motor_speed=side, angle_limits=(-0.8, 1.1),
            )
            lower = self._add_leg_segment(
                side, init_x, init_y - (thigh + shin / 2) - LEG_DOWN, lower_fd,
                parent=upper, parent_anchor=(0, -thigh / 2), own_anchor=(0, shin / 2),
                motor_speed=1, angle_limits=(-1.6, -0.1),
            )
            lower.ground_contact = False
        self.drawlist = self.terrain + self.legs + [self.hull]

    def _add_leg_segment(
        self,
        side: int,
        x: float,
        y: float,
        fixture: fixtureDef,
        parent: Box2D.b2Body,
        parent_anchor: tuple[float, float],
        own_anchor: tuple[float, float],
        motor_speed: float,
        angle_limits: tuple[float, float],
    ) -> Box2D.b2Body:
        segment = self.world.CreateDynamicBody(position=(x, y), angle=side * 0.05, fixtures=fixture)
        segment.color1, segment.color2 = WALKER_COLOURS[side]
        joint = revoluteJointDef(
            bodyA=parent,
            bodyB=segment,
            localAnchorA=parent_anchor,
            localAnchorB=own_anchor,
            enableMotor=True,
            enableLimit=True,
            maxMotorTorque=self.motor_torque,
            motorSpeed=motor_speed,
            lowerAngle=angle_limits[0],
            upperAngle=angle_limits[1],
        )
        segment.fixtures[0].userData = len(self.legs)  # for WalkerContacts and LidarRay
        self.legs.append(segment)
        self.joints.append(self.world.CreateJoint(joint))
        return segment

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        Env.reset(self, seed=seed)
        if self.design_ranges:
            self._draw_design()
        self._destroy()
        self.world.contactListener_bug_workaround = WalkerContacts(self)
        self.world.contactListener = self.world.contactListener_bug_workaround
        self.game_over = False
        self.prev_shaping = None
        self.scroll = 0.0
        self.lidar_render = 0

        self._generate_terrain()
        self._generate_clouds()
        self._build_walker()
        self.lidar = [LidarRay() for _ in range(NUM_LIDAR)]
        if self.render_mode == "human":
            self.render()
        # Like Gymnasium, settle the walker with one idle step; it does not count towards the limit.
        observation, *_ = self._advance(np.zeros(4, dtype=np.float32))
        self.elapsed_steps = 0
        return observation, {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.hull is not None, "call reset() before step()"
        observation, reward, terminated = self._advance(np.asarray(action))
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= self.max_time_steps
        return observation, reward, terminated, truncated, {}

    def _advance(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Apply torques, step the physics, and score the step."""
        # min(|a|, 1) is np.clip(|a|, 0, 1) (NaN included) at a third of the cost.
        torque_fraction = np.minimum(np.abs(action), 1)
        motor_speeds = (JOINT_SPEEDS * np.sign(action)).tolist()
        max_torques = (self.motor_torque * torque_fraction).tolist()
        for joint, speed, torque in zip(self.joints, motor_speeds, max_torques, strict=True):
            joint.motorSpeed = speed
            joint.maxMotorTorque = torque
        self.world.Step(1.0 / FPS, 6 * 30, 2 * 30)

        x, y = self.hull.position
        observation, hull_angle = self._observe(x, y)
        self.scroll = x - VIEWPORT_W / SCALE / 5

        shaping = 130 * x / SCALE - 5.0 * abs(hull_angle)
        reward = 0.0 if self.prev_shaping is None else shaping - self.prev_shaping
        self.prev_shaping = shaping
        # Subtract joint by joint as numpy scalars: like Gymnasium's, the reward takes the action's
        # precision (float32 for float32 actions), and the rounding matches bit for bit.
        for cost in self.torque_cost * torque_fraction:
            reward -= cost

        terminated = False
        if self.game_over or x < 0:
            reward = self.fall_penalty
            terminated = True
        if x > self.finish_x:
            terminated = True
        if self.render_mode == "human":
            self.render()
        return observation, float(reward), terminated

    def _observe(self, x: float, y: float) -> tuple[np.ndarray, float]:
        """The observation (float32, as Gymnasium rounds its list of floats) and the hull angle."""
        hull = self.hull
        vel = hull.linearVelocity
        hip_1, knee_1, hip_2, knee_2 = self.joints
        hull_angle = hull.angle
        observation = np.empty(BODY_OBS_DIM + len(self.design_observation),
                               dtype=np.float32)
        observation[:14] = (
            hull_angle,
            2.0 * hull.angularVelocity / FPS,
            0.3 * vel.x * (VIEWPORT_W / SCALE) / FPS,
            0.3 * vel.y * (VIEWPORT_H / SCALE) / FPS,
            hip_1.angle,
            hip_1.speed / SPEED_HIP,
            knee_1.angle + 1.0,
            knee_1.speed / SPEED_KNEE,
            1.0 if self.legs[1].ground_contact else 0.0,
            hip_2.angle,
            hip_2.speed / SPEED_HIP,
            knee_2.angle + 1.0,
            knee_2.speed / SPEED_KNEE,
            1.0 if self.legs[3].ground_contact else 0.0,
        )
        observation[14:BODY_OBS_DIM] = self._cast_lidar(x, y)
        observation[BODY_OBS_DIM:] = self.design_observation
        return observation, hull_angle

    def _cast_lidar(self, x: float, y: float) -> list[float]:
        """Gymnasium's lidar: one `world.RayCast` per ray from the hull at (x, y)."""
        ray_cast = self.world.RayCast
        for ray, reach_x, reach_y in zip(self.lidar, LIDAR_REACH_X, LIDAR_REACH_Y, strict=True):
            ray.fraction = 1.0
            ray.p1 = (x, y)
            ray.p2 = (x + reach_x, y - reach_y)
            ray_cast(ray, ray.p1, ray.p2)
        return [ray.fraction for ray in self.lidar]



"""The Python API (`evaluation.Policy`) and the ONNX export (`--export`, `export_onnx`): both act
as the command line's deterministic evaluation does, on the shipped policies."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import REPO_ROOT, files_under

import envs
import run
from evaluation import Policy, evaluate, export_onnx

DESIGN = {"thigh_length": 30.0, "shin_length": 40.0, "leg_width": 6.0, "motor_torque": 100.0}
"""A body inside universal_design's box, which the policy walks (README's zero-shot example)."""
DESIGN_FLAGS = [f"--{name}={value:g}" for name, value in DESIGN.items()]
POLICIES = {"fixed design": ("leg_34_trained", {}), "design-conditioned": ("universal_design",
                                                                            DESIGN)}
STEPS = 150
SEED = 7
ONNX_TOLERANCE = 5e-6
"""Actions are in [-1, 1]; torch's and onnxruntime's kernels against the tool's NumPy pass. Each
is within 2e-6 of a float64 pass on these policies: float32 rounding through five layers."""


def folders(tmp_path: Path) -> list[str]:
    return [f"--models_dir={tmp_path / 'm'}", f"--results_dir={tmp_path / 'r'}",
            f"--tensorboard={tmp_path / 'runs'}"]


def cli_episode(tmp_path: Path, monkeypatch, name: str, design: dict[str, float]
                ) -> tuple[np.ndarray, dict]:
    """The actions of `run.py --eval_episodes=1`, caught where it computes them, and its
    report."""
    actions = []
    act = evaluate.act

    def recording_act(policy, observation):
        actions.append(act(policy, observation))
        return actions[-1]

    monkeypatch.setattr(evaluate, "act", recording_act)
    flags = [f"--{name}={value:g}" for name, value in design.items()]
    assert run.cli([f"--initial_model={name}", *flags, "--eval_episodes=1", f"--seed={SEED}",
                    f"--max_time_steps={STEPS}", "--quiet", f"--save_name={name}",
                    *folders(tmp_path)]) == 0
    report = json.loads((tmp_path / "r" / f"{name}_eval.json").read_text())
    return np.array(actions), report["episodes"][0]


def api_episode(policy: Policy, env: gym.Env) -> tuple[np.ndarray, np.ndarray, float]:
    """Observations, actions and return of one episode from `env.reset(seed=SEED)`."""
    observation, _ = env.reset(seed=SEED)
    observations, actions, episode_return = [], [], 0.0
    while True:
        action, _ = policy.predict(observation, deterministic=True)
        observations.append(observation)
        actions.append(action)
        observation, reward, terminated, truncated, _ = env.step(action)
        episode_return += reward
        if terminated or truncated:
            env.close()
            return np.array(observations), np.array(actions), episode_return


@pytest.mark.parametrize("kind", POLICIES)
def test_the_apis_actions_are_the_cli_evaluations_bit_for_bit(tmp_path, monkeypatch, kind):
    """Same policy, walker and seed: the same actions, from a walker of the API's own
    (`make_env`) and from the plain registered walker (the design appended by the policy)."""
    name, design = POLICIES[kind]
    cli_actions, cli_result = cli_episode(tmp_path, monkeypatch, name, design)
    policy = Policy.load(name, design=design)
    own_env = policy.make_env(max_time_steps=STEPS)
    plain_env = gym.make(envs.ENV_ID, **design, max_time_steps=STEPS)
    assert own_env.observation_space.shape == (envs.BODY_OBS_DIM + len(design),)
    for env in (own_env, plain_env):
        _, actions, episode_return = api_episode(policy, env)
        assert actions.dtype == np.float32 and actions.shape == cli_actions.shape
        assert np.array_equal(actions, cli_actions)
        assert episode_return == cli_result["return"] and len(actions) == cli_result["length"]
    assert len(np.unique(cli_actions, axis=0)) > STEPS // 2, "the actions vary"


def test_a_batch_acts_as_its_rows_and_the_design_inputs_are_the_walkers():
    """A batch goes through other matrix kernels than single rows: float32 rounding apart."""
    policy = Policy.load("universal_design", design=DESIGN)
    observations, actions, _ = api_episode(policy, policy.make_env(max_time_steps=40))
    assert np.array_equal(observations[0, envs.BODY_OBS_DIM:], policy.design_observation)
    batch, state = policy.predict(observations)
    assert state is None and batch.shape == actions.shape
    np.testing.assert_allclose(batch, actions, rtol=0, atol=1e-6)
    bare, _ = policy.predict(observations[:, :envs.BODY_OBS_DIM])
    assert np.array_equal(bare, batch)
    other = Policy.load("universal_design", design={**DESIGN, "motor_torque": 60.0})
    assert not np.array_equal(other.predict(observations[:, :envs.BODY_OBS_DIM])[0], actions)


def test_the_readmes_example_acts_as_the_policy_on_its_walker(monkeypatch):
    example = re.search(r"```python\n(from evaluation import Policy.*?)```",
                        (REPO_ROOT / "README.md").read_text(), re.DOTALL).group(1)
    monkeypatch.chdir(REPO_ROOT.parent)  # names are found from any folder
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    policy, observation = namespace["policy"], namespace["observation"]
    assert policy.conditioned and observation.shape == (28,)
    assert np.array_equal(namespace["action"], evaluate.act(policy.snapshot, observation))


def test_a_conditioned_policy_without_its_design_asks_for_it():
    policy = Policy.load("universal_design")
    observation, _ = policy.make_env().reset(seed=1)  # its own walker: the design is observed
    assert policy.predict(observation)[0].shape == (4,)
    with pytest.raises(ValueError, match=r"observation: 28 \(or the bare 24 with "
                                         r"Policy.load\(\.\.\., design=\.\.\.\)\)"):
        policy.predict(observation[:envs.BODY_OBS_DIM])


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^no model 'absent' \(looked for .*leg_34_trained"):
        Policy.load("absent")
    with pytest.raises(ValueError, match=r"^design: leg_width must be a number in \[2, 20\]"):
        Policy.load("leg_34_trained", design={"leg_width": 50})
    with pytest.raises(ValueError, match="design must be keyed by design parameters"):
        Policy.load("leg_34_trained", design={"leg_colour": 3})
    policy = Policy.load("leg_34_trained")
    with pytest.raises(ValueError, match="deterministic: only true"):
        policy.predict(np.zeros(24, np.float32), deterministic=False)
    with pytest.raises(ValueError, match="observation: 24 values per row, got 23"):
        policy.predict(np.zeros(23, np.float32))
    with pytest.raises(ValueError, match="design_inputs: set by the policy"):
        policy.make_env(design_inputs={"leg_length": [24, 46]})
    with pytest.warns(UserWarning, match="leg_length 50 outside 34"):
        Policy.load("leg_34_trained", design={"leg_length": 50})


# ----- ONNX ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", POLICIES)
def test_the_exported_model_acts_as_the_tool(tmp_path, kind):
    """`run.py --export` for the design the flags give, run by onnxruntime on the walker's raw
    observations of an episode, one at a time and as one batch."""
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    name, design = POLICIES[kind]
    path = tmp_path / "controller.onnx"
    flags = [f"--{parameter}={value:g}" for parameter, value in design.items()]
    assert run.cli([f"--initial_model={name}", *flags, f"--export={path}",
                    *folders(tmp_path)]) == 0
    assert files_under(tmp_path) == {"controller.onnx"}
    policy = Policy.load(name, design=design)
    observations, actions, _ = api_episode(policy, gym.make(envs.ENV_ID, **design,
                                                            max_time_steps=STEPS))
    session = onnxruntime.InferenceSession(str(path))
    assert [i.name for i in session.get_inputs()] == ["observation"]
    batch = session.run(["action"], {"observation": observations})[0]
    one_by_one = np.concatenate([session.run(None, {"observation": row[np.newaxis]})[0]
                                 for row in observations[::10]])
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch, actions, rtol=0, atol=ONNX_TOLERANCE)
    np.testing.assert_allclose(one_by_one, actions[::10], rtol=0, atol=ONNX_TOLERANCE)


def test_the_design_is_baked_into_the_export(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    observations = np.random.default_rng(0).normal(size=(20, 24)).astype(np.float32)
    outputs = []
    for torque in (60.0, 120.0):
        path = tmp_path / f"torque_{torque:g}.onnx"
        export_onnx(Policy.load("universal_design", design={**DESIGN, "motor_torque": torque}),
                    path)
        outputs.append(onnxruntime.InferenceSession(str(path)).run(
            None, {"observation": observations})[0])
    assert np.abs(outputs[0] - outputs[1]).max() > 0.01
    with pytest.raises(ValueError, match="exported for one design"):
        export_onnx(Policy.load("universal_design"), tmp_path / "none.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["torque_120.onnx", "torque_60.onnx"]


@pytest.mark.parametrize(("flags", "message"), [
    (["--export=x.pt"], "--export: must be a path ending in .onnx, got 'x.pt'"),
    (["--export=x.onnx", "--eval_episodes=3"], "--export: cannot be combined with "
                                               "--eval_episodes"),
    (["--export=x.onnx", "--leg_length=24:46"], "--leg_length: --export writes the controller "
                                                "of one body: give one value, got 24:46"),
    (["--export=x.onnx", "--initial_model=absent"], "--initial_model: no model 'absent'"),
])
def test_export_refusals_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, flags,
                                                        message):
    monkeypatch.chdir(tmp_path)
    argv = ["--initial_model=leg_34_trained", *flags, *folders(tmp_path)]
    try:
        status = run.cli(argv)
    except SystemExit as stop:  # refused while parsing the flags
        status = stop.code
    assert status == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and re.search(re.escape(message), lines[0])
    assert files_under(tmp_path) == set()


def test_a_failed_export_leaves_the_previous_file(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    path = tmp_path / "controller.onnx"
    path.write_bytes(b"the previous export")

    def fail(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("evaluation.export.onnx_model", lambda policy: b"x" * 100)
    monkeypatch.setattr("os.fsync", fail)
    assert run.cli(["--initial_model=leg_34_trained", f"--export={path}",
                    *folders(tmp_path)]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert path.read_bytes() == b"the previous export"
    assert files_under(tmp_path) == {"controller.onnx"}


def test_the_docs_controller_loop_runs_on_onnxruntime_alone(tmp_path, monkeypatch):
    """docs/export.md's command and loop as written, in a folder of their own."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    text = (REPO_ROOT / "docs" / "export.md").read_text()
    command = re.search(r"```bash\npython run\.py ([^\n]*)\n", text).group(1).split()
    loop = next(block for block in re.findall(r"```python\n(.*?)```", text, re.DOTALL)
                if "onnxruntime" in block)
    assert not re.search(r"^(import|from) (evaluation|ppo|common|torch)", loop, re.MULTILINE)
    monkeypatch.chdir(tmp_path)  # the command writes its file here, where the loop reads it
    assert run.cli([*command, *folders(tmp_path)]) == 0
    namespace: dict = {}
    exec(compile(loop, "docs/export.md", "exec"), namespace)
    assert namespace["episode_return"] > 300, "the exported controller walks"


def test_a_policy_that_does_not_fit_the_walker_is_refused_when_loaded(tmp_path):
    """A policy of 25 inputs that observes no design: the walker gives 24."""
    from common.checkpoint import save_policy
    from ppo.network import ActorCritic

    save_policy(tmp_path / "wide.pt", ActorCritic(25, 4, (8,)), {"env": envs.ENV_ID}, 0, 0.0)
    with pytest.raises(ValueError, match=f"policy has 25 inputs and 4 outputs; {envs.ENV_ID} "
                                         f"needs 24 and 4"):
        Policy.load(tmp_path / "wide.pt")

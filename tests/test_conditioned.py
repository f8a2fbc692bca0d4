"""Design-conditioned policies end to end (issues 17 and 18): design flags that take a range, the
checkpoint that records the design inputs, evaluation, recording and fine-tuning at one design,
mismatches refused in one line, transfer between designs, `--initial_model=auto` and
`--list_models`.

Studies run in this process through `run.cli` (no interpreter start-up per run) on budgets of
one or two updates, each in its own `tmp_path`; one bad flag also runs in a real process.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import (
    REPO_ROOT,
    cli_in_process,
    files_under,
    only_line,
    run_py,
    study_results,
    tiny_flags,
)

from common.checkpoint import load_checkpoint, save_policy
from common.config import DesignRange, parse_config
from envs import ENV_ID
from evaluation import evaluate, video
from ppo.network import ActorCritic

BUDGET = ("--total_frames=1000", "--batch_size=500", "--minibatch_size=250",
          "--train_steps=2", "--num_envs=2", "--max_time_steps=50")
"""Two updates, 50-step episodes: a second or two."""
ONE_UPDATE = ("--total_frames=500",)
LEG_RANGE = [24.0, 46.0]
DEFAULT_LAYERS = (32, 32, 32, 32)
SHIPPED_WALKER = REPO_ROOT / "trained_models" / "leg_34_trained.pt"
"""Walks at leg length 34: ~+80 in 300 steps, where an untrained policy falls (~-42)."""


def cli(folder: Path, *flags: str, save_name: str = "tiny") -> int:
    """`run.py` on a tiny budget writing under `folder`; later flags override earlier ones."""
    return cli_in_process(tiny_flags(folder, *BUDGET, *flags, save_name=save_name))


def one_line_error(capsys: pytest.CaptureFixture[str], flag: str) -> str:
    """The single line run.py wrote to stderr, checked to name `flag`."""
    line = only_line(capsys.readouterr().err)
    assert line.startswith("run.py: error:") and f"--{flag}" in line, line
    return line


def fixed_design_policy(path: Path, *design_flags: str) -> Path:
    """An untrained policy (the default network) saved as a study of the walker `design_flags`
    describe would save it."""
    config = parse_config(["--save_name=x", *design_flags])
    torch.manual_seed(0)
    policy = ActorCritic(24, 4, DEFAULT_LAYERS)
    save_policy(path, policy, {"env": ENV_ID, **config.env_kwargs(), "design_inputs": {}},
                frames=1234, score=12.5)
    return path


def scaled(value: float, low: float, high: float) -> float:
    """A design value as the walker feeds it to the policy: its input range mapped to [-1, 1]."""
    return 2 * (value - low) / (high - low) - 1


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A policy conditioned on leg length, trained (two updates) over `--leg_length=24:46`."""
    folder = tmp_path_factory.mktemp("conditioned")
    assert cli(folder, "--leg_length=24:46", save_name="universal") == 0
    return folder / "m" / "universal.pt"


# ----- flags -------------------------------------------------------------------------------------

def test_a_design_flag_takes_a_number_or_a_range():
    config = parse_config(["--save_name=x", "--leg_length=24:46"])
    assert config.leg_length == DesignRange(24.0, 46.0)
    assert config.design_ranges() == {"leg_length": LEG_RANGE}
    assert config.env_kwargs()["design_ranges"] == {"leg_length": LEG_RANGE}
    assert parse_config(["--save_name=x", "--leg_length=30"]).design_ranges() == {}

    config = parse_config(["--save_name=x", "--motor_torque=60:100", "--leg_width=6:10",
                           "--shin_length=30:50", "--thigh_length=30:40"])
    # Ranged parameters in DESIGN_PARAMETERS order, however the flags were ordered.
    assert list(config.design_ranges()) == ["thigh_length", "shin_length", "leg_width",
                                            "motor_torque"]
    assert config.design_ranges()["motor_torque"] == [60.0, 100.0]
    assert config.leg_length == 34.0 and "leg_length" not in config.design_ranges()


@pytest.mark.parametrize("flags, flag", [
    (["--leg_length=46:24"], "leg_length"),
    (["--leg_length=a:b"], "leg_length"),
    (["--leg_length=1:2:3"], "leg_length"),
    (["--leg_length=:46"], "leg_length"),
    (["--leg_length=24:80"], "leg_length"),
    (["--leg_length=5:40"], "leg_length"),
    (["--leg_length=24:inf"], "leg_length"),
    (["--leg_width=nan:10"], "leg_width"),
    (["--motor_torque=10:100"], "motor_torque"),
    (["--thigh_length=12", "--shin_length=30:45"], "shin_length"),
    (["--thigh_length=12:18", "--shin_length=40"], "shin_length"),
    (["--leg_length=24:46", "--thigh_length=30", "--shin_length=30"], "leg_length"),
])
def test_bad_design_ranges_exit_2_in_one_line_and_write_nothing(tmp_path, capsys, flags, flag):
    assert cli(tmp_path, *flags) == 2
    one_line_error(capsys, flag)
    assert files_under(tmp_path) == set()


def test_a_degenerate_range_is_refused_in_one_line(tmp_path, capsys):
    """LOW == HIGH cannot be a design input (it would read 0 whatever the design)."""
    try:
        status = cli(tmp_path, "--leg_length=30:30")
    except Exception as error:  # escaped run.cli: a traceback and exit 1 in a real process
        pytest.fail(f"BUG: --leg_length=30:30 passes validation (common/config.py validate() "
                    f"checks "
                    f"the walker without its design inputs) and the walker then refuses it while "
                    f"WalkerPool builds it: {type(error).__name__}: {error}; expected exit 2 "
                    f"and one line")
    assert status == 2
    one_line_error(capsys, "leg_length")
    assert files_under(tmp_path) == set()


def test_a_shin_following_a_ranged_leg_is_reported_with_its_longest_value(tmp_path, capsys):
    """--thigh_length=10 with --leg_length=24:46: the shin follows the leg, at least 24 > 2 x 10
    whatever the draw."""
    assert cli(tmp_path, "--leg_length=24:46", "--thigh_length=10") == 2
    line = one_line_error(capsys, "shin_length")
    assert "got None" not in line and "24" in line, (
        f"BUG: the error names the shin's flag value (None: it follows --leg_length) instead "
        f"of the value refused (24, from --leg_length=24:46): {line!r}")


def test_a_bad_range_in_a_real_process_is_one_line_without_traceback(tmp_path):
    done = run_py(tiny_flags(tmp_path, "--leg_length=46:24"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip() == ("run.py: error: --leg_length: must be a range LOW:HIGH with "
                                   "LOW <= HIGH, got 46:24")
    assert files_under(tmp_path) == set()


# ----- a study over a range of designs ---------------------------------------------------------

def test_a_range_study_records_its_design_inputs(conditioned):
    checkpoint = load_checkpoint(conditioned)
    env = checkpoint["env"]
    assert checkpoint["obs_dim"] == 25 and checkpoint["act_dim"] == 4
    assert env["env"] == ENV_ID
    assert env["design_ranges"] == {"leg_length": LEG_RANGE}
    assert env["design_inputs"] == {"leg_length": LEG_RANGE}
    resume = load_checkpoint(conditioned.with_name("universal.last.pt"))
    assert resume["env"]["design_inputs"] == {"leg_length": LEG_RANGE}
    # The design input is already in [-1, 1]: its statistics stay at mean 0 and variance 1
    # (RunningNormalizer's `tracked`), while the body's observations are followed.
    mean = resume["state_dict"]["obs_normalizer.mean"]
    variance = resume["state_dict"]["obs_normalizer.var"]
    assert (mean[-1].item(), variance[-1].item()) == (0.0, 1.0)
    assert (mean[:-1] != 0).all() and (variance[:-1] != 1).all()


def test_a_conditioned_policy_evaluates_at_a_fixed_design(conditioned, tmp_path, capsys):
    reports = {}
    for save_name, leg in (("first", 30), ("again", 30), ("longer", 44)):
        assert cli(tmp_path, f"--initial_model={conditioned}", f"--leg_length={leg}",
                   "--eval_episodes=2", save_name=save_name) == 0
        reports[save_name] = json.loads((tmp_path / "r" / f"{save_name}_eval.json").read_text())
    out = capsys.readouterr().out
    assert "observes leg_length" in out and "leg_length 24:46 -> 30" in out
    report = reports["first"]
    assert report["env"]["leg_length"] == 30 and report["env"]["design_ranges"] == {}
    assert report["env"]["design_inputs"] == {"leg_length": LEG_RANGE}
    assert report["policy_env"]["design_ranges"] == {"leg_length": LEG_RANGE}
    assert [episode["length"] for episode in report["episodes"]] == [50, 50]

    def returns(name: str) -> list[float]:
        return [episode["return"] for episode in reports[name]["episodes"]]

    assert returns("first") == returns("again"), "same flags, same returns"
    assert returns("first") != returns("longer"), "another design, other returns"
    assert not (tmp_path / "m").exists(), "evaluation writes no model"


def test_a_conditioned_policy_evaluates_over_a_narrower_range(conditioned, tmp_path):
    assert cli(tmp_path, f"--initial_model={conditioned}", "--leg_length=28:40",
               "--eval_episodes=2") == 0
    env = json.loads((tmp_path / "r" / "tiny_eval.json").read_text())["env"]
    assert env["design_ranges"] == {"leg_length": [28.0, 40.0]}
    assert env["design_inputs"] == {"leg_length": LEG_RANGE}, "scaled as in its training"


def test_a_conditioned_policy_records_a_video(conditioned, tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "walker.gif"
    assert cli(tmp_path, f"--initial_model={conditioned}", "--leg_length=30",
               f"--record={path}") == 0
    frames = iio.imread(path, index=None)
    assert len(frames) == video.frames_in_video([50], path)
    assert frames.shape[1:3] == (400, 600)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walker.gif"]


def test_the_observation_carries_the_design(conditioned, tmp_path):
    """Legs 26 and 44 reach the conditioned policy as different last inputs, and the input
    alone changes the action it takes."""
    observations, policy = {}, None
    for leg in (26, 44):
        config = parse_config(tiny_flags(tmp_path, f"--initial_model={conditioned}",
                                         f"--leg_length={leg}"))
        policy, checkpoint, _ = evaluate.load_policy(config)
        env = evaluate.make_env(config, checkpoint["env"]["design_inputs"])
        observations[leg], _ = env.reset(seed=3)
        env.close()
        assert observations[leg].shape == (25,)
        assert observations[leg][-1] == pytest.approx(scaled(leg, *LEG_RANGE), abs=1e-6)
    told_44 = observations[26].copy()
    told_44[-1] = observations[44][-1]
    difference = np.abs(evaluate.act(policy, observations[26]) - evaluate.act(policy, told_44))
    assert difference.max() > 1e-6, "the design input does not reach the actor"


def test_a_fixed_design_policy_reads_no_design(tmp_path):
    fixed_design_policy(tmp_path / "m" / "tiny.pt")
    config = parse_config(tiny_flags(tmp_path, "--leg_length=26"))
    policy, checkpoint, _ = evaluate.load_policy(config)
    env = evaluate.make_env(config, {})
    observation, _ = env.reset(seed=3)
    env.close()
    assert observation.shape == (24,) and checkpoint["obs_dim"] == 24


# ----- fine-tuning a conditioned policy ----------------------------------------------------------

@pytest.mark.parametrize("leg, ranges", [("30", {}), ("28:32", {"leg_length": [28.0, 32.0]})])
def test_a_conditioned_policy_fine_tunes_at_one_design_or_a_narrower_range(
        conditioned, tmp_path, leg, ranges):
    # Another seed than the source's: a fresh network would start elsewhere.
    assert cli(tmp_path, f"--initial_model={conditioned}", f"--leg_length={leg}",
               "--seed=2") == 0
    tuned = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert tuned["obs_dim"] == 25
    assert tuned["env"]["design_ranges"] == ranges
    assert tuned["env"]["design_inputs"] == {"leg_length": LEG_RANGE}, "layout of the source"
    assert tuned["env"]["leg_length"] == float(leg.split(":")[0])
    # Two updates at learning rate 3e-4 move a weight by ~1e-3: the source's weights were loaded.
    source = load_checkpoint(conditioned)["state_dict"]["actor.0.weight"]
    assert (tuned["state_dict"]["actor.0.weight"] - source).abs().max() < 0.01
    summary = study_results(tmp_path)["transfer"]
    assert f"transfer: design differs in leg_length 24:46 -> {leg}" in summary


# ----- mismatches --------------------------------------------------------------------------------

def test_a_fixed_design_policy_cannot_start_a_range_study(tmp_path, capsys):
    fixed_design_policy(tmp_path / "m" / "fixed.pt")
    before = files_under(tmp_path)
    assert cli(tmp_path, "--initial_model=fixed", "--leg_length=24:46") == 2
    line = one_line_error(capsys, "initial_model")
    assert "fixed-design" in line and "--leg_length=24:46" in line
    assert files_under(tmp_path) == before


def test_a_leg_conditioned_policy_cannot_train_over_motor_torques(conditioned, tmp_path, capsys):
    assert cli(tmp_path, f"--initial_model={conditioned}", "--motor_torque=60:100") == 2
    line = one_line_error(capsys, "initial_model")
    assert "observes leg_length" in line and "--motor_torque=60:100" in line
    assert files_under(tmp_path) == set()


# ----- transfer between designs, and the design in a checkpoint ----------------------------------

@pytest.mark.parametrize("flag, difference", [
    ("--leg_length=30", "leg_length 34 -> 30"),
    ("--thigh_length=30", "thigh_length 34 -> 30"),
    ("--shin_length=40", "shin_length 34 -> 40"),
    ("--leg_width=6", "leg_width 8 -> 6"),
    ("--motor_torque=100", "motor_torque 80 -> 100"),
])
def test_transfer_between_designs_that_differ_in_each_parameter(tmp_path, flag,
                                                                difference):
    fixed_design_policy(tmp_path / "m" / "source.pt", "--leg_length=34")
    assert cli(tmp_path, "--initial_model=source", "--transfer_learning=initialize", flag,
               *ONE_UPDATE) == 0
    summary = study_results(tmp_path)["transfer"]
    assert f"transfer: design differs in {difference}" in summary
    name, value = flag.removeprefix("--").split("=")
    assert load_checkpoint(tmp_path / "m" / "tiny.pt")["env"][name] == float(value)


def test_a_checkpoint_carries_the_whole_design(tmp_path, capsys):
    design = ("--thigh_length=30", "--shin_length=40", "--leg_width=6", "--motor_torque=100")
    assert cli(tmp_path, *design, *ONE_UPDATE) == 0
    env = load_checkpoint(tmp_path / "m" / "tiny.pt")["env"]
    assert (env["thigh_length"], env["shin_length"]) == (30.0, 40.0)
    assert (env["leg_width"], env["motor_torque"]) == (6.0, 100.0)
    assert env["design_ranges"] == {} and env["design_inputs"] == {}
    # The recorded settings rebuild the same walker.
    walker = gym.make(env["env"], **{k: v for k, v in env.items() if k != "env"}).unwrapped
    assert (walker.design.thigh_length, walker.design.shin_length) == (30.0, 40.0)
    assert (walker.design.leg_width, walker.motor_torque) == (6.0, 100.0)
    walker.close()
    # Evaluated at its own design it is no zero-shot transfer; at another it is, naming it.
    capsys.readouterr()
    assert cli(tmp_path, *design, "--eval_episodes=1") == 0
    assert "zero-shot" not in capsys.readouterr().out
    assert cli(tmp_path, *design, "--leg_width=10", "--eval_episodes=1",
               "--overwrite=true") == 0  # another walker's report replaces the first
    assert "zero-shot transfer: leg_width 6 -> 10" in capsys.readouterr().out


def test_a_study_over_several_design_ranges_observes_each(tmp_path, capsys):
    assert cli(tmp_path, "--motor_torque=60:100", "--thigh_length=30:40", *ONE_UPDATE) == 0
    checkpoint = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert checkpoint["obs_dim"] == 26
    assert list(checkpoint["env"]["design_inputs"].items()) == [
        ("thigh_length", [30.0, 40.0]), ("motor_torque", [60.0, 100.0])]
    assert cli(tmp_path, "--thigh_length=35", "--motor_torque=80", "--eval_episodes=1") == 0


# ----- --initial_model=auto and --list_models ----------------------------------------------------

RANKED = re.compile(r"auto: \d+\. (\S+): mean return (-?\d+\.\d)")


def ranking(text: str) -> dict[str, float]:
    return {path: float(value) for path, value in RANKED.findall(text)}


def test_auto_picks_the_policy_that_walks_and_records_the_choice(tmp_path):
    """Leg 34, 300-step episodes: the shipped walker gains ~+80, the untrained policy falls.
    The repository's models are candidates too: whichever wins must be a walker."""
    models = tmp_path / "m"
    models.mkdir()
    walker = models / "walker.pt"
    shutil.copyfile(SHIPPED_WALKER, walker)
    faller = fixed_design_policy(models / "faller.pt")
    assert cli(tmp_path, "--initial_model=auto", "--leg_length=34", "--max_time_steps=300") == 0
    results = study_results(tmp_path)
    summary = results["transfer"]  # the ranking, the choice, then what was loaded
    ranked = ranking(summary)
    assert str(walker) in ranked and str(faller) in ranked, summary
    assert ranked[str(walker)] > 50 and ranked[str(faller)] < 0, ranked
    chosen = re.search(r"auto: chose (\S+)", summary).group(1)
    assert chosen != str(faller) and ranked[chosen] == max(ranked.values())
    assert list(ranked) == sorted(ranked, key=ranked.get, reverse=True), "best first"
    # `auto` is the experiment setting (reruns, resumes and analysis groups compare it); the
    # choice is recorded beside it, with the frozen candidates and their statistics.
    assert results["config"]["initial_model"] == "auto"
    assert results["chosen_initial_model"] == chosen == results["auto"]["chosen_initial_model"]
    assert str(walker) in results["auto"]["candidates"]
    assert str(faller) in results["auto"]["candidates"]
    walker_row = next(row for row in results["auto"]["ranking"] if row["path"] == str(walker))
    low, high = walker_row["return_ci95"]
    assert low <= walker_row["mean_return"] <= high and walker_row["fall_rate"] == 0.0
    assert f"transfer: loaded {chosen}" in summary
    assert not any(path.endswith(".last.pt") for path in ranked)


def test_auto_without_a_compatible_policy_is_one_line(tmp_path, capsys):
    fixed_design_policy(tmp_path / "m" / "wide.pt")  # [32,32,32,32]: not the study's network
    before = files_under(tmp_path)
    assert cli(tmp_path, "--initial_model=auto", "--hidden_layers=[8]") == 2
    line = one_line_error(capsys, "initial_model")
    assert "auto found no policy" in line and "--hidden_layers=[8]" in line
    assert files_under(tmp_path) == before


def test_auto_for_a_range_study_ranks_only_policies_that_observe_the_range(
        conditioned, tmp_path, capsys):
    models = tmp_path / "m"
    models.mkdir()
    shutil.copyfile(conditioned, models / "universal.pt")
    fixed_design_policy(models / "fixed.pt")
    assert cli(tmp_path, "--initial_model=auto", "--leg_length=26:30", "--eval_episodes=1") == 0
    ranked = ranking(capsys.readouterr().out)
    assert str(models / "universal.pt") in ranked
    assert str(models / "fixed.pt") not in ranked and str(SHIPPED_WALKER) not in ranked


def test_list_models_describes_each_policy_and_skips_resume_checkpoints(conditioned, tmp_path,
                                                                        capsys):
    models = tmp_path / "m"
    models.mkdir()
    shutil.copyfile(conditioned, models / "universal.pt")
    shutil.copyfile(conditioned.with_name("universal.last.pt"), models / "universal.last.pt")
    fixed_design_policy(models / "fixed.pt", "--leg_length=30", "--motor_torque=100")
    before = files_under(tmp_path)
    assert cli_in_process(["--list_models=true", f"--models_dir={models}"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert not any(".last.pt" in line for line in lines)
    by_path = {line.split(": ", 1)[0]: line for line in lines}
    universal, fixed = by_path[str(models / "universal.pt")], by_path[str(models / "fixed.pt")]
    score = load_checkpoint(conditioned)["score"]
    assert "leg_length 24:46" in universal and "1,000 frames" in universal
    assert f"score {score:.1f}" in universal and "conditioned on leg_length" in universal
    assert "leg_length 30" in fixed and "motor_torque 100" in fixed
    assert "1,234 frames" in fixed and "score 12.5" in fixed and "fixed design" in fixed
    assert files_under(tmp_path) == before


"""The command line: the spec's flags and defaults, both flag syntaxes, and lenient value forms."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
from conftest import REPO_ROOT

from common.config import HELP_GROUPS, Config, build_parser, parse_config
from common.study_files import MAX_SAVE_NAME_LENGTH
from ppo.schedules import Schedules
from study.progress import Progress

SEED_README_DEFAULTS = {
    # flag: the default the seed README states (None: it states none)
    "save_name": None,
    "total_frames": 10e6,
    "render": "False",
    "env": "Bipedal_Custom_Leg_Length-v0",
    "leg_length": 34,
    "terrain_length_scale": 2,
    "fall_penalty": -50,
    "max_time_steps": 1500,
    "hidden_layers": "[32,32,32,32]",
    "algorithm": "ppo",
    "optimizer": "adam",
    "learning_rate": 3e-4,
    "gamma": 0.98,
    "batch_size": 10000,
    "train_steps": 80,
    "action_std": 0.5,
    "action_std_start": None,
    "action_std_final": None,
    "action_std_end": None,
    "device": "cpu",
    "initial_model": "none",
    "transfer_learning": "none",
    "tl_end": 0.25,
    "reset_final_layer": "False",
    "add_noise_layers": 0,
    "add_noise_alpha": 1,
}


BOOLEAN_FLAGS = ("render", "reset_final_layer", "quiet", "resume")


def parse(*flags: str) -> Config:
    return parse_config(["--save_name=x", *flags])


def help_text(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping


def test_help_lists_every_flag_of_the_seed_readme_with_its_default(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch)
    for flag, spec_default in SEED_README_DEFAULTS.items():
        metavar = r"\[true\|false\]" if flag in BOOLEAN_FLAGS else flag.upper()
        match = re.search(rf"--{flag} {metavar} (.*?)\(default: ([^)]*)\)", text)
        assert match, f"--{flag} missing from --help, or shown without a default"
        meaning, shown = match.groups()
        assert len(meaning.strip()) > 10, f"--{flag} has no explanation"
        if spec_default is None:
            continue
        if isinstance(spec_default, str):
            assert shown == spec_default, flag
        else:
            assert float(shown) == pytest.approx(spec_default), flag


def test_defaults_are_the_specs():
    config = parse()
    assert config.total_frames == 10_000_000 and config.leg_length == 34
    assert config.hidden_layers == (32, 32, 32, 32) and config.learning_rate == 3e-4
    assert config.gamma == 0.98 and config.batch_size == 10_000 and config.train_steps == 80
    assert config.action_std == 0.5 and not config.uses_schedule
    assert config.fall_penalty == -50 and config.max_time_steps == 1500
    assert config.terrain_length_scale == 2 and config.optimizer == "adam"
    assert config.initial_model == "none" and config.transfer_learning == "none"
    assert config.tl_end == 0.25 and not config.reset_final_layer
    assert config.add_noise_layers == 0 and config.add_noise_alpha == 1
    assert not config.render and config.device == "cpu"


def test_equals_and_space_separated_flags_give_the_same_config():
    pairs = [("total_frames", "2e6"), ("leg_length", "30"), ("fall_penalty", "-20"),
             ("hidden_layers", "[64,64]"), ("optimizer", "rmsprop"), ("render", "true"),
             ("learning_rate", "1e-3"), ("action_std_start", "0.9"),
             ("action_std_final", "0.1"), ("action_std_end", "0.5"), ("seed", "5")]
    with_equals = parse_config([f"--{flag}={value}" for flag, value in pairs] + ["--save_name=x"])
    spaced = parse_config([item for flag, value in pairs for item in (f"--{flag}", value)]
                          + ["--save_name", "x"])
    assert with_equals == spaced
    assert spaced.fall_penalty == -20 and spaced.total_frames == 2_000_000


@pytest.mark.parametrize("text, value", [("true", True), ("True", True), ("TRUE", True),
                                         ("tRuE", True), ("false", False), ("False", False),
                                         ("FALSE", False)])
def test_booleans_in_any_case(text: str, value: bool):
    config = parse(f"--render={text}", f"--quiet={text}", f"--reset_final_layer={text}",
                   "--initial_model=some_model")
    assert config.render is value and config.quiet is value
    assert config.reset_final_layer is value


@pytest.mark.parametrize("text", ["[64,64]", "64,64", "[64, 64]", "(64,64)", " 64 , 64 "])
def test_hidden_layers_forms(text: str):
    assert parse(f"--hidden_layers={text}").hidden_layers == (64, 64)


def test_a_single_hidden_layer():
    assert parse("--hidden_layers=[128]").hidden_layers == (128,)
    assert parse("--hidden_layers", "16").hidden_layers == (16,)


@pytest.mark.parametrize("text, frames", [("10e6", 10_000_000), ("2e6", 2_000_000),
                                          ("2E6", 2_000_000), ("1.5e3", 1500),
                                          ("123456", 123_456)])
def test_total_frames_in_scientific_notation(text: str, frames: int):
    config = parse(f"--total_frames={text}")
    assert config.total_frames == frames and isinstance(config.total_frames, int)


def test_counts_in_scientific_notation_elsewhere():
    config = parse("--batch_size=2e4", "--minibatch_size=5e3")
    assert (config.batch_size, config.minibatch_size) == (20_000, 5_000)


def test_case_of_optimizer_name_does_not_matter():
    assert parse("--optimizer=Adam").optimizer.lower() == "adam"


def test_the_schedule_is_used_only_when_set():
    assert not parse().uses_schedule
    config = parse("--action_std_start=0.6", "--action_std_final=0.1", "--action_std_end=1")
    assert config.uses_schedule
    assert Schedules.resolve(config).action_std_at(0) == pytest.approx(0.6)


def test_none_keeps_the_schedule_unset():
    assert not parse("--action_std_start=none").uses_schedule


# ----- what a newcomer trips on (issue 16) ------------------------------------------------


@pytest.mark.parametrize("flag", BOOLEAN_FLAGS)
def test_a_bare_boolean_flag_means_true_and_a_value_still_works(flag: str):
    extra = ["--initial_model=some_model"] if flag == "reset_final_layer" else []
    assert getattr(parse(f"--{flag}", *extra), flag) is True
    assert getattr(parse(f"--{flag}", "--seed=3", *extra), flag) is True  # not eating the next
    assert getattr(parse(f"--{flag}=True", *extra), flag) is True
    assert getattr(parse(f"--{flag}", "false", *extra), flag) is False
    assert getattr(parse(*extra), flag) is False


def test_help_shows_booleans_as_optional_true_or_false(capsys, monkeypatch):
    text = help_text(capsys, monkeypatch)
    assert "--render [true|false]" in text and "RENDER" not in text
    assert text.startswith("usage: run.py --save_name=NAME [--FLAG=VALUE ...]")


def test_a_bad_boolean_is_still_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        parse("--render=maybe")
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "run.py: error: argument --render: expected true or false, got 'maybe'")


def test_training_needs_a_save_name_and_says_so_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config(["--leg_length=30"])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("run.py: error: --save_name: required")


@pytest.mark.parametrize("mode", ["--eval_episodes=3", "--record=walk.gif", "--render"])
def test_policy_modes_parse_without_a_save_name(mode: str):
    config = parse_config([mode, "--initial_model=leg_34_trained"])
    assert config.save_name == "" and config.runs_saved_policy


def test_every_flag_is_in_exactly_one_help_section():
    grouped = [name for names in HELP_GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(spec.name for spec in dataclasses.fields(Config))


def readme_parameter_sections() -> dict[str, list[str]]:
    """The README's "## Parameters": each "### ..." heading with the flags its bullets or its
    table rows start with, in order (a bullet may name several: "- `--models_dir`,
    `--results_dir` ...")."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    sections: dict[str, list[str]] = {}
    for block in body.split("\n### ")[1:]:
        title, _, rest = block.partition("\n")
        leads = [re.match(r"[-|] ((?:`--\w+`(?:, )?)+)", line) for line in rest.splitlines()]
        sections[title.strip()] = [flag for lead in leads if lead
                                   for flag in re.findall(r"`--(\w+)`", lead.group(1))]
    return sections


def test_help_sections_are_the_readmes_groups_in_the_readmes_order():
    parser = build_parser()
    help_sections = {group.title: [action.dest for action in group._group_actions]
                     for group in parser._action_groups if group.title in HELP_GROUPS}
    assert list(help_sections) == list(HELP_GROUPS)
    assert help_sections == readme_parameter_sections()


def test_the_running_average_says_how_many_episodes_it_is_over():
    stream = io.StringIO()  # not a terminal: plain lines
    progress = Progress(total_frames=2000, quiet=False, stream=stream)
    progress.update(1000, running_average=-33.0, best=float("-inf"), averaged=1)
    progress.update(2000, running_average=122.0, best=122.0, averaged=100)
    first, last = stream.getvalue().splitlines()
    assert re.search(r"running avg\s+-33\.0 over\s+1 ep\b", first)
    assert re.search(r"running avg\s+122\.0 over 100 ep\b", last)


# ----- experiment and run settings --------------------------------------------------------------


def test_every_flag_is_either_an_experiment_or_a_run_setting():
    from common.config import EXPERIMENT_SETTINGS, RUN_SETTINGS

    names = {spec.name for spec in dataclasses.fields(Config)}
    assert set(EXPERIMENT_SETTINGS) | set(RUN_SETTINGS) == names
    assert not set(EXPERIMENT_SETTINGS) & set(RUN_SETTINGS)
    assert {"num_envs", "seed", "leg_length", "action_std_end", "tl_end"} <= set(
        EXPERIMENT_SETTINGS)
    assert {"total_frames", "num_workers", "device", "resume", "quiet", "tensorboard",
            "list_models"} <= set(RUN_SETTINGS)


def test_experiment_of_ignores_run_settings_and_equates_equivalent_experiments():
    from common.checkpoint import config_as_plain_dict
    from common.config import experiment_of

    base = experiment_of(parse())
    assert experiment_of(parse("--total_frames=50", "--num_workers=0", "--device=cuda",
                               "--models_dir=elsewhere", "--quiet=true",
                               "--tensorboard=none", "--overwrite=true")) == base
    assert experiment_of(parse("--num_envs=4")) != base
    assert experiment_of(parse("--seed=2")) != base
    # As saved in a results file (lists, not tuples), and written before a flag existed.
    saved = config_as_plain_dict(parse())
    del saved["max_grad_norm"]
    assert experiment_of(saved) == base
    transfer = experiment_of(parse("--initial_model=leg_34_trained"))
    assert transfer == experiment_of(parse("--initial_model=models/leg_34_trained.pt",
                                           "--transfer_learning=initialize"))
    assert transfer["initial_model"] == "leg_34_trained"
    assert "tl_end" not in base and "tl_end" in transfer  # meaningless from scratch
    scheduled = experiment_of(parse("--action_std_start=0.5", "--action_std_final=0.1",
                                    "--action_std_end=0.5"))
    assert "action_std" not in scheduled  # the schedule replaces the fixed std


def test_help_states_the_bounds_validation_enforces(capsys, monkeypatch):
    """Whatever validation accepts, the study can run; --help says where the limits are."""
    text = help_text(capsys, monkeypatch)
    for flag, bound in [("save_name", f"at most {MAX_SAVE_NAME_LENGTH} characters"),
                        ("save_name", "not ending in .last"),
                        ("total_frames", "never more"),
                        ("terrain_length_scale", "[0.155, 100]"),
                        ("fall_penalty", "[-1e+06, 1e+06]"),
                        ("max_time_steps", "[1, 1e+07]"),
                        ("hidden_layers", "half of this machine's memory"),
                        ("device", "N <= 127"),
                        ("num_workers", "4 per core"),
                        ("overwrite", "a name already used is refused")]:
        match = re.search(rf"--{flag} \S+ (.*?)\(default:", text)  # metavar, then the help
        assert match and bound in match.group(1), (flag, bound)


# ----- a quick answer ---------------------------------------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["--no_such_flag=1"], ["--save_name=x",
                                                                      "--num_envs=0"]])
def test_help_and_refused_flags_answer_without_importing_torch(args):
    """torch takes seconds to import: `--help` and a refused flag must not wait for it."""
    import subprocess
    import sys

    probe = ("import sys, run\n"
             "try:\n"
             f"    run.cli({args!r})\n"
             "except SystemExit:\n"
             "    pass\n"
             "sys.exit(3 if 'torch' in sys.modules else 0)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, "torch was imported"


@pytest.mark.parametrize("script, args", [
    ("design.py", ["--help"]),
    ("design.py", ["--save_name=s", "--objective=fastest"]),
    ("design.py", ["--save_name=s", "--trials=50k"]),
    ("analyze.py", ["--help"]),
])
def test_design_and_analyze_answer_help_and_refusals_without_importing_torch(script, args):
    """design.py checks its flags before it imports the search (and torch with it)."""
    import subprocess
    import sys

    probe = (f"import sys, runpy\nsys.argv = [{script!r}, *{args!r}]\n"
             f"try:\n    runpy.run_path({script!r}, run_name='__main__')\n"
             f"except SystemExit as done:\n    code = done.code\n"
             f"sys.exit(3 if 'torch' in sys.modules else code)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode in (0, 2), "torch was imported"
    assert (done.returncode == 0) == (args == ["--help"]), done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("script, typo, suggestion", [
    ("run.py", "--lerning_rate=1e-3", "--learning_rate"),
    ("design.py", "--objectve=score", "--objective"),
    ("sweep.py", "--gird=seed=1,2", "--grid"),
    ("analyze.py", "--windw=50", "--window"),
])
def test_an_unknown_flag_close_to_a_known_one_gets_did_you_mean(script, typo, suggestion):
    import subprocess
    import sys

    required = ["--name=x"] if script == "sweep.py" else []
    done = subprocess.run([sys.executable, script, *required, typo], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.endswith(f"unrecognized argument {typo} (did you mean {suggestion}?)"), line


def test_an_unknown_flag_far_from_every_known_one_gets_no_guess(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--save_name=x", "--zzz=1"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == "run.py: error: unrecognized argument --zzz=1"


@pytest.mark.parametrize("text, written", [("50k", "5e4 or 50000"), ("2.5M", "2.5e6 or 2500000"),
                                           ("1k", "1e3 or 1000")])
def test_a_suffixed_count_is_refused_naming_the_number_flags_take(capsys, text, written):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--save_name=x", f"--total_frames={text}"])
    assert exit_info.value.code == 2
    assert f"(write {written}), got '{text}'" in capsys.readouterr().err


def test_readmes_fine_tune_command_uses_the_noise_measured_best_for_fine_tuning():
    """README's fine-tuning starts with noise 0.2 falling to 0.1, the schedule docs/results.md
    measured for fine-tuning a policy that already walks (not the scratch default 0.5)."""
    readme = (REPO_ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| fine-tune"))
    config = parse_config(re.search(r"`python run.py ([^`]*)`", row)[1].split())
    assert config.has_initial_model and config.uses_schedule
    schedule = (config.action_std_start, config.action_std_final, config.action_std_end)
    assert schedule == (0.2, 0.1, 0.6)
    assert "(docs/results.md#fine-tuning-from-universal_24_46)" in row
    measured = (REPO_ROOT / "docs" / "results.md").read_text()
    assert "STD_START=0.2 bash experiments/universal_finetune.sh" in measured
    recipe = (REPO_ROOT / "experiments" / "universal_finetune.sh").read_text()
    assert "--fixed action_std_final=0.1" in recipe and "--fixed action_std_end=0.6" in recipe


def test_readmes_design_table_is_one_table():
    """A blank line inside a Markdown table ends it: the rows after it render as raw pipes."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("### Walker design parameters\n", 1)[1].split("\n### ", 1)[0]
    lines = section.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert rows == list(range(rows[0], rows[-1] + 1))
    assert any(line.startswith("| `--leg_width`") for line in lines)


def test_a_recording_written_to_the_repository_root_is_ignored_by_git():
    """README's `--record=walk.gif` writes into the working tree, where git must not see it."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("walk.gif", "walk.mp4"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", name],
                                 cwd=REPO_ROOT, timeout=30)
        assert ignored.returncode == 0, name

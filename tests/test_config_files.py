"""Configuration files: every study writes its resolved settings beside its results, and
`--config=FILE` starts a study from such a file or a hand-written one, flags overriding it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import REPO_ROOT, cli_in_process, only_line, tiny_flags

from common.config import (
    EXPERIMENT_SETTINGS,
    RUN_SETTINGS,
    Config,
    DesignRange,
    parse_config,
)

SHIPPED = sorted((REPO_ROOT / "experiments" / "configs").glob("*.json"))


def refusal(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse_config(argv)
    assert exit_info.value.code == 2
    return only_line(capsys.readouterr().err)


def write(tmp_path: Path, settings: object) -> str:
    path = tmp_path / "hand.json"
    path.write_text(json.dumps(settings))
    return str(path)


def test_a_written_config_given_to_config_reproduces_the_study_s_config(tmp_path, capsys):
    """The round trip, with a range, a schedule and a non-default network among the settings
    (values equal to their defaults are not 'given': the schedule's action_std is not refused)."""
    flags = tiny_flags(tmp_path, "--leg_length=24:46", "--motor_torque=70",
                       "--hidden_layers=[16,8]", "--action_std_start=0.6",
                       "--action_std_final=0.2", "--action_std_end=0.5", "--seed=4",
                       "--learning_rate=2.5e-4", "--num_workers=0", "--eval_every=1000",
                       "--eval_episodes_during=2")
    started = parse_config(flags)
    assert cli_in_process(flags) == 0
    written = tmp_path / "r" / "tiny_config.json"
    assert parse_config([f"--config={written}"]) == started
    sections = json.loads(written.read_text())
    assert set(sections) == {"experiment", "run"}
    assert set(sections["experiment"]) == set(EXPERIMENT_SETTINGS)
    assert set(sections["run"]) == set(RUN_SETTINGS) - {"resume", "overwrite"}
    assert sections["experiment"]["leg_length"] == "24:46"  # as the flag is written
    assert sections["experiment"]["hidden_layers"] == [16, 8]
    assert not list(written.parent.glob(".*.tmp"))  # written atomically, nothing left over


def test_flags_on_the_command_line_override_the_file(tmp_path):
    path = write(tmp_path, {"save_name": "a", "seed": 3, "leg_length": 30})
    config = parse_config([f"--config={path}", "--seed=9", "--save_name=b"])
    assert (config.seed, config.save_name, config.leg_length) == (9, "b", 30)


def test_a_hand_written_file_takes_values_as_flags_do(tmp_path):
    path = write(tmp_path, {"save_name": "x", "leg_length": [24, 46], "hidden_layers": "64,64",
                            "thigh_length": None, "total_frames": "5e4", "render": False,
                            "action_std": 0.2})
    config = parse_config([f"--config={path}"])
    assert config.leg_length == DesignRange(24, 46) and config.hidden_layers == (64, 64)
    assert config.total_frames == 50_000 and config.action_std == 0.2
    assert config == dataclasses.replace(Config(), save_name="x", leg_length=DesignRange(24, 46),
                                         hidden_layers=(64, 64), total_frames=50_000,
                                         action_std=0.2)


@pytest.mark.parametrize("settings, expected", [
    ({"save_name": "x", "lerning_rate": 1e-3},
     "unknown flag 'lerning_rate' (did you mean learning_rate?)"),
    ({"save_name": "x", "resume": True}, "unknown flag 'resume'"),
    ({"save_name": "x", "num_envs": "many"}, "--num_envs: expected a whole number"),
    ({"save_name": "x", "num_envs": 0}, "--num_envs: must be positive, got 0"),
    (["save_name", "x"], "must hold a table of flags"),
])
def test_bad_files_are_refused_in_one_line_naming_the_flag(tmp_path, capsys, settings, expected):
    line = refusal(capsys, [f"--config={write(tmp_path, settings)}"])
    assert line.startswith("run.py: error: ") and expected in line


def test_a_file_that_is_not_json_or_not_there_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("save_name: x\n")
    assert "is not JSON" in refusal(capsys, [f"--config={bad}"])
    assert "--config: cannot read" in refusal(capsys, [f"--config={tmp_path / 'none.json'}"])


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_the_shipped_policies_configs_are_files_config_takes(path: Path):
    config = parse_config([f"--config={path}"])
    assert config.save_name == path.stem
    assert (REPO_ROOT / "trained_models" / f"{path.stem}.pt").exists()
    assert config.total_frames >= 1_000_000


def shipped_policies() -> set[str]:
    """What the repository ships: the policies .gitignore lets into trained_models/ (the
    folder also holds whatever studies the user trains)."""
    lines = (REPO_ROOT / ".gitignore").read_text().splitlines()
    prefix, suffix = "!trained_models/", ".pt"
    return {line[len(prefix):-len(suffix)] for line in lines
            if line.startswith(prefix) and line.endswith(suffix)}


def test_every_shipped_policy_has_its_config():
    assert shipped_policies() == {path.stem for path in SHIPPED}

"""`python run.py --save_name=NAME --resume`: the study continues as it was started (its saved
settings restored), a flag given must agree or be a run setting, a larger budget extends it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_in_process, only_line, study_results, tiny_flags

from common.config import RESUME_CHANGES, RESUME_KEPT, resume_command

EVERY = ("--eval_every=500", "--eval_episodes_during=2")


def by_name(tmp_path: Path, *extra: str) -> list[str]:
    """The name, the folders (this test's, not the repository's) and `--resume`: nothing else."""
    return ["--save_name=tiny", f"--models_dir={tmp_path / 'm'}",
            f"--results_dir={tmp_path / 'r'}", f"--tensorboard={tmp_path / 'runs'}",
            "--resume", *extra]


@pytest.fixture
def finished(tmp_path: Path, capsys) -> Path:
    """A tiny study of 1,000 frames with settings far from the defaults."""
    assert cli_in_process(tiny_flags(tmp_path, *EVERY, "--total_frames=1000", "--seed=7",
                                     "--hidden_layers=[16,16]")) == 0
    capsys.readouterr()
    return tmp_path


def test_the_name_alone_continues_the_study_as_it_was_started(finished, capsys):
    assert cli_in_process(by_name(finished)) == 0
    assert "resumed" not in capsys.readouterr().out  # --quiet=true restored too
    assert cli_in_process(by_name(finished, "--quiet=false")) == 0
    out = capsys.readouterr().out
    # Its own budget, not the 10M default: a finished study resumes to no work.
    assert "resumed at 1,000 frames of 1,000 from" in out and "extended" not in out
    results = study_results(finished)
    assert results["frames"] == 1000
    config = results["config"]
    assert (config["seed"], config["hidden_layers"], config["num_envs"]) == (7, [16, 16], 1)
    assert (config["eval_every"], config["eval_episodes_during"]) == (500, 2)


def test_a_larger_budget_extends_the_study_and_says_so(finished, capsys):
    assert cli_in_process(by_name(finished, "--total_frames=2000", "--quiet=false")) == 0
    assert "resumed at 1,000 frames of 2,000 (extended from 1,000 by --total_frames)" in \
        capsys.readouterr().out
    assert study_results(finished)["frames"] == 2000
    # The study's config file now holds the new budget: the next resume by name keeps it.
    assert cli_in_process(by_name(finished, "--quiet=false")) == 0
    assert "resumed at 2,000 frames of 2,000 from" in capsys.readouterr().out


@pytest.mark.parametrize("flag, saved", [("--num_envs=2", "--num_envs=1"),
                                         ("--seed=3", "--seed=7"),
                                         ("--hidden_layers=[32,32]", "--hidden_layers=[16,16]"),
                                         ("--eval_every=1000", "--eval_every=500")])
def test_a_flag_that_disagrees_with_the_study_is_refused_naming_it(finished, capsys, flag,
                                                                   saved):
    before = {path: path.read_bytes() for path in finished.rglob("*") if path.is_file()}
    assert cli_in_process(by_name(finished, flag)) == 2
    line = only_line(capsys.readouterr().err)
    name = flag.split("=")[0]
    assert line.startswith(f"run.py: error: {name}: study tiny was started with {saved}, not ")
    assert {path: path.read_bytes() for path in finished.rglob("*") if path.is_file()} == before


def test_the_refusal_names_only_settings_that_may_change(finished, capsys):
    """It once named eval_every as changeable, and the next attempt refused it."""
    assert cli_in_process(by_name(finished, "--eval_every=1000")) == 2
    changeable = only_line(capsys.readouterr().err).split("on resume only ")[1]
    assert "--total_frames" in changeable and "--num_workers" in changeable
    for kept in RESUME_KEPT:
        assert f"--{kept}" not in changeable
    assert set(RESUME_KEPT) == {"eval_every", "eval_episodes_during", "best_by"}
    assert not set(RESUME_KEPT) & set(RESUME_CHANGES)


def test_flags_that_agree_and_run_settings_are_accepted(finished, capsys):
    assert cli_in_process(by_name(finished, "--seed=7", "--num_envs=1", "--eval_every=500",
                                  "--num_workers=0", "--device=cpu", "--quiet=false",
                                  "--total_frames=1500")) == 0
    assert study_results(finished)["frames"] == 1500


def test_a_study_without_a_config_file_is_restored_from_its_checkpoint(finished, capsys):
    """Studies from before config files: the settings saved in the resume checkpoint."""
    (finished / "r" / "tiny_config.json").unlink()
    assert cli_in_process(by_name(finished, "--total_frames=2000")) == 0
    assert study_results(finished)["config"]["hidden_layers"] == [16, 16]
    assert cli_in_process(by_name(finished, "--seed=8")) == 2
    assert "started with --seed=7" in only_line(capsys.readouterr().err)


def test_resume_without_a_study_says_there_is_none(tmp_path, capsys):
    assert cli_in_process(by_name(tmp_path)) == 2
    line = only_line(capsys.readouterr().err)
    assert "--resume" in line and "no interrupted study" in line


def test_the_stop_message_gives_the_command_that_continues_the_study(tiny_config, tmp_path):
    assert resume_command(tiny_config()) == (f"python run.py --save_name=tiny "
                                             f"--models_dir={tmp_path / 'm'} "
                                             f"--results_dir={tmp_path / 'r'} --resume")
    default_folders = tiny_config("--models_dir=trained_models", "--results_dir=results",
                                  save_name="walker")
    assert resume_command(default_folders) == "python run.py --save_name=walker --resume"

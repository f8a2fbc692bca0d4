"""design.py as a hostile user drives it (issue #26): where it writes, where it evaluates, the
the stages' flags and a space beyond what the policy learned. Every refusal is one line
naming the flag, exit status 2, and leaves nothing in results_dir.

In-process (`design.cli`) where the refusal comes before any candidate is evaluated: fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT, only_line

pytest.importorskip("optuna")

import design  # noqa: E402

POLICY = str(REPO_ROOT / "trained_models" / "universal_24_46.pt")
TINY = ("--episodes=1", "--max_time_steps=30", "--terrain_length_scale=0.5", "--parallel=1")


def run_cli(tmp_path: Path, *args: str, name: str = "s") -> int:
    return design.cli([f"--save_name={name}", f"--initial_model={POLICY}", *TINY,
                       f"--results_dir={tmp_path / 'r'}", f"--models_dir={tmp_path / 'm'}",
                       *args])


def written(tmp_path: Path) -> list[str]:
    folders = [tmp_path / "r", tmp_path / "m"]
    return sorted(p.name for folder in folders if folder.exists() for p in folder.iterdir())


@pytest.mark.parametrize(("args", "flag"), [
    (("--storage=sqlite://",), "--storage"),               # in-memory: nothing to resume
    (("--storage=sqlite:///",), "--storage"),
    (("--storage=sqlite:///:memory:",), "--storage"),
    (("--storage=sqlite:///{tmp}/afile/s.db",), "--storage"),  # its folder is a file
    (("--storage=sqlite:///{tmp}",), "--storage"),          # a folder, not a database
    (("--results_dir={tmp}/afile",), "--results_dir"),
    (("--address=garbage",), "--address"),
    (("--address=",), "--address"),
    (("--parallel=1e9",), "--parallel"),                    # a billion RUNNING trials first
    (("--trials=2", "--rescore=3:30"), "--rescore"),     # more than the screen keeps
    (("--rescore=1:10",), "--rescore"),                     # fewer than 30 episodes
    (("--finetune=1:3:400:30",), "--finetune"),             # fewer than 5 seeds
    (("--final=1:5:400",), "--final"),                      # EPISODES missing
    (("--final=1:5:4e2:30x",), "--final"),
    (("--baseline=leg_length=34",), "--baseline"),          # without --final
    (("--final=1:5:400:30", "--baseline=leg_length=nan"), "--baseline"),
    (("--final=1:5:400:30", "--baseline=leg_length=500"), "--baseline"),
    (("--checkpoints=3",), "--checkpoints"),                # without --finetune
    (("--max_fall_rate=0",), "--max_fall_rate"),
    (("--objective=pareto", "--rescore=1:30"), "--rescore"),
    (("--train_fixed=batch_size=500",), "--train_fixed"),  # without a training stage
    (("--final=1:5:400:30", "--train_fixed=bogus=1"), "--train_fixed"),
    (("--final=1:5:400:30", "--train_fixed=leg_length=50"), "--train_fixed"),  # the candidate's
    (("--final=1:5:400:30", "--train_fixed=save_name=x"), "--train_fixed"),
    (("--final=1:5:400:30", "--train_fixed=total_frames=abc"), "--train_fixed"),
    (("--final=1:5:400:30", "--train_fixed=batch_size=0"), "--train_fixed"),
    (("--save_name=" + "a" * 200,), "--save_name"),          # its files would not fit
])
def test_refused_in_one_line_before_anything_is_written(tmp_path, capsys, args, flag):
    (tmp_path / "afile").write_text("")
    args = tuple(arg.replace("{tmp}", str(tmp_path)) for arg in args)
    status = run_cli(tmp_path, "--leg_length=24:46", "--trials=2", *args)
    out, err = capsys.readouterr()
    assert status == 2, out + err
    assert only_line(err).startswith(f"design.py: error: {flag}:")
    assert written(tmp_path) == []


def test_an_unreachable_cluster_leaves_no_database(tmp_path, capsys, monkeypatch):
    pytest.importorskip("ray")
    import designsearch.search

    def no_cluster(address):
        raise ConnectionError(f"could not connect to {address}\nretries exhausted")

    monkeypatch.setattr(designsearch.search, "start_ray", no_cluster)
    status = run_cli(tmp_path, "--leg_length=24:46", "--trials=2", "--address=ray://nohost:1")
    err = capsys.readouterr().err
    assert status == 2
    assert only_line(err).startswith("design.py: error: --address: cannot start or reach Ray")
    assert written(tmp_path) == []


@pytest.mark.parametrize(("args", "warned"), [
    (("--leg_length=10:70",), "leg_length 10:70 outside 24:46"),
    (("--leg_length=24:46", "--motor_torque=120"), "motor_torque 120 outside 80 (not observed)"),
    (("--leg_length=24:46", "--quiet"), None),
])
def test_a_space_beyond_what_the_policy_learned_warns(tmp_path, capsys, args, warned):
    assert run_cli(tmp_path, "--trials=1", *args) == 0
    err = capsys.readouterr().err
    if warned is None:
        assert "warning" not in err
    else:
        assert only_line(err) == (f"warning: universal_24_46.pt is used outside what it "
                                  f"learned: {warned}")

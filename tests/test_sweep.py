"""sweep.py and sweeps/: the grid, naming, what happens to finished and broken studies, a tiny
sweep on local Ray, and one on a Ray cluster of two nodes (both skipped where the optional Ray
extra is not installed)."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import pytest
from conftest import TINY_FIXED

import sweep
from common.checkpoint import save_policy
from ppo.network import ActorCritic
from sweeps import execution, grid, state


def folders(tmp_path: Path) -> list[str]:
    return [f"--models_dir={tmp_path / 'm'}", f"--results_dir={tmp_path / 'r'}",
            f"--tensorboard={tmp_path / 'runs'}"]


def build(tmp_path: Path, *args: str) -> state.Sweep:
    return sweep.sweep_from_args(sweep.build_parser().parse_args(
        ["--name=t", *args, *folders(tmp_path)]))


def manifest(tmp_path: Path, name: str = "t") -> dict:
    return json.loads((tmp_path / "r" / f"{name}_manifest.json").read_text())


def statuses(tmp_path: Path, name: str = "t") -> dict[str, str]:
    return {s["save_name"]: s["status"] for s in manifest(tmp_path, name)["studies"]}


def save_model(path: Path, hidden: tuple[int, ...]) -> None:
    save_policy(path, ActorCritic(24, 4, hidden), {"leg_length": 34.0}, 0, 0.0)


# ----- the grid, without Ray ----------------------------------------------------------------


def test_grid_values_keep_bracketed_commas():
    assert grid.split_values("30,40") == ["30", "40"]
    assert grid.split_values("[32,32],[64]") == ["[32,32]", "[64]"]
    with pytest.raises(grid.SweepError, match="empty value"):
        grid.split_values("30,,40")


def test_studies_are_the_product_of_the_axes_with_deterministic_names(tmp_path):
    studies = build(tmp_path, "--grid=leg_length=30,40.0", "--grid=hidden_layers=[16,16],[8]",
                    "--grid=seed=1,2", "--fixed=total_frames=5000").studies
    names = [s.save_name for s in studies]
    assert len(names) == 8
    assert names[:3] == ["t__leg30__hidden_layers-16-16__seed1",
                         "t__leg30__hidden_layers-16-16__seed2", "t__leg30__hidden_layers-8__seed1"]
    assert names[-1] == "t__leg40__hidden_layers-8__seed2"
    assert studies[0].flags == {"total_frames": "5000", "leg_length": "30",
                                "hidden_layers": "[16,16]", "seed": "1"}


def test_strategy_scratch_drops_the_initial_model_and_transfer_flags(tmp_path):
    studies = build(tmp_path, "--grid=strategy=scratch,initialize,freeze_then_thaw",
                    "--fixed=initial_model=leg_34_trained", "--fixed=tl_end=0.5").studies
    scratch, initialize, thaw = (s.flags for s in studies)
    assert [s.save_name for s in studies] == ["t__scratch", "t__initialize",
                                              "t__freeze_then_thaw"]
    assert scratch == {}
    assert initialize == {"initial_model": "leg_34_trained", "tl_end": "0.5",
                          "transfer_learning": "initialize"}
    assert thaw["transfer_learning"] == "freeze_then_thaw"


@pytest.mark.parametrize(("args", "message"), [
    (["--grid=strategy=scratch,initialize"], "need --fixed initial_model"),
    (["--grid=strategy=scratch,warm_start", "--fixed=initial_model=x"], "'warm_start'"),
    (["--grid=strategy=initialize", "--fixed=initial_model=x",
      "--fixed=transfer_learning=initialize"], "do not give both"),
    (["--grid=leg_length=30", "--grid=leg_length=40"], "given twice"),
    (["--grid=leg_length=30,30"], "repeated value"),
    (["--grid=leg_length=30,30.0"], "same study name"),
    (["--grid=results_dir=a,b"], "set by the sweep itself"),
    (["--grid=seed=1,2", "--fixed=overwrite=true"], "set by the sweep itself"),
    (["--grid=leg_lenght=30"], "not a run.py flag"),
    (["--grid=seed=1", "--fixed=seed=2"], "already a --grid axis"),
    (["--fixed=seed=2"], "at least one --grid"),
    (["--grid=seed"], "expects FLAG=VALUE"),
    (["--grid=seed=1", "--resource=trainer"], "--resource: expects NAME=AMOUNT"),
    (["--grid=seed=1", "--resource=trainer=0"], "positive amount"),
])
def test_bad_grids_are_usage_errors(tmp_path, args, message):
    with pytest.raises(grid.SweepError, match=message):
        build(tmp_path, *args)


def test_sweep_defaults_go_first_so_fixed_flags_win(tmp_path):
    plan = build(tmp_path, "--grid=seed=1", "--fixed=num_workers=1", "--cpus_per_study=1")
    argv = state.study_argv(plan.studies[0], plan.paths, plan.cpus_per_study, resume=True)
    assert argv[:2] == ["--quiet=true", "--num_workers=1"]
    assert argv[-1] == "--resume=true" and f"--results_dir={tmp_path / 'r'}" in argv


@pytest.mark.parametrize(("cpus", "num_envs", "workers"), [
    (1, None, "0"), (2, None, "2"), (2, "2", "0"), (4, "6", "4")])
def test_cpus_per_study_decides_the_workers_never_the_walkers(tmp_path, cpus, num_envs,
                                                               workers):
    """The number of walkers is part of the experiment: the CPUs a task gets only decide how
    many processes step them (run.py's own rule on that many cores)."""
    fixed = [f"--fixed=num_envs={num_envs}"] if num_envs else []
    # On a cluster (--address), a node may have more CPUs than this machine.
    plan = build(tmp_path, "--grid=seed=1", *fixed, f"--cpus_per_study={cpus}",
                 "--address=auto")
    argv = state.study_argv(plan.studies[0], plan.paths, cpus)
    config = state.intended_config(argv)
    assert config["num_envs"] == (int(num_envs) if num_envs else 8)
    assert f"--num_workers={workers}" in argv


def test_custom_resources_are_reserved_only_where_a_node_has_them(tmp_path):
    plan = build(tmp_path, "--grid=seed=1", "--resource=trainer=1", "--resource=big=0.5")
    assert plan.resources == {"trainer": 1.0, "big": 0.5}
    head = {"Alive": True, "Resources": {"CPU": 4.0}}
    trainer = {"Alive": True, "Resources": {"CPU": 1.0, "trainer": 2.0, "big": 1.0}}
    assert execution.fits_a_node(plan, [head, trainer])
    assert not execution.fits_a_node(plan, [head, {**trainer, "Alive": False}])
    plan.cpus_per_study = 2  # both nodes together have it, but no single one
    assert not execution.fits_a_node(plan, [head, trainer])
    assert execution.describe_reservation(plan) == "2 CPU and 1 trainer and 0.5 big"


def test_finished_interrupted_conflicting_and_invalid_studies_are_told_apart(tmp_path):
    plan = build(tmp_path, "--grid=leg_length=30,40,50,60,999", "--fixed=total_frames=2000")
    results, models = tmp_path / "r", tmp_path / "m"
    results.mkdir()
    models.mkdir()

    def results_file(name: str, frames: int, **config) -> None:
        config = {"total_frames": 2000, "leg_length": 30.0, "seed": 1, **config}
        (results / f"{name}.p").write_bytes(pickle.dumps(
            {"config": config, "frames": frames, "best_score": float("-inf"), "wall_time": 3.0,
             "episodes": {}}))

    results_file("t__leg30", 2000)                      # finished: skipped
    results_file("t__leg40", 1000, leg_length=40.0)     # interrupted: resumed
    (models / "t__leg40.last.pt").write_bytes(b"checkpoint")
    results_file("t__leg50", 2000, leg_length=45.0)     # someone else's study: conflict
    (models / "t__leg60.pt").write_bytes(b"policy")     # files, but nothing to resume: conflict
    to_run = state.prepare(plan)
    assert [(study.save_name, resume) for study, resume in to_run] == [("t__leg40", True)]
    by_name = {study.save_name: study for study in plan.studies}
    assert by_name["t__leg30"].status == "skipped" and by_name["t__leg30"].frames == 2000
    assert by_name["t__leg30"].best_score is None  # -inf is not JSON
    assert by_name["t__leg50"].status == "conflict"
    assert "--leg_length=45.0" in by_name["t__leg50"].error
    assert by_name["t__leg60"].status == "conflict"
    assert "t__leg60.pt exists but t__leg60.last.pt does not" in by_name["t__leg60"].error
    assert by_name["t__leg999"].status == "invalid"
    assert by_name["t__leg999"].error.startswith("--leg_length: must be a number in")


def test_run_settings_never_make_a_finished_study_a_conflict(tmp_path):
    """Only experiment settings identify a study: a finished study stays finished when the
    sweep is re-run with other workers, device or display; another seed is a conflict."""
    results = tmp_path / "r"
    results.mkdir()
    stored = {**state.intended_config(state.study_argv(
        build(tmp_path, "--grid=seed=1", "--fixed=total_frames=2000").studies[0],
        state.Paths(tmp_path / "m", results), cpus=1)), "num_workers": 2, "device": "cuda"}
    (results / "t__seed1.p").write_bytes(pickle.dumps(
        {"config": stored, "frames": 2000, "best_score": 1.0, "wall_time": 3.0}))
    plan = build(tmp_path, "--grid=seed=1", "--fixed=total_frames=2000", "--fixed=num_workers=0")
    assert state.prepare(plan) == [] and plan.studies[0].status == "skipped"
    stored["seed"] = 2
    (results / "t__seed1.p").write_bytes(pickle.dumps(
        {"config": stored, "frames": 2000, "best_score": 1.0, "wall_time": 3.0}))
    plan = build(tmp_path, "--grid=seed=1", "--fixed=total_frames=2000")
    assert state.prepare(plan) == [] and plan.studies[0].status == "conflict"
    assert "--seed=2" in plan.studies[0].error


def test_a_study_whose_budget_is_spent_to_the_last_whole_step_is_complete(tmp_path):
    """2001 frames with 2 walkers: 2000 is all a study can train, and it is done."""
    plan = build(tmp_path, "--grid=seed=1", "--fixed=total_frames=2001", "--fixed=num_envs=2")
    stored = state.intended_config(state.study_argv(plan.studies[0], plan.paths, cpus=1))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "t__seed1.p").write_bytes(pickle.dumps(
        {"config": stored, "frames": 2000, "best_score": float("-inf"), "wall_time": 3.0}))
    assert state.prepare(plan) == []
    assert plan.studies[0].status == "skipped"


def test_a_shipped_study_whose_name_is_locked_elsewhere_is_not_run(tmp_path):
    """With --ship_files the sweep holds each study's lock itself; another holder wins."""
    from common.locking import StudyLock

    plan = build(tmp_path, "--grid=seed=1", "--ship_files=true")
    out = io.StringIO()
    with StudyLock(tmp_path / "m" / ".t__seed1.lock", "t__seed1"):
        assert execution.run_sweep(plan, out) == 1  # nothing to run: Ray is not even started
    assert plan.studies[0].status == "conflict"
    assert f"running in another process (PID {os.getpid()})" in plan.studies[0].error


def test_a_missing_initial_model_is_found_before_anything_runs(tmp_path):
    plan = build(tmp_path, "--grid=strategy=scratch,initialize", "--fixed=initial_model=nope")
    assert [study.save_name for study, _ in state.prepare(plan)] == ["t__scratch"]
    assert "no model 'nope'" in plan.studies[1].error


def test_dry_run_prints_each_command_and_runs_nothing(tmp_path, capsys):
    assert sweep.cli(["--name=t", "--grid=seed=1,2", "--dry_run", *folders(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("run      python run.py --quiet=true --num_workers=0 --seed=1 "
                               "--save_name=t__seed1")
    assert not (tmp_path / "r").exists()


def test_bad_flags_exit_2_with_one_line(tmp_path, capsys):
    assert sweep.cli(["--name=a__b", "--grid=seed=1", *folders(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("sweep.py: error: --name:")


# ----- on local Ray ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (starting it takes 5-15 s); two CPUs whatever the machine."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(execution.REPO_ROOT)}})
    yield ray
    ray.shutdown()


def test_tiny_sweep_writes_results_and_manifest_and_a_rerun_skips(tmp_path, local_ray):
    args = ["--name=t", "--grid=leg_length=30,40,999", *TINY_FIXED, *folders(tmp_path)]
    out = io.StringIO()
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    assert execution.run_sweep(plan, out) == 1  # leg 999 is invalid; the others still run
    assert statuses(tmp_path) == {"t__leg30": "done", "t__leg40": "done", "t__leg999": "invalid"}
    entry = manifest(tmp_path)["studies"][0]
    assert entry["frames"] == 2000 and entry["attempts"] == 1
    assert manifest(tmp_path)["grid"] == {"leg_length": ["30", "40", "999"]}
    for kind in ("results", "csv", "updates", "log", "model", "checkpoint"):
        assert Path(entry["files"][kind]).is_file()
    # TensorBoard events side by side, one folder per study: `--logdir runs` compares them.
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["t__leg30", "t__leg40"]
    assert entry["files"]["tensorboard"] == str(tmp_path / "runs" / "t__leg30")
    assert any(p.name.startswith("events.out.tfevents") for p in
               (tmp_path / "runs" / "t__leg40").iterdir())
    with open(entry["files"]["results"], "rb") as handle:
        results = pickle.load(handle)
    assert results["config"]["leg_length"] == 30.0 and results["config"]["num_envs"] == 1
    assert "done     t__leg30: 2,000 frames" in out.getvalue()
    assert "invalid: t__leg999: --leg_length" in out.getvalue()
    stamp = Path(entry["files"]["results"]).stat().st_mtime_ns

    out = io.StringIO()
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    assert execution.run_sweep(plan, out) == 1
    assert statuses(tmp_path) == {"t__leg30": "skipped", "t__leg40": "skipped",
                                  "t__leg999": "invalid"}
    assert Path(entry["files"]["results"]).stat().st_mtime_ns == stamp
    assert "running" not in out.getvalue()


def test_failing_study_is_retried_once_then_reported_with_shipped_files(tmp_path, local_ray):
    """Shipping mode (as on a cluster): the study runs in a scratch folder and its files come
    back; the transfer study fails (the model's layers do not match) twice and is reported."""
    (tmp_path / "m").mkdir()
    save_model(tmp_path / "m" / "small.pt", hidden=(8,))
    args = ["--name=t", "--grid=strategy=scratch,initialize", "--fixed=initial_model=small",
            "--ship_files=true", *TINY_FIXED, *folders(tmp_path)]
    out = io.StringIO()
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    assert execution.run_sweep(plan, out) == 1
    assert statuses(tmp_path) == {"t__scratch": "done", "t__initialize": "failed"}
    failed = manifest(tmp_path)["studies"][1]
    assert failed["attempts"] == 2
    assert "exit status 2" in failed["error"] and "--hidden_layers=[8]" in failed["error"]
    assert "retrying t__initialize" in out.getvalue()
    assert "FAILED   t__initialize after 2 attempt(s)" in out.getvalue()
    assert failed["files"] == {"log": str(tmp_path / "r" / "t__initialize.log")}
    done = manifest(tmp_path)["studies"][0]
    assert done["frames"] == 2000
    assert set(done["files"]) == {"results", "csv", "updates", "log", "model", "checkpoint",
                                  "tensorboard"}
    shipped_events = list((tmp_path / "runs" / "t__scratch").iterdir())
    assert len(shipped_events) == 1 and shipped_events[0].name.startswith("events.out")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "small.pt", "t__scratch.last.pt", "t__scratch.pt"]


def test_auto_is_ranked_on_this_machine_and_the_winner_shipped(tmp_path, local_ray):
    """On a cluster the candidates are this machine's models: auto ranks them here, logs the
    ranking, and ships the winner, which the study then records as its initial model."""
    args = ["--name=t", "--grid=leg_length=34", "--fixed=initial_model=auto",
            "--fixed=eval_episodes=1", "--fixed=max_time_steps=40", "--ship_files=true",
            "--fixed=hidden_layers=[5,6]", *folders(tmp_path)]
    save_model(tmp_path / "m" / "only_candidate.pt", (5, 6))
    plan = sweep.sweep_from_args(sweep.build_parser().parse_args(args))
    assert execution.run_sweep(plan, io.StringIO()) == 0
    log = (tmp_path / "r" / "t__leg34.log").read_text()
    assert f"auto: chose {tmp_path / 'm' / 'only_candidate.pt'}" in log
    assert "--initial_model=only_candidate " in log
    report = json.loads((tmp_path / "r" / "t__leg34_eval.json").read_text())
    assert Path(report["policy"]).name == "only_candidate.pt"

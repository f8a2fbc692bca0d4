"""Issue #34, "Reliability IV": stops that resume everywhere, a search that never hangs, no
pickle from disk, bounded flags. Each test reproduces one failure with a tiny budget."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import (
    REPO_ROOT,
    SUBPROCESS_TIMEOUT_S,
    cli_in_process,
    only_line,
    start_run_py,
    subprocess_env,
    tiny_flags,
)

from common.results import UnreadableResults, read_results

# ----- 1. no pickle from disk is executed -----------------------------------------------------


class RunsACommand:
    """Unpickling it runs a shell command, as a crafted results file could."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def plant_crafted_results(tmp_path: Path, marker: Path) -> Path:
    path = tmp_path / "r" / "tiny.p"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"frames": 0, "payload": RunsACommand(f"touch {marker}")}))
    return path


def test_a_crafted_results_pickle_is_refused_without_running_it(tmp_path: Path, capfd):
    marker = tmp_path / "marker"
    plant_crafted_results(tmp_path, marker)
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path)) == 2
    assert only_line(capfd.readouterr().err).startswith("run.py: error: --save_name:")
    assert not marker.exists()


def test_analyze_refuses_a_crafted_results_pickle_without_running_it(tmp_path: Path):
    marker = tmp_path / "marker"
    path = plant_crafted_results(tmp_path, marker)
    done = subprocess.run([sys.executable, "analyze.py", str(path), f"--out={tmp_path / 'a'}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert "more than plain data (posix.system)" in only_line(done.stderr)
    assert not marker.exists()


def test_the_sweep_reads_a_crafted_results_pickle_as_no_results(tmp_path: Path):
    from sweeps.state import results_or_none

    marker = tmp_path / "marker"
    assert results_or_none(plant_crafted_results(tmp_path, marker)) is None
    assert not marker.exists()


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "damaged"),
    (b"not a pickle", "damaged"),
    (pickle.dumps([1, 2]), "not a transfer_rl results file"),
    (pickle.dumps({"frames": 0, "when": __import__("datetime").date(2020, 1, 1)}),
     "more than plain data (datetime.date)"),
])
def test_results_that_are_not_plain_data_are_refused_with_a_reason(tmp_path: Path, content,
                                                                    reason):
    path = tmp_path / "x.p"
    path.write_bytes(content)
    with pytest.raises(UnreadableResults, match=reason.replace("(", r"\(").replace(")", r"\)")):
        read_results(path)


def test_results_the_trainer_writes_are_read_back_whole(tmp_path: Path, capfd):
    assert cli_in_process(tiny_flags(tmp_path, "--eval_every=1000",
                                     "--eval_episodes_during=1")) == 0
    path = tmp_path / "r" / "tiny.p"
    assert read_results(path) == pickle.loads(path.read_bytes())


# ----- 2. a kill between the first policy and the first resume checkpoint ---------------------

SLOW_FIRST_UPDATE = ("--total_frames=4000", "--batch_size=2000", "--minibatch_size=50",
                     "--train_steps=60", "--num_envs=2", "--num_workers=2")
"""A first update of thousands of gradient steps: seconds between `tiny.pt` and `tiny.last.pt`."""


def child_pids(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def kill_between_policy_and_checkpoint(folder: Path, victim: str) -> subprocess.Popen[str]:
    """Start a study; SIGKILL the trainer's process group, or one worker, as soon as its first
    policy is saved (during the first update, before `.last.pt`)."""
    process = start_run_py(tiny_flags(folder, *SLOW_FIRST_UPDATE))
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while not (folder / "m" / "tiny.pt").exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.002)
        if victim == "trainer":
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(child_pids(process.pid)[0], signal.SIGKILL)
        process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert (folder / "m" / "tiny.pt").exists()
    assert not (folder / "m" / "tiny.last.pt").exists(), "the kill missed the window"
    return process


@pytest.mark.parametrize("victim", ["trainer", "worker"])
@pytest.mark.parametrize("extra", [(), ("--resume=true",)], ids=["rerun", "resume"])
def test_a_kill_before_the_first_resume_checkpoint_does_not_strand_the_study(
        tmp_path: Path, capfd, victim: str, extra: tuple[str, ...]):
    process = kill_between_policy_and_checkpoint(tmp_path, victim)
    if victim == "worker":
        assert process.returncode == 1
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, *extra)) == 0, capfd.readouterr().err
    assert "afresh" in capfd.readouterr().out
    assert read_results(tmp_path / "r" / "tiny.p")["frames"] == 2000
    assert (tmp_path / "m" / "tiny.last.pt").exists()


# ----- 8. small refusals ----------------------------------------------------------------------


def test_record_into_a_missing_folder_is_refused_before_the_policy_is_loaded(tmp_path: Path,
                                                                             capfd):
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path, "--initial_model=leg_34_trained",
                                     f"--record={tmp_path / 'missing' / 'walk.gif'}"))
    out, err = capfd.readouterr()
    assert code == 2
    assert only_line(err).startswith("run.py: error: --record: the folder ")
    assert "policy:" not in out
    assert not (tmp_path / "missing").exists()


def design_cli(tmp_path: Path, *args: str) -> int:
    pytest.importorskip("optuna")
    import design

    return design.cli(["--save_name=s", f"--results_dir={tmp_path / 'r'}",
                       f"--models_dir={tmp_path / 'm'}", "--episodes=1", "--parallel=1", *args])


@pytest.mark.parametrize("args", [
    ("--thigh_length=nan",),                                   # no range given either
    ("--initial_model=universal_24_46", "--leg_length=24:46", "--thigh_length=nan"),
    ("--initial_model=universal_24_46", "--leg_length=24:46", "--thigh_length=1e9"),
])
def test_a_bad_design_value_blames_its_own_flag(tmp_path: Path, capfd, args):
    capfd.readouterr()
    assert design_cli(tmp_path, *args) == 2
    assert only_line(capfd.readouterr().err).startswith("design.py: error: --thigh_length: "
                                                        "must be a number in")


def test_a_storage_folder_that_does_not_exist_is_refused_not_created(tmp_path: Path, capfd):
    capfd.readouterr()
    missing = tmp_path / "nonexistent" / "dir"
    assert design_cli(tmp_path, "--initial_model=universal_24_46", "--leg_length=24:46",
                      f"--storage=sqlite:///{missing / 'x.db'}") == 2
    assert only_line(capfd.readouterr().err).startswith("design.py: error: --storage: the "
                                                        "folder ")
    assert not (tmp_path / "nonexistent").exists() and not (tmp_path / "r").exists()


# ----- 6. flags that size memory or time, and a zip-bomb checkpoint ---------------------------


@pytest.mark.parametrize(("flag", "allowed"), [
    ("--eval_episodes_during=1e12", "must be in [1, 100,000]"),   # SeedSequence.spawn(1e12)
    ("--eval_episodes=1e12", "must be in [0, 100,000]"),
    ("--total_frames=1e30", "must be in [1, 1e+12]"),
    ("--train_steps=1e12", "must be in [1, 1,000,000]"),
    ("--batch_size=1e12", "the study would need about"),           # the memory estimate
    ("--num_envs=1e12", "the study would need about"),
    ("--hidden_layers=[1000000,1000000]", "the study would need about"),
])
def test_a_count_flag_beyond_its_bound_is_refused_before_anything_runs(tmp_path: Path, capfd,
                                                                        flag: str, allowed: str):
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, flag)) == 2
    line = only_line(capfd.readouterr().err)
    assert line.startswith(f"run.py: error: {flag.split('=')[0]}: ") and allowed in line
    assert not tmp_path.joinpath("m").exists() and not tmp_path.joinpath("r").exists()


@pytest.mark.parametrize(("flag", "most"), [
    ("--trials=1e12", "100,000"), ("--episodes=1e12", "100,000"),
])
def test_a_design_search_count_beyond_its_bound_is_refused(tmp_path: Path, capfd, flag, most):
    capfd.readouterr()
    assert design_cli(tmp_path, "--initial_model=universal_24_46", "--leg_length=24:46",
                      flag) == 2
    assert only_line(capfd.readouterr().err) == (
        f"design.py: error: {flag.split('=')[0]}: at most {most}, got "
        f"{int(float(flag.split('=')[1]))}")


def test_sweep_retries_are_bounded(tmp_path: Path):
    done = subprocess.run([sys.executable, "sweep.py", "--name=x", "--grid=seed=1,2",
                           "--retries=1000000000", "--dry_run", f"--results_dir={tmp_path}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert done.returncode == 2
    assert only_line(done.stderr) == "sweep.py: error: --retries: must be in [0, 100], got " \
                                     "1000000000"


def test_a_zip_bomb_checkpoint_is_refused_from_its_directory(tmp_path: Path):
    from common.checkpoint import load_checkpoint
    from common.errors import UsageError

    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", bytes(200_000_000))
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(UsageError, match=r"would inflate to 200,000,000 bytes from"):
        load_checkpoint(bomb, "initial_model")  # said by the check made before inflating


# ----- 3 and 4. a design search stopped by a signal, or losing a pool process ------------------

SEARCH_TRIALS = 40
"""Enough that on an idle machine the search is still running when the signal or the kill
comes (with 6 it had finished within the second the tests wait)."""
SEARCH_FLAGS = ("--save_name=s", "--initial_model=universal_24_46", "--leg_length=24:46",
                f"--trials={SEARCH_TRIALS}", "--episodes=2", "--parallel=2",
                "--max_time_steps=400")


def search_flags(tmp_path: Path) -> list[str]:
    return [*SEARCH_FLAGS, f"--results_dir={tmp_path / 'r'}", f"--models_dir={tmp_path / 'm'}"]


def start_search_and_wait_for_its_pool(tmp_path: Path) -> tuple[subprocess.Popen[str], list[int]]:
    """design.py leading its own process group, once both pool processes are evaluating."""
    process = subprocess.Popen([sys.executable, "design.py", *search_flags(tmp_path)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=subprocess_env(), start_new_session=True)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while len(children := child_pids(process.pid)) < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no pool within the timeout"
            time.sleep(0.05)
        time.sleep(1.0)  # the first candidates are being evaluated
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return process, children


def running_and_complete_trials(tmp_path: Path) -> tuple[int, int]:
    import optuna
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'r' / 's.db'}")
    states = [trial.state for trial in study.trials]
    return states.count(TrialState.RUNNING), states.count(TrialState.COMPLETE)


def assert_resumes_to_the_end(tmp_path: Path, capfd) -> None:
    capfd.readouterr()
    import design

    assert design.cli([*search_flags(tmp_path), "--resume=true", "--quiet"]) == 0, \
        capfd.readouterr().err
    assert running_and_complete_trials(tmp_path) == (0, SEARCH_TRIALS)


def ended_with_its_group(process: subprocess.Popen[str]) -> tuple[str, str]:
    from test_faults import group_members

    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not group_members(process.pid), "a pool process outlived the search"
    return stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_search_group_ends_it_promptly_and_resumably(tmp_path: Path, capfd,
                                                                     signum: int):
    pytest.importorskip("optuna")
    process, _ = start_search_and_wait_for_its_pool(tmp_path)
    sent = time.monotonic()
    os.killpg(process.pid, signum)
    stdout, stderr = ended_with_its_group(process)
    assert process.returncode == 128 + signum, stderr
    assert time.monotonic() - sent < 30  # not hung (the machine may be shared)
    assert "Traceback" not in stderr
    assert f"stopped by signal {signum}" in stdout
    assert (tmp_path / "r" / "s_design.md").exists()  # reports written
    assert running_and_complete_trials(tmp_path)[0] == 0
    assert_resumes_to_the_end(tmp_path, capfd)


def test_a_dead_pool_process_ends_the_search_in_one_line_and_it_resumes(tmp_path: Path, capfd):
    pytest.importorskip("optuna")
    process, children = start_search_and_wait_for_its_pool(tmp_path)
    os.kill(children[0], signal.SIGKILL)
    _, stderr = ended_with_its_group(process)
    assert process.returncode == 1, stderr
    line = only_line(stderr)
    assert line.startswith("design.py: stopped: evaluation process ")
    assert f"(PID {children[0]}) was killed by signal 9 (SIGKILL)" in line
    assert line.endswith("continue with --resume=true")
    assert running_and_complete_trials(tmp_path)[0] == 0
    assert_resumes_to_the_end(tmp_path, capfd)


# ----- 7. the search store --------------------------------------------------------------------

TINY_SEARCH = ("--save_name=s", "--initial_model=universal_24_46", "--leg_length=24:46",
               "--episodes=1", "--parallel=1", "--max_time_steps=30",
               "--terrain_length_scale=0.5", "--quiet")


def tiny_search(folder: Path, *extra: str) -> int:
    import design

    return design.cli([*TINY_SEARCH, f"--results_dir={folder / 'r'}",
                       f"--models_dir={folder / 'm'}", *extra])


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory) -> Path:
    pytest.importorskip("optuna")
    folder = tmp_path_factory.mktemp("search")
    assert tiny_search(folder, "--trials=2") == 0
    return folder


def copied_search(finished_search: Path, tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(finished_search, tmp_path / "s")
    return tmp_path / "s"


def edit_first_trial(folder: Path, sql: str) -> None:
    import sqlite3

    with sqlite3.connect(folder / "r" / "s.db") as connection:
        connection.execute(sql)


@pytest.mark.parametrize(("sql", "problem"), [
    ("DELETE FROM trial_user_attributes WHERE trial_id = 1", "trial 0 lacks its evaluation"),
    ("UPDATE trial_params SET param_value = 1000 WHERE trial_id = 1",
     "trial 0 has leg_length=1000.0, outside 24:46"),
    ("UPDATE trial_params SET param_name = 'thigh_length' WHERE trial_id = 1",
     "trial 0 searched thigh_length"),
])
def test_a_store_with_a_trial_not_of_this_search_is_refused_as_foreign(
        finished_search: Path, tmp_path: Path, capfd, sql: str, problem: str):
    folder = copied_search(finished_search, tmp_path)
    edit_first_trial(folder, sql)
    capfd.readouterr()
    assert tiny_search(folder, "--trials=3", "--resume") == 2
    line = only_line(capfd.readouterr().err)
    assert line.startswith("design.py: error: --resume: ") and problem in line


def sqlite_connect_hook(monkeypatch, after_connect) -> None:
    """Every SQLite connection opened from now on is first passed to `after_connect`."""
    import sqlite3.dbapi2

    connect = sqlite3.connect

    def hooked(database, *args, **kwargs):
        return after_connect(connect, database, *args, **kwargs)

    for module in (sqlite3, sqlite3.dbapi2):  # SQLAlchemy connects through dbapi2
        monkeypatch.setattr(module, "connect", hooked)


def read_only(connect, database, *args, **kwargs):
    return connect(f"file:{database}?mode=ro", *args, **{**kwargs, "uri": True})


def full(connect, database, *args, **kwargs):
    connection = connect(database, *args, **kwargs)
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    connection.execute(f"PRAGMA max_page_count = {pages}")
    return connection


@pytest.mark.parametrize(("hook", "reason"), [(read_only, "readonly database"),
                                              (full, "database or disk is full")],
                         ids=["read-only", "full"])
def test_a_store_that_cannot_be_written_ends_the_search_in_one_line(
        finished_search: Path, tmp_path: Path, capfd, monkeypatch, hook, reason: str):
    folder = copied_search(finished_search, tmp_path)
    sqlite_connect_hook(monkeypatch, hook)
    capfd.readouterr()
    assert tiny_search(folder, "--trials=30", "--resume") == 1
    line = only_line(capfd.readouterr().err)
    assert line.startswith("design.py: stopped: cannot write the search's database ")
    assert reason in line
    monkeypatch.undo()
    assert running_and_complete_trials(folder)[1] >= 2  # what was stored before is kept


def test_design_py_help_says_what_a_stop_leaves_and_how_to_continue(capsys):
    pytest.importorskip("optuna")
    import design

    with pytest.raises(SystemExit):
        design.cli(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Stopping: Ctrl-C or SIGTERM (exit 130 / 143) keeps every finished trial" in text
    assert "the same command plus --resume=true continues" in text


@pytest.mark.parametrize("flags", [
    ["--rescore=1e12:30"],
    ["--rescore=2:1e9"],
    ["--rescore=2:30", "--finetune=2:5000:1e5:30"],
    ["--rescore=2:30", "--finetune=2:5:1e13:30"],
    ["--rescore=2:30", "--finetune=2:5:1e5:30", "--checkpoints=1e9"],
    ["--rescore=2:30", "--final=1e15:5:1e5:30"],
])
def test_stage_counts_are_bounded_before_the_search(tmp_path, flags):
    """Issue 34 item 6 for the stages: a count that would size the search's time is refused in
    one line naming its flag, before anything is written."""
    flag = flags[-1].split("=")[0]
    result = subprocess.run(
        [sys.executable, "design.py", "--save_name=bounded", "--trials=2", "--episodes=1",
         "--thigh_length=30:40",
         f"--results_dir={tmp_path / 'r'}", f"--models_dir={tmp_path / 'm'}", *flags],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"design.py: error: {flag}:"), result.stderr
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())

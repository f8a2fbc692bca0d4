"""Fault injection: dead and stuck workers, dead trainers, same-name studies, damaged checkpoints,
full disks, stale temporary files, signals at start-up. Each test provokes the fault for real
(signals, a tmpfs that fills up, flipped bytes) and checks the promise that covers it."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    REPO_ROOT,
    SUBPROCESS_TIMEOUT_S,
    cli_in_process,
    files_under,
    only_line,
    run_py,
    start_run_py,
    study_results,
    subprocess_env,
    tiny_flags,
)

import common.checkpoint
import ppo.algorithm
from common.checkpoint import load_checkpoint, load_resume_checkpoint, policy_from_checkpoint
from common.errors import UsageError
from common.locking import StudyLock
from envs import ENV_ID
from study.trainer import Study
from workers.vector import REPLY_SLICE_S, STOP_GRACE_S, StepInterrupted, WalkerPool, WorkerLost

DIES_WITHIN_S = 10.0
"""'Within a few seconds', with slack for a loaded two-core machine."""
WORKERS = ("--num_envs=2", "--num_workers=2")




def is_running(pid: int) -> bool:
    """Alive and not a zombie (a reparented zombie may wait for an init that never reaps)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def wait_until(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").is_dir(),
                                reason="needs Linux /proc to find the worker processes")


def start_long_study(folder: Path, *extra: str, save_name: str = "long"
                     ) -> tuple[subprocess.Popen[str], list[int]]:
    """A study with two worker processes, once it has written its first batch's files."""
    process = start_run_py(tiny_flags(folder, "--total_frames=1e6", *WORKERS, *extra,
                                      save_name=save_name))
    checkpoint = folder / "m" / f"{save_name}.last.pt"  # results exist from the start
    try:
        if not wait_until(lambda: checkpoint.exists() or process.poll() is not None,
                          SUBPROCESS_TIMEOUT_S):
            pytest.fail("no resume checkpoint within the timeout")
        assert process.poll() is None, process.communicate()
        workers = children_of(process.pid)
        assert len(workers) == 2, workers
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, workers


def end(process: subprocess.Popen[str], workers: list[int] = ()) -> tuple[str, str]:
    """Wait for the study (killing it, and its workers, if it hangs): its stdout, stderr."""
    try:
        return process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        for pid in (process.pid, *workers):
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)
        if process.poll() is None:
            process.communicate()


def study_files_intact(folder: Path, save_name: str = "long") -> dict:
    """Every file of the study loads; no temporary file is left. The last checkpoint."""
    policy_from_checkpoint(load_checkpoint(folder / "m" / f"{save_name}.pt"))
    last = common.checkpoint.load_resume_checkpoint(folder / "m" / f"{save_name}.last.pt")
    results = study_results(folder, save_name)
    assert results["frames"] >= last["frames"] > 0
    assert not [name for name in files_under(folder) if Path(name).name.startswith(".")]
    return last


# ----- workers never outlive or block the trainer ------------------------------------------------


@needs_proc
def test_kill_9_of_the_trainer_leaves_no_live_worker(tmp_path: Path):
    process, workers = start_long_study(tmp_path)
    process.kill()
    end(process)
    assert wait_until(lambda: not any(map(is_running, workers)), DIES_WITHIN_S), \
        "a worker outlived its trainer"


@needs_proc
def test_sigterm_stops_the_study_even_with_a_worker_stopped_by_sigstop(tmp_path: Path):
    process, workers = start_long_study(tmp_path)
    os.kill(workers[0], signal.SIGSTOP)
    sent = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)  # the trainer alone, not its process group
    stdout, stderr = end(process, workers)
    assert time.monotonic() - sent < DIES_WITHIN_S
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and "continue with: python run.py --save_name=" in stdout
    assert not any(map(is_running, workers))
    study_files_intact(tmp_path)


@needs_proc
def test_a_killed_worker_ends_the_study_with_one_line_and_keeps_the_last_batch(tmp_path: Path):
    process, workers = start_long_study(tmp_path)
    os.kill(workers[1], signal.SIGKILL)
    _, stderr = end(process, workers)
    assert process.returncode == 1
    line = only_line(stderr)
    assert f"walker worker 1 (PID {workers[1]})" in line and "SIGKILL" in line, line
    assert not any(map(is_running, workers))
    study_files_intact(tmp_path)


def stuck_pool() -> tuple[WalkerPool, list[bool]]:
    """A pool of two workers whose stop flag the test sets; the first worker is SIGSTOPped."""
    stop = [False]
    pool = WalkerPool(ENV_ID, {"max_time_steps": 50}, 2, 2, stop_requested=lambda: stop[0])
    pool.reset(range(pool.num_envs))
    os.kill(pool.workers[0].pid, signal.SIGSTOP)
    return pool, stop


def test_a_stop_request_kills_a_worker_that_does_not_answer_within_the_grace():
    pool, stop = stuck_pool()
    stop[0] = True
    started = time.monotonic()
    try:
        with pytest.raises(StepInterrupted):
            pool.step(np.zeros((2, 4), np.float32))
        waited = time.monotonic() - started
    finally:
        pool.close()
    assert STOP_GRACE_S <= waited < STOP_GRACE_S + 10 * REPLY_SLICE_S + 5
    assert pool.workers[0].describe_exit() == "was killed by signal 9 (SIGKILL)"
    assert not any(worker.is_alive() for worker in pool.workers)


def test_a_dead_worker_is_reported_by_number_pid_and_signal():
    pool = WalkerPool(ENV_ID, {"max_time_steps": 50}, 3, 3)
    try:
        pool.reset(range(pool.num_envs))
        victim = pool.workers[2]
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(WorkerLost) as lost:
            for _ in range(5):  # the first step may race the kill
                pool.step(np.zeros((3, 4), np.float32))
    finally:
        pool.close()
    assert str(lost.value) == f"walker worker 2 (PID {victim.pid}) was killed by signal 9 (SIGKILL)"
    assert not any(worker.is_alive() for worker in pool.workers)


@needs_proc
def test_workers_hold_none_of_the_trainers_descriptors(tmp_path: Path):
    """Inherited descriptors (here a file standing for the study lock) are closed in each
    worker: only stdin, stdout, stderr and its own socket remain."""
    with open(tmp_path / "held", "w") as held:
        pool = WalkerPool(ENV_ID, {}, 4, 2)
        try:
            pool.reset(range(pool.num_envs))  # a round trip: each worker is past its start-up
            for worker in pool.workers:
                fds = sorted(int(fd) for fd in os.listdir(f"/proc/{worker.pid}/fd"))
                assert len(fds) <= 4 and held.fileno() not in fds, fds
                targets = [os.readlink(f"/proc/{worker.pid}/fd/{fd}") for fd in fds[3:]]
                assert all(target.startswith("socket:") for target in targets), targets
        finally:
            pool.close()


def test_a_child_that_loses_its_parent_exits(tmp_path: Path):
    """A parent process that forks a worker and dies at once: the worker follows it (here
    without the kernel's parent-death signal, which a non-main thread cannot rely on)."""
    script = (
        "import os, sys, threading, time\n"
        "from workers.processes import start_child\n"
        "def idle(connection, parent):\n"
        "    parent.wait_for_message()\n"
        "    connection.recv()\n"
        "result = []\n"
        "thread = threading.Thread(target=lambda: result.append(start_child(idle)))\n"
        "thread.start(); thread.join()\n"
        "print(result[0].pid, flush=True)\n"
        "os._exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT_S, env=subprocess_env())
    child = int(done.stdout.split()[0])
    assert wait_until(lambda: not is_running(child), DIES_WITHIN_S)


def test_a_stop_during_a_long_update_is_honoured_within_seconds(tiny_config, monkeypatch):
    """A million gradient steps per batch (the most allowed): the stop request (what the
    signal handler sets) arrives once the update has begun; the half-updated batch is dropped,
    nothing of it saved."""
    updating = threading.Event()
    real_update = ppo.algorithm.update

    def update(*args, **kwargs):
        updating.set()
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo.algorithm, "update", update)
    study = Study(tiny_config("--train_steps=1e6", "--tensorboard=none"))

    asked = []

    def stop_while_updating() -> None:
        updating.wait(SUBPROCESS_TIMEOUT_S)
        time.sleep(0.5)
        asked.append(time.monotonic())
        study.stop_signal = signal.SIGINT

    stopper = threading.Thread(target=stop_while_updating)
    stopper.start()
    outcome = study.run()
    stopped = time.monotonic()
    stopper.join()
    assert updating.is_set() and stopped - asked[0] < DIES_WITHIN_S
    assert outcome.stopped_by_signal == signal.SIGINT and outcome.frames == 0
    assert not study.files.last.exists()


# ----- one study per name, and never over another -------------------------------------------------


def test_a_study_whose_name_is_locked_is_refused_naming_the_holder(tmp_path: Path):
    lock_path = tmp_path / "m" / ".tiny.lock"
    with StudyLock(lock_path, "tiny"):
        done = run_py(tiny_flags(tmp_path))
        resumed = run_py(tiny_flags(tmp_path, "--resume=true"))
    for attempt in (done, resumed):
        assert attempt.returncode == 2
        line = only_line(attempt.stderr)
        assert f"study tiny is running in another process (PID {os.getpid()})" in line
    assert files_under(tmp_path) == set()  # nothing written; the lock's folder went with it


def test_two_same_name_studies_at_once_one_is_refused(tmp_path: Path):
    process, workers = start_long_study(tmp_path, save_name="dup")
    try:
        second = run_py(tiny_flags(tmp_path, "--overwrite=true", save_name="dup"))
    finally:
        process.send_signal(signal.SIGINT)
        end(process, workers)
    assert second.returncode == 2
    assert f"(PID {process.pid})" in only_line(second.stderr)
    assert process.returncode == 128 + signal.SIGINT
    study_files_intact(tmp_path, "dup")


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path: Path):
    lock_path = tmp_path / ".x.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from common.locking import StudyLock\n"
         f"lock = StudyLock(Path({str(lock_path)!r}), 'x').__enter__()\n"
         "print('held', flush=True)\ntime.sleep(600)\n"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UsageError, match=f"PID {holder.pid}"), StudyLock(lock_path, "x"):
            pass
    finally:
        holder.kill()
        holder.communicate()
    with StudyLock(lock_path, "x"):  # no stale lock: the file is left, the lock is not
        assert lock_path.read_text().strip() == str(os.getpid())
    assert not lock_path.exists()


def test_an_earlier_study_is_not_overwritten_unless_told(tmp_path: Path, capfd):
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=1000")) == 0
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=1000")) == 2
    line = only_line(capfd.readouterr().err)
    assert "--resume=true" in line and "--overwrite=true" in line and "tiny" in line
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before

    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=1000", "--seed=5",
                                     "--overwrite=true")) == 0
    assert study_results(tmp_path, "tiny")["config"]["seed"] == 5  # replaced
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=2000", "--seed=5",
                                     "--resume=true")) == 0  # the new study resumes
    assert study_results(tmp_path, "tiny")["frames"] == 2000


def test_a_results_file_alone_also_blocks_a_new_study(tmp_path: Path, capfd):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "tiny.p").write_bytes(b"someone's results")
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path)) == 2
    assert "tiny.p exists" in only_line(capfd.readouterr().err)
    assert (tmp_path / "r" / "tiny.p").read_bytes() == b"someone's results"


def test_stale_temporaries_of_a_killed_study_are_removed_on_resume_and_no_others(tmp_path):
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=1000")) == 0
    ours = [tmp_path / "m" / ".tiny.last.pt.0123abcd.tmp", tmp_path / "r" / ".tiny.p.89abcdef.tmp"]
    others = [tmp_path / "m" / ".tiny.pt.pt.0123abcd.tmp",  # study "tiny.pt"'s
              tmp_path / "m" / ".tiny.last.pt.notours.tmp"]
    for path in ours + others:
        path.write_bytes(b"half a file")
    assert cli_in_process(tiny_flags(tmp_path, "--resume=true")) == 0
    assert not any(path.exists() for path in ours)
    assert all(path.exists() for path in others)


# ----- the budget, and what is printed ------------------------------------------------------------


def test_the_budget_is_never_exceeded_the_last_batch_is_shortened(tmp_path: Path, capfd):
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=1500")) == 0
    assert study_results(tmp_path, "tiny")["frames"] == 1500
    assert torch.load(tmp_path / "m" / "tiny.last.pt", weights_only=True)["frames"] == 1500
    # A budget smaller than one batch is one short batch; 3 walkers: whole steps only.
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=400", "--num_envs=3",
                                     save_name="small")) == 0
    assert study_results(tmp_path, "small")["frames"] == 399


def test_a_study_without_a_finished_episode_prints_no_policy_path(tmp_path: Path, capfd):
    capfd.readouterr()
    # By the running average: by evaluation (the default), the evaluation at the end of the
    # budget finishes its own episodes and saves the policy with that score.
    assert cli_in_process(tiny_flags(tmp_path, "--total_frames=50", "--batch_size=50",
                                     "--minibatch_size=50", "--max_time_steps=1000",
                                     "--eval_every=0", "--best_by=running_average")) == 0
    stdout = capfd.readouterr().out
    assert not (tmp_path / "m" / "tiny.pt").exists()
    assert "best policy: none saved" in stdout
    for printed in re.findall(r"(/\S+?\.(?:pt|p|csv))\b", stdout):
        assert Path(printed).exists(), printed


@pytest.mark.parametrize("signum, delay_s", [(signal.SIGINT, 0.5), (signal.SIGTERM, 1.0),
                                             (signal.SIGINT, 2.5)])
def test_a_signal_during_start_up_is_no_traceback_and_leaves_nothing(tmp_path: Path, signum,
                                                                     delay_s: float):
    """At these moments the study is importing, building its walkers and workers, or has
    just started: whichever, the exit is clean and no process of its group stays behind."""
    process = start_run_py(tiny_flags(tmp_path, "--total_frames=1e6", *WORKERS))
    time.sleep(delay_s)
    process.send_signal(signum)
    _, stderr = end(process)
    assert "Traceback" not in stderr
    assert process.returncode in (128 + signum, -signum), stderr  # -signum: before Python ran
    assert wait_until(lambda: not group_members(process.pid), DIES_WITHIN_S)


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


# ----- reading checkpoints never tracebacks -------------------------------------------------------


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory) -> Path:
    """A tiny finished study: a real best policy and a real resume checkpoint."""
    folder = tmp_path_factory.mktemp("finished")
    assert cli_in_process(tiny_flags(folder, "--total_frames=1000")) == 0
    return folder


def flipped(data: bytes, position: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 0xFF
    return bytes(damaged)


FUZZ_POSITIONS = 120


def positions(size: int, seed: int) -> list[int]:
    """The first bytes (headers), the last (the zip directory), and a random spread."""
    rng = np.random.default_rng(seed)
    spread = rng.choice(size, FUZZ_POSITIONS - 40, replace=False).tolist()
    return sorted({*range(20), *range(size - 20, size), *spread})


def test_policy_fuzz_every_flipped_byte_loads_a_usable_policy_or_is_one_usage_error(
        finished_study: Path, tmp_path: Path):
    """Flip one byte at a time: the file is refused in one line naming the flag and the file,
    or it still holds a policy whose actions are finite (a flip inside a weight's digits)."""
    source = (finished_study / "m" / "tiny.pt").read_bytes()
    target = tmp_path / "damaged.pt"
    outcomes = {"refused": 0, "loaded": 0}
    observations = torch.randn(64, 24) * 5
    for position in positions(len(source), seed=0):
        target.write_bytes(flipped(source, position))
        try:
            policy = policy_from_checkpoint(load_checkpoint(target, "initial_model"))
        except UsageError as error:
            message = str(error)
            assert message.startswith(f"--initial_model: {target}: ") and message.isprintable()
            outcomes["refused"] += 1
            continue
        with torch.no_grad():
            assert torch.isfinite(policy.mean_action(observations)).all(), position
        outcomes["loaded"] += 1
    assert outcomes["refused"] >= 10 and outcomes["loaded"] >= 10, outcomes


def test_resume_fuzz_every_flipped_byte_resumes_or_is_one_usage_error(finished_study: Path,
                                                                      tmp_path: Path, tiny_config):
    source = (finished_study / "m" / "tiny.last.pt").read_bytes()
    study = Study(tiny_config("--total_frames=1000"))
    study.files.last.parent.mkdir(parents=True)
    outcomes = {"refused": 0, "resumed": 0}
    try:
        for position in positions(len(source), seed=1):
            study.files.last.write_bytes(flipped(source, position))
            try:
                study._restore(load_resume_checkpoint(study.files.last))
            except UsageError as error:
                assert str(error).startswith("--resume: ") and str(error).isprintable()
                assert str(study.files.last) in str(error)
                outcomes["refused"] += 1
                continue
            outcomes["resumed"] += 1
    finally:
        study.walkers.close()
    assert outcomes["refused"] >= 10 and outcomes["resumed"] >= 10, outcomes


DAMAGED = {
    "text": lambda good: b"not a checkpoint, just text named .pt\n",
    "truncated": lambda good: good[: len(good) // 3],
    "zip_directory": lambda good: flipped(good, len(good) - 30),
}


@pytest.mark.parametrize("kind", DAMAGED)
@pytest.mark.parametrize("flag", ["initial_model", "resume", "eval_episodes", "record"])
def test_every_flag_that_reads_a_damaged_checkpoint_says_so_in_one_line(
        finished_study: Path, tmp_path: Path, capfd, flag: str, kind: str):
    good = (finished_study / "m" / ("tiny.last.pt" if flag == "resume" else "tiny.pt"))
    damaged = tmp_path / "m" / ("tiny.last.pt" if flag == "resume" else "damaged.pt")
    damaged.parent.mkdir()
    damaged.write_bytes(DAMAGED[kind](good.read_bytes()))
    extra = {"initial_model": [f"--initial_model={damaged}"],
             "resume": ["--resume=true"],
             "eval_episodes": [f"--initial_model={damaged}", "--eval_episodes=1"],
             "record": [f"--initial_model={damaged}", f"--record={tmp_path / 'v.gif'}"]}[flag]
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, *extra)) == 2
    line = only_line(capfd.readouterr().err)
    assert line.startswith(f"run.py: error: --{flag}: {damaged}: "), line


def test_render_names_its_flag_for_a_damaged_policy(tmp_path: Path, capfd, monkeypatch):
    """--render needs a display, which the test machine may not have: pretend it has one, and
    make sure no window can open. The policy is read (and refused) before any window would."""
    def no_window(*_args):
        raise AssertionError("a window was opened for a damaged policy")

    monkeypatch.setattr("evaluation.video.display_problem", lambda: None)
    monkeypatch.setattr("evaluation.video.Window", no_window)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(DAMAGED["text"](b""))
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, f"--initial_model={damaged}", "--render=true",
                                     "--eval_episodes=1")) == 2
    assert only_line(capfd.readouterr().err).startswith(f"run.py: error: --render: {damaged}: ")


def test_huge_weights_are_refused_before_they_can_make_nan_actions(finished_study, tmp_path,
                                                                   capfd):
    checkpoint = torch.load(finished_study / "m" / "tiny.pt", weights_only=True)
    checkpoint["state_dict"]["actor.0.weight"][0, 0] = 3e38
    checkpoint["extra_key_from_a_newer_version"] = {"thigh_length": 34.0}
    torch.save(checkpoint, tmp_path / "huge.pt")
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, f"--initial_model={tmp_path / 'huge.pt'}",
                                     "--eval_episodes=1")) == 2
    assert "actor.0.weight holds values beyond" in only_line(capfd.readouterr().err)


def test_unknown_extra_keys_in_a_checkpoint_are_accepted(finished_study: Path, tmp_path: Path):
    """Other versions add keys (design parameters, reward statistics): only what is read is
    checked."""
    checkpoint = torch.load(finished_study / "m" / "tiny.last.pt", weights_only=True)
    checkpoint["reward_scaler"]["return_mean"] = 1.5
    checkpoint["something_new"] = torch.ones(3)
    torch.save(checkpoint, tmp_path / "newer.last.pt")
    loaded = common.checkpoint.load_resume_checkpoint(tmp_path / "newer.last.pt")
    assert loaded["something_new"].sum() == 3


# ----- output paths and I/O errors ----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["record", "eval"])
def test_unwritable_outputs_are_refused_before_the_first_episode(finished_study, tmp_path,
                                                                 capfd, mode: str):
    blocker = tmp_path / "a_file"
    blocker.write_text("a regular file, not a folder")
    (tmp_path / "a_folder.gif").mkdir()
    model = f"--initial_model={finished_study / 'm' / 'tiny.pt'}"
    cases = ([f"--record={blocker}/walk.gif"], [f"--record={tmp_path / 'a_folder.gif'}"]) \
        if mode == "record" else ([f"--results_dir={blocker}", "--eval_episodes=2"],)
    for extra in cases:
        capfd.readouterr()
        assert cli_in_process(tiny_flags(tmp_path, model, *extra)) == 2
        captured = capfd.readouterr()
        assert "episode 1" not in captured.out  # refused before playing anything
        assert ("--record" if mode == "record" else "--results_dir") in only_line(captured.err)


def test_a_write_error_during_training_is_one_line_and_keeps_the_previous_files(
        tmp_path: Path, monkeypatch, capfd):
    """ENOSPC from the ninth file written on (a new study writes its configuration and its four
    results files of 0 frames, then the first batch its policy, resume checkpoint and results),
    as a full disk."""
    real_fsync = os.fsync
    writes = []

    def filling_fsync(fd: int) -> None:
        writes.append(fd)
        if len(writes) > 8:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(common.checkpoint.os, "fsync", filling_fsync)
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, *WORKERS, save_name="long")) == 1
    line = only_line(capfd.readouterr().err)
    assert "cannot write" in line and "No space left on device" in line, line
    monkeypatch.undo()
    study_files_intact(tmp_path)


MOUNT_SCRIPT = r"""
set -u
mount -t tmpfs -o size=2m tmpfs "$MNT" || exit 77
"$@" --models_dir="$MNT/m" --results_dir="$MNT/r" --tensorboard="$OUT/runs" \
    >"$OUT/stdout" 2>"$OUT/stderr" &
study=$!
for _ in $(seq 1200); do [ -f "$MNT/m/long.last.pt" ] && break; sleep 0.1; done
dd if=/dev/zero of="$MNT/filler" bs=4k >/dev/null 2>&1
wait $study
echo $? >"$OUT/status"
rm -f "$MNT/filler"
cp -a "$MNT/m" "$MNT/r" "$OUT/"
"""


def test_disk_full_on_a_real_tmpfs(tmp_path: Path):
    """A 2 MB tmpfs, mounted in a private mount namespace (`unshare`), filled up while the
    study trains. Needs the right to mount (root, or user namespaces): skipped otherwise."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1) to make a private mount namespace")
    attempts = [[unshare, "--mount", "--propagation", "private"],
                [unshare, "--user", "--map-root-user", "--mount"]]
    mount_point, out = tmp_path / "mnt", tmp_path / "out"
    mount_point.mkdir()
    out.mkdir()
    flags = tiny_flags(Path("set-by-the-script"), "--total_frames=1e6", *WORKERS,
                       save_name="long")
    study = [sys.executable, "run.py",
             *(flag for flag in flags
               if not flag.startswith(("--models_dir", "--results_dir", "--tensorboard")))]
    for namespace in attempts:
        done = subprocess.run([*namespace, "bash", "-c", MOUNT_SCRIPT, "mount", *study],
                              cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT_S,
                              env={**subprocess_env(), "MNT": str(mount_point), "OUT": str(out)})
        if (out / "status").exists():
            break
    else:
        pytest.skip(f"this machine does not allow mounting a tmpfs here: {done.stderr.strip()}")
    assert (out / "status").read_text().strip() == "1"
    line = only_line((out / "stderr").read_text())
    assert "cannot write" in line and "No space left on device" in line, line
    assert "Traceback" not in (out / "stderr").read_text()
    study_files_intact(out, "long")  # the copy of the tmpfs after the study ended


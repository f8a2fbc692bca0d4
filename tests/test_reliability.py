"""Reliability and safety: bad input, interrupts, resuming, unsafe files, diverging training."""

from __future__ import annotations

import math
import os
import pickle
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    SUBPROCESS_TIMEOUT_S,
    cli_in_process,
    files_under,
    only_line,
    run_py,
    start_run_py,
    tiny_flags,
)

import common.checkpoint
import ppo.gradient
import study.trainer
from common.checkpoint import load_checkpoint, policy_from_checkpoint, save_policy
from ppo.network import ActorCritic
from ppo.schedules import Schedules
from study.trainer import Study, StudyDiverged, train

OBS_DIM, ACT_DIM = 24, 4
STOP_WITHIN_S = 10.0
"""'A few seconds', with slack for a loaded two-core machine."""




# ----- bad input -----------------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Files that bad flags point at, in tmp_path/inputs."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    good = folder / "good.pt"  # the architecture of the tiny study (the default [32,32,32,32])
    save_policy(good, ActorCritic(OBS_DIM, ACT_DIM, (32, 32, 32, 32)), {}, 0, 0.0)
    save_policy(folder / "wrong_arch.pt", ActorCritic(OBS_DIM, ACT_DIM, (16,)), {}, 0, 0.0)
    (folder / "corrupt.pt").write_bytes(bytes(range(256)) * 8)
    poisoned = ActorCritic(OBS_DIM, ACT_DIM, (32, 32, 32, 32))
    with torch.no_grad():
        poisoned.actor[0].weight[0, 0] = math.nan
    save_policy(folder / "nan_weights.pt", poisoned, {}, 0, 0.0)
    (folder / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "a_file").write_text("a regular file, not a folder")
    return {path.stem: path for path in folder.iterdir()}


SCHEDULE = ("--action_std_start=0.8", "--action_std_final=0.2")
MODEL = "--initial_model={good}"

BAD_INPUTS = [
    # (flags added to a tiny study, the flag the message must name)
    (("--total_frames=0",), "total_frames"),
    (("--total_frames=-1000",), "total_frames"),
    (("--total_frames=1.5",), "total_frames"),
    (("--total_frames=lots",), "total_frames"),
    (("--batch_size=0",), "batch_size"),
    (("--batch_size=-1000",), "batch_size"),
    (("--batch_size=1e13", "--minibatch_size=10"), "batch_size"),  # does not fit in memory
    (("--minibatch_size=0",), "minibatch_size"),
    (("--minibatch_size=1",), "minibatch_size"),  # one advantage has no std to normalise by
    (("--minibatch_size=-250",), "minibatch_size"),
    (("--minibatch_size=5000",), "minibatch_size"),  # more than the batch
    (("--train_steps=0",), "train_steps"),
    (("--num_envs=0",), "num_envs"),
    (("--seed=-1",), "seed"),
    (("--value_coef=inf",), "value_coef"),
    (("--learning_rate=0",), "learning_rate"),
    (("--learning_rate=-3e-4",), "learning_rate"),
    (("--learning_rate=nan",), "learning_rate"),
    (("--learning_rate=inf",), "learning_rate"),
    (("--gamma=0",), "gamma"),
    (("--gamma=1.01",), "gamma"),
    (("--gamma=-0.5",), "gamma"),
    (("--gamma=nan",), "gamma"),
    (("--gae_lambda=1.5",), "gae_lambda"),
    (("--clip=0",), "clip"),
    (("--hidden_layers=[64,x]",), "hidden_layers"),
    (("--hidden_layers=[]",), "hidden_layers"),
    (("--hidden_layers=[0,32]",), "hidden_layers"),
    (("--hidden_layers=[-32]",), "hidden_layers"),
    (("--hidden_layers=32;32",), "hidden_layers"),
    (("--leg_length=5",), "leg_length"),
    (("--leg_length=500",), "leg_length"),
    (("--leg_length=-34",), "leg_length"),
    (("--leg_length=nan",), "leg_length"),
    (("--terrain_length_scale=0",), "terrain_length_scale"),
    (("--max_time_steps=0",), "max_time_steps"),
    (("--optimizer=adamw",), "optimizer"),
    (("--algorithm=dqn",), "algorithm"),
    (("--env=CartPole-v1",), "env"),
    (("--device=tpu",), "device"),
    (("--device=cuda:7",), "device"),  # not on this machine
    (("--max_grad_norm=0",), "max_grad_norm"),
    (("--action_std=0",), "action_std"),
    (("--action_std=-0.5",), "action_std"),
    ((*SCHEDULE, "--action_std_end=1.5"), "action_std_end"),
    ((*SCHEDULE, "--action_std_end=-0.1"), "action_std_end"),
    (("--action_std_start=0.8",), "action_std"),  # half a schedule
    (("--action_std=0.3", *SCHEDULE, "--action_std_end=0.5"), "action_std"),  # it would be ignored
    (("--action_std_start=inf", "--action_std_final=0.2", "--action_std_end=0.5"),
     "action_std_start"),
    (("--render=maybe",), "render"),
    (("--resume=true",), "resume"),  # nothing to resume
    (("--no_such_flag=1",), "no_such_flag"),
    ((MODEL, "--transfer_learning=freeze_some"), "transfer_learning"),
    ((MODEL, "--tl_end=0"), "tl_end"),
    ((MODEL, "--tl_end=1.5"), "tl_end"),
    ((MODEL, "--add_noise_layers=6"), "add_noise_layers"),  # the network has 5 layers
    ((MODEL, "--add_noise_layers=-1"), "add_noise_layers"),
    ((MODEL, "--add_noise_layers=2", "--add_noise_alpha=inf"), "add_noise_alpha"),
    (("--tl_end=0.5",), "initial_model"),  # a transfer flag without a model
    (("--initial_model=no_such_model",), "initial_model"),
    (("--initial_model={corrupt}",), "initial_model"),
    (("--initial_model={truncated}",), "initial_model"),
    (("--initial_model={wrong_arch}",), "initial_model"),
    (("--initial_model={nan_weights}",), "initial_model"),
    (("--results_dir={a_file}",), "results_dir"),
    (("--results_dir={a_file}/below",), "results_dir"),
    (("--models_dir={a_file}",), "models_dir"),
    (("--save_name=a/b",), "save_name"),
    (("--results_dir=",), "results_dir"),
    (("--save_name=..",), "save_name"),
    (("--save_name=../escaped",), "save_name"),
    (("--save_name=/tmp/absolute",), "save_name"),
    (("--save_name=",), "save_name"),
    # Values that used to pass validation and then crash or hang (issue 14).
    (("--save_name=" + "n" * 232,), "save_name"),  # ENAMETOOLONG for its temporary files
    (("--save_name=victim.last",), "save_name"),  # would write study victim's .last.pt
    (("--save_name=victim.LAST",), "save_name"),
    (("--hidden_layers=[100000,100000]",), "hidden_layers"),  # terabytes
    (("--terrain_length_scale=1e6",), "terrain_length_scale"),  # hangs building terrain
    (("--terrain_length_scale=1e308",), "terrain_length_scale"),
    (("--fall_penalty=1e308",), "fall_penalty"),
    (("--fall_penalty=-inf",), "fall_penalty"),
    (("--max_time_steps=1e30",), "max_time_steps"),
    (("--num_envs=1e30",), "num_envs"),
    (("--num_workers=1000", "--num_envs=1000", "--batch_size=1000"), "num_workers"),
    (("--device=cuda:99999999999999999999",), "device"),
    (("--device=cuda:128",), "device"),  # torch would read it as cuda:-128
    (("--total_frames=0.5e1", "--num_envs=8"), "total_frames"),  # less than one step
    (("--resume=true", "--overwrite=true"), "overwrite"),
    (("--overwrite=maybe",), "overwrite"),
    (("--value_coef=1e300",), "value_coef"),  # an infinite loss, blamed on the learning rate
    ((MODEL, "--add_noise_layers=2", "--add_noise_alpha=1e30"), "add_noise_alpha"),
]


@pytest.mark.parametrize("flags, named", BAD_INPUTS,
                         ids=[" ".join(flags) for flags, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
        tmp_path: Path, inputs: dict[str, Path], capfd, flags: tuple[str, ...], named: str):
    argv = tiny_flags(tmp_path / "out", *(flag.format(**inputs) for flag in flags))
    before = files_under(tmp_path)
    capfd.readouterr()
    code = cli_in_process(argv)
    stderr = capfd.readouterr().err
    assert code == 2, stderr
    line = only_line(stderr)
    assert f"--{named}" in line and "Traceback" not in stderr
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("flags, named", [(("--gamma=2",), "gamma"),
                                          (("--results_dir={a_file}",), "results_dir")])
def test_bad_input_in_a_real_process(tmp_path: Path, inputs: dict[str, Path],
                                     flags: tuple[str, ...], named: str):
    """The same contract end to end: nothing else (warnings, tracebacks) reaches stderr."""
    before = files_under(tmp_path)
    done = run_py(tiny_flags(tmp_path / "out", *(flag.format(**inputs) for flag in flags)))
    assert done.returncode == 2
    assert f"--{named}" in only_line(done.stderr) and "Traceback" not in done.stderr
    assert files_under(tmp_path) == before


# ----- unsafe files ---------------------------------------------------------------------------


class CreatesFileWhenUnpickled:
    """Unpickling calls open(marker, "w"): code execution that leaves evidence."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"actor.0.weight": CreatesFileWhenUnpickled(marker)}}, path)
    return path


def test_the_malicious_checkpoint_really_runs_code_when_unpickled_unsafely(tmp_path: Path):
    """Guards the next test: its payload must be live, or a pass would prove nothing."""
    marker = tmp_path / "proof"
    loaded = torch.load(malicious_checkpoint(tmp_path / "evil.pt", marker), weights_only=False)
    loaded["state_dict"]["actor.0.weight"].close()
    assert marker.exists()


def test_malicious_initial_model_is_refused_without_running_it(tmp_path: Path):
    marker = tmp_path / "pwned"
    evil = malicious_checkpoint(tmp_path / "evil.pt", marker)
    before = files_under(tmp_path)
    done = run_py(tiny_flags(tmp_path / "out", f"--initial_model={evil}"))
    assert done.returncode == 2, done.stderr
    line = only_line(done.stderr)
    assert "--initial_model" in line and "refused" in line and "Traceback" not in done.stderr
    assert not marker.exists()
    assert files_under(tmp_path) == before


def test_malicious_last_checkpoint_is_refused_on_resume(tmp_path: Path, capfd):
    marker = tmp_path / "pwned"
    (tmp_path / "m").mkdir()
    malicious_checkpoint(tmp_path / "m" / "tiny.last.pt", marker)
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, "--resume=true")) == 2
    line = only_line(capfd.readouterr().err)
    assert "--resume" in line and "refused" in line
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_atomic_write_leaves_the_previous_file_when_interrupted(tmp_path: Path, monkeypatch):
    path = tmp_path / "policy.pt"
    save_policy(path, ActorCritic(OBS_DIM, ACT_DIM, (8,)), {}, 1, 1.0)
    original = path.read_bytes()

    def fail(*_args):
        raise KeyboardInterrupt  # e.g. Ctrl-C between writing and renaming

    monkeypatch.setattr(common.checkpoint.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        save_policy(path, ActorCritic(OBS_DIM, ACT_DIM, (8,)), {}, 2, 2.0)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["policy.pt"]  # no temporary left behind


# ----- interrupts and resuming ----------------------------------------------------------------


def assert_no_temporaries(folder: Path) -> None:
    for directory in (folder / "m", folder / "r"):
        assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]


def load_study(folder: Path, save_name: str = "long") -> tuple[dict, dict, dict, list[str]]:
    """(best checkpoint, last checkpoint, results document, csv lines), all loaded safely."""
    best = load_checkpoint(folder / "m" / f"{save_name}.pt")
    policy_from_checkpoint(best)
    last = torch.load(folder / "m" / f"{save_name}.last.pt", weights_only=True)
    with open(folder / "r" / f"{save_name}.p", "rb") as handle:
        results = pickle.load(handle)
    lines = (folder / "r" / f"{save_name}.csv").read_text().splitlines()
    return best, last, results, lines


def run_and_interrupt(folder: Path, signum: int, *extra: str
                      ) -> tuple[subprocess.CompletedProcess[str], float]:
    """Start a long study, signal it once its first batch is done, wait for it to end.

    The signal goes to the whole process group, environment workers included, as Ctrl-C in a
    terminal or SIGTERM from systemd would send it.
    """
    args = tiny_flags(folder, "--total_frames=1e6", *extra, save_name="long")
    process = start_run_py(args)
    checkpoint = folder / "m" / "long.last.pt"  # results exist from the start
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while not checkpoint.exists():
            if process.poll() is not None:
                pytest.fail(f"study ended before it was interrupted: {process.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("no resume checkpoint within the timeout")
            time.sleep(0.05)
        sent = time.monotonic()
        os.killpg(process.pid, signum)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        stopped_after = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    done = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    return done, stopped_after


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Interrupted studies, run once per signal and shared (read-only) by the tests below."""
    studies: dict[int, tuple[Path, subprocess.CompletedProcess[str], float]] = {}

    def get(signum: int) -> tuple[Path, subprocess.CompletedProcess[str], float]:
        if signum not in studies:
            folder = tmp_path_factory.mktemp(signal.Signals(signum).name)
            # Two worker processes: they get the signal too.
            studies[signum] = (folder, *run_and_interrupt(folder, signum, "--num_envs=2",
                                                          "--num_workers=2"))
        return studies[signum]

    return get


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_study_stops_quickly_and_keeps_checkpoint_and_results(interrupted,
                                                                          signum: int):
    folder, done, stopped_after = interrupted(signum)
    assert done.returncode == 128 + signum, done.stderr
    assert "Traceback" not in done.stderr
    assert stopped_after < STOP_WITHIN_S
    assert str(folder / "r" / "long.p") in done.stdout
    assert "continue with: python run.py --save_name=long" in done.stdout

    best, last, results, csv_lines = load_study(folder)
    assert 0 < results["frames"] < 1_000_000
    episodes = results["episodes"]
    assert len(episodes["reward"]) > 0 and len(csv_lines) == len(episodes["reward"]) + 1
    assert last["frames"] <= results["frames"] and best["frames"] <= results["frames"]
    assert_no_temporaries(folder)


def test_resumed_study_continues_frames_and_results(interrupted, tmp_path: Path):
    source, _, _ = interrupted(signal.SIGINT)
    folder = tmp_path / "study"
    shutil.copytree(source, folder)
    _, last, before, _ = load_study(folder)
    saved_episodes = len(last["episodes"]["reward"])
    target = last["frames"] + 2000

    # Resumed with its two walkers stepped in the training process instead of two workers,
    # as on a machine with fewer cores: how a study runs may change, not what it is.
    done = run_py(tiny_flags(folder, f"--total_frames={target}", "--resume=true",
                             "--num_envs=2", "--num_workers=0", save_name="long"))
    assert done.returncode == 0, done.stderr

    _, _, after, csv_lines = load_study(folder)
    episodes = after["episodes"]
    assert after["frames"] == target
    assert len(episodes["reward"]) > saved_episodes > 0  # continued, not started over
    for column, values in last["episodes"].items():
        assert episodes[column][:saved_episodes] == values
        assert before["episodes"][column][:saved_episodes] == values
    assert episodes["frames"] == sorted(episodes["frames"])
    assert episodes["frames"][saved_episodes] > last["frames"]
    assert episodes["wall_time"] == sorted(episodes["wall_time"])  # the clock continues too
    assert len(csv_lines) == len(episodes["reward"]) + 1


@pytest.mark.parametrize("changed, named", [
    ("--hidden_layers=[8]", "--hidden_layers=[32,32,32,32]"),  # other network: refused by name
    ("--leg_length=30", "--leg_length=34.0"),  # other experiment: refused by name
    ("--num_envs=1", "--num_envs=2"),  # the number of walkers decides the results too
])
def test_resume_refuses_other_settings(interrupted, tmp_path: Path, capfd, changed: str,
                                       named: str):
    source, _, _ = interrupted(signal.SIGINT)
    folder = tmp_path / "study"
    shutil.copytree(source, folder)
    before = {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    capfd.readouterr()
    code = cli_in_process(tiny_flags(folder, "--resume=true", "--num_envs=2", changed,
                                     save_name="long"))
    assert code == 2
    assert named in only_line(capfd.readouterr().err)
    assert {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before


def test_an_extended_study_continues_its_noise_and_thaw_schedules(tmp_path: Path, tiny_config):
    """A finished 2,000-frame study (noise 0.8 -> 0.2 and three layers thawing over all of
    it: layer 2/3 at frame 1,000, layer 1/3 at 2,000) extended to 4,000 frames. Fractions of
    the new budget would put the noise back at 0.5 and freeze layer 1/3 again until 4,000;
    the schedules fixed in frames at the start go on: noise 0.2, every layer trains."""
    (tmp_path / "m").mkdir()
    save_policy(tmp_path / "m" / "source.pt", ActorCritic(OBS_DIM, ACT_DIM, (8, 8)),
                {"leg_length": 34.0}, 0, 0.0)
    flags = ("--quiet=false", "--initial_model=source", "--transfer_learning=freeze_then_thaw",
             "--tl_end=1", "--hidden_layers=[8,8]", "--action_std_start=0.8",
             "--action_std_final=0.2", "--action_std_end=1")
    first = run_py(tiny_flags(tmp_path, *flags))
    assert first.returncode == 0, first.stderr
    schedule_line = "layer 2 at frame 1,000, 1 at frame 2,000"
    assert schedule_line in first.stdout
    assert "thawed actor layer 1/3 at frame 2,000" in first.stdout

    extended = (*flags, "--total_frames=4000", "--resume=true")
    study = Study(tiny_config(*extended))
    study.walkers.close()
    study.tensorboard.close()
    assert study.schedules == Schedules(0.8, 0.2, 2000, (1000, 2000))
    assert all(p.requires_grad for p in study.policy.parameters())  # thawed layers stay so
    resumed = run_py(tiny_flags(tmp_path, *extended))
    assert resumed.returncode == 0, resumed.stderr
    summary = [line for line in resumed.stdout.splitlines() if line.startswith("transfer:")]
    assert any(schedule_line in line for line in summary)
    assert not any("4,000" in line for line in summary)
    assert "thawed" not in resumed.stdout
    results = load_study(tmp_path, "tiny")[2]
    assert results["frames"] == 4000 and results["schedules"]["thaw_frames"] == [1000, 2000]
    episodes = list(zip(results["episodes"]["frames"], results["episodes"]["action_std"],
                        strict=True))
    assert {std for frames, std in episodes if frames <= 1000} == {0.8}
    assert {std for frames, std in episodes if 1000 < frames <= 2000} == {0.5}
    assert {std for frames, std in episodes if frames > 2000} == {0.2}  # never back up


def test_a_checkpoint_without_schedules_resumes_with_those_of_its_budget(tmp_path: Path,
                                                                        tiny_config):
    """Checkpoints from before the schedules were saved: their schedules were fractions of
    the budget they were saved with, so that is what a resume continues."""
    train(tiny_config("--action_std_start=0.8", "--action_std_final=0.2",
                      "--action_std_end=0.5"))
    last = tmp_path / "m" / "tiny.last.pt"
    state = torch.load(last, weights_only=True)
    del state["schedules"]
    torch.save(state, last)
    study = Study(tiny_config("--action_std_start=0.8", "--action_std_final=0.2",
                                          "--action_std_end=0.5", "--total_frames=8000",
                                          "--resume=true"))
    study.walkers.close()
    study.tensorboard.close()
    assert study.schedules.action_std_end_frame == 1000  # half of 2,000, not of 8,000


def test_ctrl_c_before_training_starts_is_not_a_traceback(tmp_path: Path, monkeypatch, capfd):
    def interrupted_while_starting(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(study.trainer.Study, "__init__", interrupted_while_starting)
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path)) == 130
    assert "interrupted" in only_line(capfd.readouterr().err)


# ----- diverging training -----------------------------------------------------------------------


def nan_after_first_update(monkeypatch, train_steps: int = 4) -> None:
    """The loss turns NaN in the second update (the tiny study's train_steps = 4, of one
    gradient shard each)."""
    real_shard = ppo.gradient.shard_gradient
    calls = []

    def flaky_shard(*args, **kwargs):
        calls.append(1)
        policy_loss, value_loss, log_ratio = real_shard(*args, **kwargs)
        return (policy_loss if len(calls) <= train_steps else math.nan), value_loss, log_ratio

    monkeypatch.setattr(ppo.gradient, "shard_gradient", flaky_shard)


def assert_first_update_kept(folder: Path) -> None:
    best, last, results, _ = load_study(folder, "tiny")
    assert last["frames"] == 1000 and results["frames"] == 1000
    for checkpoint in (best, last):
        assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values())


def test_nan_loss_raises_and_keeps_the_last_good_files(tmp_path: Path, tiny_config,
                                                       monkeypatch):
    nan_after_first_update(monkeypatch)
    with pytest.raises(StudyDiverged, match="nan"):
        train(tiny_config("--total_frames=3000"))
    assert_first_update_kept(tmp_path)


def test_run_py_reports_a_nan_loss_in_one_line_and_exits_1(tmp_path: Path, monkeypatch, capfd):
    nan_after_first_update(monkeypatch)
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path, "--total_frames=3000"))
    assert code == 1
    line = only_line(capfd.readouterr().err)
    assert "training stopped" in line and "nan" in line and "--learning_rate" in line
    assert_first_update_kept(tmp_path)


def test_an_infinite_gradient_stops_before_the_weights_are_touched(tmp_path: Path, tiny_config,
                                                                   monkeypatch):
    """A finite loss whose gradient overflows float32: 1e38 per weight."""
    real_shard = ppo.gradient.shard_gradient

    def overflowing_shard(*args, **kwargs):
        losses = real_shard(*args, **kwargs)
        args[-1][:] = 1e38  # the shard's gradient
        return losses

    monkeypatch.setattr(ppo.gradient, "shard_gradient", overflowing_shard)
    with pytest.raises(StudyDiverged, match="gradient"):
        train(tiny_config("--total_frames=1000"))
    best = load_checkpoint(tmp_path / "m" / "tiny.pt")  # saved before the update
    assert all(torch.isfinite(t).all() for t in best["state_dict"].values())

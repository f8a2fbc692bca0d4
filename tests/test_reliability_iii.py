"""Reliability III (issue #26): studies stopped before their first checkpoint, checkpoints
with malformed metadata or flipped bits, sweeps sharing a folder, analysis edge cases."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    SUBPROCESS_TIMEOUT_S,
    cli_in_process,
    files_under,
    only_line,
    start_run_py,
    study_results,
    tiny_flags,
)

from common.checkpoint import load_checkpoint
from common.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "trained_models" / "leg_34_trained.pt"


def with_metadata(path: Path, **changes) -> Path:
    """A copy of the shipped policy at `path` with top-level or `env` entries replaced."""
    checkpoint = torch.load(SHIPPED, weights_only=True)
    env = dict(checkpoint["env"])
    env.update(changes.pop("env", {}))
    checkpoint.update(changes, env=env)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    return path


# ----- 2. malformed metadata ------------------------------------------------------------------

MALFORMED = {
    "range as text": {"env": {"design_ranges": {"leg_length": "24:46"}}},
    "length as text": {"env": {"leg_length": "34"}},
    "inputs as list": {"env": {"design_inputs": [24.0, 46.0]}},
    "range of three": {"env": {"design_inputs": {"leg_length": [24.0, 30.0, 46.0]}}},
    "unknown parameter": {"env": {"design_ranges": {"arm_length": [1.0, 2.0]}}},
    "steps as float": {"env": {"max_time_steps": 1500.5}},
    "length out of range": {"env": {"leg_length": 1e9}},
    "nan length": {"env": {"leg_length": float("nan")}},
    "bool penalty": {"env": {"fall_penalty": True}},
    "foreign walker": {"env": {"env": "CartPole-v1"}},
    "env as text": {"env": "leg 34"},
    "frames as text": {"frames": "2990000"},
    "score as text": {"score": "good"},
    "versions as list": {"versions": ["2.0"]},
    "format from the future": {"format_version": 99},
}


def malformed(path: Path, case: str) -> Path:
    changes = dict(MALFORMED[case])
    if isinstance(changes.get("env"), str):
        checkpoint = torch.load(SHIPPED, weights_only=True)
        checkpoint["env"] = changes["env"]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(checkpoint, path)
        return path
    return with_metadata(path, **changes)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_metadata_is_refused_when_loading(tmp_path: Path, case: str):
    path = malformed(tmp_path / "bad.pt", case)
    with pytest.raises(UsageError, match="--initial_model: .*bad.pt: "):
        load_checkpoint(path, "initial_model")


def test_the_shipped_policies_pass_the_metadata_checks():
    for path in (REPO / "trained_models").glob("*.pt"):
        load_checkpoint(path, "initial_model")


@pytest.mark.parametrize("case", ["range as text", "length as text"])
@pytest.mark.parametrize("mode", ["evaluate", "fine-tune"])
def test_malformed_metadata_is_one_line_in_evaluation_and_fine_tuning(
        tmp_path: Path, capfd, case: str, mode: str):
    path = malformed(tmp_path / "in" / "bad.pt", case)
    extra = ["--eval_episodes=1"] if mode == "evaluate" else []
    before = files_under(tmp_path)
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path / "out", f"--initial_model={path}", *extra))
    stderr = capfd.readouterr().err
    assert code == 2, stderr
    assert "bad.pt" in only_line(stderr) and "Traceback" not in stderr
    assert files_under(tmp_path) == before


def test_list_models_lists_a_malformed_file_as_unreadable_and_goes_on(tmp_path: Path, capfd):
    models = tmp_path / "m"
    malformed(models / "a_bad.pt", "range as text")
    shutil.copy(SHIPPED, models / "b_good.pt")
    capfd.readouterr()
    assert cli_in_process([f"--models_dir={models}", "--list_models"]) == 0
    out = capfd.readouterr().out
    bad_line = next(line for line in out.splitlines() if "a_bad.pt" in line)
    assert "unreadable" in bad_line and "design_ranges" in bad_line
    assert any("b_good.pt" in line and "leg_length 34" in line for line in out.splitlines())


def test_auto_skips_a_malformed_file_and_says_so(tmp_path: Path, capfd):
    models = tmp_path / "m"
    malformed(models / "a_bad.pt", "length as text")
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path, "--initial_model=auto", "--eval_episodes=1"))
    out, err = capfd.readouterr()
    assert code == 0, err
    assert any("skipped" in line and "a_bad.pt" in line for line in out.splitlines()), out


# ----- 3. flipped bits ------------------------------------------------------------------------


def test_every_bit_flip_in_a_checkpoint_is_refused_or_changes_nothing(tmp_path: Path):
    """The archive's CRC32s are checked before torch reads it: a flip either makes loading a
    one-line UsageError or (in bytes nothing reads: timestamps, padding) loads the same."""
    original = load_checkpoint(SHIPPED)
    data = SHIPPED.read_bytes()
    rng = random.Random(26)
    positions = rng.sample(range(len(data)), 300)
    refused = 0
    for position in positions:
        flipped = bytearray(data)
        flipped[position] ^= 1 << rng.randrange(8)
        copy = tmp_path / "flipped.pt"
        copy.write_bytes(bytes(flipped))
        try:
            loaded = load_checkpoint(copy, "initial_model")
        except UsageError as error:
            assert "\n" not in str(error)
            refused += 1
            continue
        assert loaded.keys() == original.keys(), position
        for key, value in original.items():
            if key == "state_dict":
                assert all(torch.equal(value[name], loaded[key][name]) for name in value)
            else:
                assert loaded[key] == value, (position, key)
    assert refused > 250  # nearly every byte of the file is read and checked


def test_a_flipped_weight_is_refused_by_evaluation(tmp_path: Path, capfd):
    import zipfile

    with zipfile.ZipFile(SHIPPED) as archive:
        member = archive.getinfo("archive/data/3")
    data = bytearray(SHIPPED.read_bytes())
    header = member.header_offset
    name_length = int.from_bytes(data[header + 26:header + 28], "little")
    extra_length = int.from_bytes(data[header + 28:header + 30], "little")
    data[header + 30 + name_length + extra_length + 100] ^= 0x04  # a bit of a weight
    copy = tmp_path / "in" / "flipped.pt"
    copy.parent.mkdir()
    copy.write_bytes(bytes(data))
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path / "out", f"--initial_model={copy}",
                                     "--eval_episodes=1"))
    line = only_line(capfd.readouterr().err)
    assert code == 2 and "checksum" in line and "flipped.pt" in line


# ----- 1. a study stopped during its first batch ----------------------------------------------


@pytest.fixture(scope="module")
def stopped_in_first_batch(tmp_path_factory) -> Path:
    """A study SIGTERMed a second into its first (long) batch: results, no checkpoint."""
    folder = tmp_path_factory.mktemp("first_batch")
    process = start_run_py(tiny_flags(folder, "--total_frames=1e6", "--batch_size=200000",
                                      "--minibatch_size=1000"))
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S
    try:
        while not (folder / "runs" / "tiny").is_dir():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, stderr
    assert (folder / "r" / "tiny.p").exists() and not (folder / "m" / "tiny.last.pt").exists()
    assert not (folder / "m" / "tiny.pt").exists()  # no untrained policy left behind
    return folder


@pytest.mark.parametrize("extra", [(), ("--resume=true",)], ids=["plain", "resume"])
def test_a_study_stopped_before_its_first_checkpoint_starts_afresh(
        stopped_in_first_batch: Path, tmp_path: Path, capfd, extra: tuple[str, ...]):
    folder = tmp_path / "study"
    shutil.copytree(stopped_in_first_batch, folder)
    old_events = set((folder / "runs" / "tiny").iterdir())
    capfd.readouterr()
    code = cli_in_process(tiny_flags(folder, *extra))
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "afresh" in out
    results = study_results(folder)
    assert results["frames"] == 2000 and (folder / "m" / "tiny.last.pt").exists()
    new_events = set((folder / "runs" / "tiny").iterdir())
    assert new_events and not old_events & new_events  # replaced


def test_a_policy_without_a_checkpoint_is_still_not_replaced(tmp_path: Path, capfd):
    """The shipped models have no `.last.pt`: a study of their name must not replace them."""
    (tmp_path / "m").mkdir()
    shutil.copy(SHIPPED, tmp_path / "m" / "tiny.pt")
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path)) == 2
    assert "--overwrite=true" in only_line(capfd.readouterr().err)
    assert (tmp_path / "m" / "tiny.pt").read_bytes() == SHIPPED.read_bytes()


# ----- 4. the study's TensorBoard folder ------------------------------------------------------


def test_a_file_where_the_studys_tensorboard_folder_goes_is_bad_input(tmp_path: Path, capfd):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "tiny").write_text("not a folder")
    before = files_under(tmp_path)
    capfd.readouterr()
    assert cli_in_process(tiny_flags(tmp_path)) == 2
    line = only_line(capfd.readouterr().err)
    assert line.startswith("run.py: error: --tensorboard: ") and "runs/tiny" in line
    assert files_under(tmp_path) == before


# ----- 7. smaller ones ------------------------------------------------------------------------


def test_record_to_an_unwritable_path_is_bad_input_before_any_episode(tmp_path: Path, capfd):
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path, "--initial_model=leg_34_trained",
                                     "--record=/proc/walk.gif"))
    out, err = capfd.readouterr()
    assert code == 2 and only_line(err).startswith("run.py: error: --record: ")
    assert "episode" not in out


def test_resuming_with_a_smaller_budget_than_done_is_refused(tmp_path: Path, capfd):
    assert cli_in_process(tiny_flags(tmp_path)) == 0
    capfd.readouterr()
    code = cli_in_process(tiny_flags(tmp_path, "--resume=true", "--total_frames=1000"))
    line = only_line(capfd.readouterr().err)
    assert code == 2 and "--total_frames" in line and "2,000" in line


def test_a_resumed_studys_banner_does_not_say_it_loaded_its_source_again(tmp_path: Path,
                                                                         capfd):
    flags = ("--initial_model=leg_34_trained", "--quiet=false")
    assert cli_in_process(tiny_flags(tmp_path, *flags)) == 0
    assert "transfer: loaded" in capfd.readouterr().out
    assert cli_in_process(tiny_flags(tmp_path, *flags, "--resume=true",
                                     "--total_frames=3000")) == 0
    out = capfd.readouterr().out
    assert "resumed at 2,000 frames" in out and "transfer: loaded" not in out


def test_a_single_point_range_may_be_evaluated(tmp_path: Path, capfd):
    code = cli_in_process(tiny_flags(tmp_path, "--initial_model=leg_34_trained",
                                     "--leg_length=30:30", "--eval_episodes=1"))
    assert code == 0, capfd.readouterr().err


def test_one_policy_evaluated_on_many_bodies_keeps_one_report_per_body(tmp_path: Path, capfd):
    """No --save_name or --overwrite per body: each report is named after the policy and the
    walker's settings that are not the defaults (the tiny budget's max_time_steps among them)."""
    def evaluate(*extra: str) -> int:
        return cli_in_process(tiny_flags(tmp_path, "--initial_model=leg_34_trained",
                                         "--eval_episodes=1", *extra, save_name="")[1:])

    assert evaluate("--leg_length=34") == 0
    out = capfd.readouterr().out
    assert "(one episode: no interval)" in out and "interval of the mean" not in out
    default_leg = tmp_path / "r" / "leg_34_trained_on_max_time_steps200_eval.json"
    first = default_leg.read_bytes()
    assert evaluate("--leg_length=34", "--seed=5") == 0  # a rerun replaces its own report
    assert default_leg.read_bytes() != first
    assert evaluate("--leg_length=30") == 0
    leg_30 = tmp_path / "r" / "leg_34_trained_on_leg_length30_max_time_steps200_eval.json"
    assert json.loads(leg_30.read_text())["env"]["leg_length"] == 30
    assert json.loads(default_leg.read_text())["env"]["leg_length"] == 34  # not lost

    # A name the user chose still refuses to replace another walker's report, unless told.
    assert evaluate("--leg_length=34", "--save_name=mine") == 0
    capfd.readouterr()
    assert evaluate("--leg_length=30", "--save_name=mine") == 2
    assert "--overwrite" in only_line(capfd.readouterr().err)
    assert evaluate("--leg_length=30", "--save_name=mine", "--overwrite=true") == 0


# ----- 5. sweeps ------------------------------------------------------------------------------


def sweep_plan(tmp_path: Path, *args: str):
    import sweep

    return sweep.sweep_from_args(sweep.build_parser().parse_args(
        ["--name=t", *args, f"--models_dir={tmp_path / 'm'}", f"--results_dir={tmp_path / 'r'}",
         f"--tensorboard={tmp_path / 'runs'}"]))


def test_a_range_written_two_ways_is_one_study_name(tmp_path: Path):
    from sweeps.grid import SweepError

    names = [sweep_plan(tmp_path, f"--grid=leg_length={value}").studies[0].save_name
             for value in ("24:46", "24.0:46.0", "24.00:4.6e1")]
    assert names == ["t__leg24-46"] * 3
    with pytest.raises(SweepError, match="same study name"):
        sweep_plan(tmp_path, "--grid=leg_length=24:46,24.0:46.0")


def test_an_evaluation_report_of_another_policy_does_not_count_as_done(tmp_path: Path, capfd):
    from sweeps import state

    flags = ("--grid=leg_length=30", "--fixed=eval_episodes=1", "--fixed=max_time_steps=50",
             "--fixed=initial_model=leg_34_trained")
    plan = sweep_plan(tmp_path, *flags)
    study = plan.studies[0]
    # The same evaluation, written by run.py itself: done.
    assert cli_in_process(state.study_argv(study, plan.paths, 1)) == 0
    assert state.prepare(plan) == [] and study.status == "skipped"
    # The same save_name evaluated with another policy: not done.
    other = sweep_plan(tmp_path, *flags[:3], "--fixed=initial_model=universal_24_46")
    assert state.prepare(other) == []
    assert other.studies[0].status == "conflict"
    assert "another policy" in other.studies[0].error


def test_a_second_sweep_on_the_same_folder_is_refused_and_touches_nothing(tmp_path: Path, capfd):
    import sweep

    args = ["--name=t", "--grid=seed=1", f"--models_dir={tmp_path / 'm'}",
            f"--results_dir={tmp_path / 'r'}", f"--tensorboard={tmp_path / 'runs'}"]
    with sweep.sweep_lock(sweep_plan(tmp_path, "--grid=seed=1")):
        before = files_under(tmp_path)
        capfd.readouterr()
        assert sweep.cli(args) == 2
        line = only_line(capfd.readouterr().err)
        assert line.startswith("sweep.py: error: --name: sweep t is already running")
        assert f"PID {os.getpid()}" in line
        assert files_under(tmp_path) == before  # no manifest written


def test_sweep_py_reports_an_unknown_flag_in_one_line(capfd):
    import sweep

    with pytest.raises(SystemExit) as exit_info:
        sweep.cli(["--name=t", "--grid=seed=1", "--bogus=1"])
    assert exit_info.value.code == 2
    assert "--bogus" in only_line(capfd.readouterr().err)


def test_sweep_py_stopped_by_sigterm_exits_143_as_run_py_does():
    from common.errors import interrupt_exit_status
    from sweeps import execution

    with pytest.raises(KeyboardInterrupt) as stop:
        execution.interrupt(signal.SIGTERM, None)
    assert interrupt_exit_status(stop.value) == 143


# ----- 6. analyze.py --------------------------------------------------------------------------


def test_analyze_writes_into_results_by_default_not_docs():
    import analyze

    assert analyze.build_parser().parse_args([]).out == "results"


def test_analyze_out_naming_a_file_is_one_line(tmp_path: Path, capfd):
    from test_analyze import write_synthetic

    import analyze

    write_synthetic(tmp_path / "r")
    (tmp_path / "taken").write_text("a file")
    capfd.readouterr()
    assert analyze.cli([str(tmp_path / "r" / "*.p"), "--out", str(tmp_path / "taken")]) == 2
    assert "--out" in only_line(capfd.readouterr().err)


@pytest.mark.parametrize("rewards", [[0, float("inf"), 0, 0], [float("nan")] * 4],
                         ids=["one inf", "all nan"])
def test_non_finite_rewards_are_bad_input(tmp_path: Path, capfd, rewards):
    from test_analyze import FRAMES, config, write_results

    import analyze

    write_results(tmp_path / "r", config("scratch", 1), FRAMES, rewards)
    capfd.readouterr()
    code = analyze.cli([str(tmp_path / "r" / "*.p"), "--out", str(tmp_path / "out")])
    out, err = capfd.readouterr()
    assert code == 2 and "not finite" in only_line(err)
    assert "frames to" not in out and not (tmp_path / "out").exists()


BLOCK_EXTRAS = ("import sys; [sys.modules.__setitem__(name, None) for name in "
                "('scipy', 'matplotlib', 'ray')]; import analyze; "
                "sys.exit(analyze.cli(sys.argv[1:]))")


def test_analyze_without_the_extras_says_what_to_install(tmp_path: Path):
    import subprocess
    import sys

    from test_analyze import write_synthetic

    def analyze_without_extras(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", BLOCK_EXTRAS, *args], cwd=REPO,
                              capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)

    shown = analyze_without_extras("--help")
    assert shown.returncode == 0 and "--out" in shown.stdout, shown.stderr
    write_synthetic(tmp_path / "r")
    done = analyze_without_extras(str(tmp_path / "r" / "*.p"), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "pip install -r requirements-extra.txt" in only_line(done.stderr)

"""Per-update diagnostics against hand-computed cases, their files, and the TensorBoard events
(read back with TensorBoard's own event accumulator)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_py, study_results, tiny_flags

from ppo import algorithm
from ppo.diagnostics import (
    UPDATE_COLUMNS,
    LossTerms,
    UpdateDiagnostics,
    UpdateLog,
    approx_kl,
    clip_fraction,
    explained_variance,
)
from study.evaluations import TENSORBOARD_TAGS as EVALUATION_TAGS
from study.tensorboard_log import EPISODE_TAGS, UPDATE_TAGS
from study.trainer import Study, train, walker_seeds

CLEANRL_TAGS = {"charts/episodic_return", "charts/episodic_length", "charts/SPS",
                "charts/action_std", "charts/learning_rate", "losses/policy_loss",
                "losses/value_loss", "losses/approx_kl", "losses/clipfrac",
                "losses/explained_variance", "losses/grad_norm",
                # Issue 25: the evaluations during training (one at the end of a tiny study).
                "eval/mean_return", "eval/std_return", "eval/fall_rate", "eval/finish_rate",
                "eval/mean_length"}
"""The keys issues 16 and 25 ask for, written out here rather than read from the module."""


def event_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] read with TensorBoard's (legacy) event accumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep all
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def served_steps(folder: Path) -> dict[str, list[int]]:
    """tag -> steps, read as `tensorboard` itself reads a run (its plugin accumulator)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    return {tag: [event.step for event in accumulator.Tensors(tag)]
            for tag in accumulator.Tags()["tensors"]}


# ----- the formulas ----------------------------------------------------------------------------


def test_approx_kl_is_the_mean_of_ratio_minus_one_minus_log_ratio():
    log_ratio = torch.log(torch.tensor([2.0, 0.5]))
    # ((2 - 1) - ln 2 + (0.5 - 1) - ln 0.5) / 2 = (1 - 0.5) / 2: the logarithms cancel.
    assert approx_kl(log_ratio).item() == pytest.approx(0.25)
    assert approx_kl(torch.zeros(7)).item() == 0.0
    assert approx_kl(torch.tensor([1e-4, -1e-4])).item() > 0  # never negative, even near 0


def test_clip_fraction_counts_ratios_outside_the_clip_range():
    ratios = torch.tensor([1.0, 1.1, 1.3, 0.7, 0.85, 1.19, 0.5, 1.0])
    # Outside [0.8, 1.2]: 1.3, 0.7 and 0.5.
    assert clip_fraction(torch.log(ratios), clip=0.2).item() == pytest.approx(3 / 8)
    assert clip_fraction(torch.zeros(5), clip=0.2).item() == 0.0


def test_explained_variance_hand_computed_cases():
    targets = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(targets.clone(), targets).item() == 1.0  # perfect predictions
    assert explained_variance(torch.full((4,), 2.5), targets).item() == pytest.approx(0.0)
    # Residuals (0, 0, 0, -1): variance 0.25 against the targets' 5/3, so 1 - 0.15.
    predicted = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert explained_variance(predicted, targets).item() == pytest.approx(0.85)
    assert explained_variance(-targets, targets).item() < 0  # worse than a constant
    assert math.isnan(explained_variance(targets, torch.ones(4)).item())  # nothing to explain


def test_update_diagnostics_average_over_minibatches():
    diagnostics = UpdateDiagnostics(clip=0.2)
    for policy_loss, value_loss, ratio, grad_norm in ((0.5, 2.0, 1.0, 3.0),
                                                      (-0.1, 1.0, 1.5, 1.0)):
        terms = LossTerms(torch.tensor(policy_loss + value_loss), torch.tensor(policy_loss),
                          torch.tensor(value_loss), torch.log(torch.full((4,), ratio)))
        diagnostics.add(terms, torch.tensor(grad_norm))
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    summary = diagnostics.summary(values=returns, returns=returns)
    assert summary == pytest.approx({
        "policy_loss": 0.2, "value_loss": 1.5, "grad_norm": 2.0,
        "approx_kl": (0.0 + (0.5 - math.log(1.5))) / 2,
        "clip_fraction": (0.0 + 1.0) / 2,  # every ratio of the second is 1.5 > 1.2
        "explained_variance": 1.0,
    })


def test_the_first_minibatch_of_an_update_has_no_kl_and_no_clipping(tiny_config):
    """Before the update's first step the policy is the one that collected the batch: the
    ratios are 1 up to rounding (the rollout computes its log-probabilities in NumPy)."""
    config = tiny_config("--train_steps=1")
    study = Study(config)
    try:
        study.walkers.reset(walker_seeds(config.seed, config.num_envs))
        collected = algorithm.collect_rollout(study.learner, study.walkers, config.action_std,
                                              study.count_step)
        assert collected is not None
        batch = algorithm.advantages_and_returns(study.learner.buffer, config.gamma,
                                                 config.gae_lambda)
        diagnostics = algorithm.update(study.learner, batch, config.action_std)
    finally:
        study.walkers.close()
        study.tensorboard.close()
    assert diagnostics["approx_kl"] == pytest.approx(0.0, abs=1e-9)
    assert diagnostics["clip_fraction"] == 0.0
    assert diagnostics["grad_norm"] > 0 and diagnostics["value_loss"] > 0
    # The critic's values at collection time are the returns less the advantages.
    expected = 1 - np.var(batch.advantages, ddof=1) / np.var(batch.returns, ddof=1)
    assert diagnostics["explained_variance"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert diagnostics["explained_variance"] < 1  # an untrained critic does not predict them


def test_update_log_round_trips_its_columns_and_refuses_incomplete_rows():
    log = UpdateLog()
    log.add({name: float(i) for i, name in enumerate(UPDATE_COLUMNS)})
    restored = UpdateLog(log.columns)
    assert len(restored) == 1 and restored.last() == log.last()
    with pytest.raises(KeyError, match="frames_per_s"):
        log.add({name: 0.0 for name in UPDATE_COLUMNS if name != "frames_per_s"})
    header, row = list(csv.reader(log.to_csv().splitlines()))
    assert header == list(UPDATE_COLUMNS) and [float(v) for v in row] == list(range(10))


# ----- a whole study: header, files, events ------------------------------------------------------


def test_a_tiny_study_announces_itself_and_records_every_update(tmp_path: Path):
    done = run_py(tiny_flags(tmp_path, "--quiet=false", "--learning_rate=1e-3"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The header comes before the first batch's progress line.
    first_progress = next(i for i, line in enumerate(lines) if line.startswith("frames "))
    header = "\n".join(lines[:first_progress])
    assert lines[0] == "study tiny: 2,000 frames from scratch, seed 1, 1 walker stepped in " \
                       "this process"
    assert "walker: leg_length 34, leg_width 8, motor_torque 80; terrain_length_scale 2, " \
           "fall_penalty -50, max_time_steps 200" in header
    assert f"files: {tmp_path / 'm' / 'tiny.pt'}" in header and "_updates.csv" in header
    assert f"tensorboard: {tmp_path / 'runs' / 'tiny'}" in header
    assert "resumed" not in done.stdout

    updates = study_results(tmp_path)["updates"]
    assert tuple(updates) == UPDATE_COLUMNS
    assert all(len(values) == 2 for values in updates.values())
    assert updates["frames"] == [1000, 2000]
    assert updates["learning_rate"] == [1e-3, 1e-3] and updates["action_std"] == [0.5, 0.5]
    assert all(rate > 0 for rate in updates["frames_per_s"])
    assert all(norm > 0 for norm in updates["grad_norm"])
    assert all(0 <= kl < 0.5 for kl in updates["approx_kl"])
    assert all(0 <= fraction <= 1 for fraction in updates["clip_fraction"])
    assert all(value <= 1 for value in updates["explained_variance"])
    with open(tmp_path / "r" / "tiny_updates.csv", newline="") as handle:
        header_row, *rows = list(csv.reader(handle))
    assert header_row == list(UPDATE_COLUMNS)
    assert [[float(v) for v in row] for row in rows] == [
        [float(updates[name][i]) for name in UPDATE_COLUMNS] for i in range(2)]

    scalars = event_scalars(tmp_path / "runs" / "tiny")
    assert set(scalars) == CLEANRL_TAGS
    assert set(EPISODE_TAGS.values()) | set(UPDATE_TAGS.values()) \
        | set(EVALUATION_TAGS.values()) == CLEANRL_TAGS
    episodes = study_results(tmp_path)["episodes"]
    assert [step for step, _ in scalars["charts/episodic_return"]] == episodes["frames"]
    assert [value for _, value in scalars["charts/episodic_return"]] == pytest.approx(
        episodes["reward"], rel=1e-6)
    for column, tag in UPDATE_TAGS.items():
        assert [step for step, _ in scalars[tag]] == [1000, 2000], tag
        assert [value for _, value in scalars[tag]] == pytest.approx(updates[column],
                                                                     rel=1e-6), tag


def test_a_resumed_study_continues_its_curves_without_duplicated_steps(tmp_path: Path):
    """Events are written after each batch's checkpoint, so a resumed study starts exactly
    where its curves stop. Checked as `tensorboard` reads the run."""
    first = run_py(tiny_flags(tmp_path, "--total_frames=1000"))
    assert first.returncode == 0, first.stderr
    resumed = run_py(tiny_flags(tmp_path, "--total_frames=2000", "--resume", "--quiet=false"))
    assert resumed.returncode == 0, resumed.stderr
    assert (f"resumed at 1,000 frames of 2,000 (extended from 1,000 by --total_frames) from "
            f"{tmp_path / 'm' / 'tiny.last.pt'}" in resumed.stdout)

    results = study_results(tmp_path)
    assert results["updates"]["frames"] == [1000, 2000]
    assert len(list((tmp_path / "runs" / "tiny").iterdir())) == 2, "one events file per run"
    steps = served_steps(tmp_path / "runs" / "tiny")
    assert set(steps) == CLEANRL_TAGS
    for tag in UPDATE_TAGS.values():
        assert steps[tag] == [1000, 2000], tag
    for tag in EPISODE_TAGS.values():
        assert steps[tag] == results["episodes"]["frames"], "every episode once, in order"


def test_a_resumed_writer_supersedes_what_was_logged_after_the_checkpoint(tmp_path: Path):
    """The safety net beside writing after checkpoints: a resumed study's writer marks the
    steps after its checkpoint as superseded (`purge_step`). TensorBoard's event accumulator
    honours that; the `tensorboard` 2.21 server does not (see README)."""
    from torch.utils.tensorboard import SummaryWriter

    from study.tensorboard_log import TensorBoardLog

    folder = tmp_path / "runs" / "tiny"
    with SummaryWriter(str(folder)) as earlier_run:
        for step, value in ((1000, 1.0), (1001, 9.0), (1500, 9.0)):
            earlier_run.add_scalar("losses/approx_kl", value, step)
    resumed = TensorBoardLog(folder, frames=1000, episodes=0)
    resumed.writer.add_scalar("losses/approx_kl", 2.0, 2000)
    resumed.close()
    assert event_scalars(folder)["losses/approx_kl"] == [(1000, 1.0), (2000, 2.0)]


def test_tensorboard_none_writes_no_events_but_keeps_the_diagnostics(tmp_path: Path,
                                                                     tiny_config):
    outcome = train(tiny_config("--tensorboard=none", "--total_frames=1000"))
    assert outcome.frames == 1000
    assert not (tmp_path / "runs").exists()
    assert study_results(tmp_path)["updates"]["frames"] == [1000]


def test_an_unwritable_tensorboard_folder_is_refused_before_anything_is_written(
        tmp_path: Path):
    (tmp_path / "a_file").write_text("")
    done = run_py(tiny_flags(tmp_path, f"--tensorboard={tmp_path / 'a_file'}"))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("run.py: error: --tensorboard:")
    assert "\n" not in done.stderr.strip() and not (tmp_path / "r").exists()

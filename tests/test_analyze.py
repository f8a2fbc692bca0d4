"""analyze.py on synthetic results files whose metrics are computed by hand below."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

import analyze
from analysis.data import (
    Evaluation,
    experiment_settings,
    export,
    group_studies,
    load_export,
    load_inputs,
    strategy_of,
    walker_values,
)
from analysis.metrics import (
    Settings,
    compare,
    frame_grid,
    on_grid,
    panel_metrics,
    panels,
    running_average,
)
from analysis.report import metrics_table
from analysis.stats import Bootstrap, interquartile_mean, probability_of_improvement
from analysis.zero_shot import matrix, zero_shot_lines

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Every synthetic study ends episodes at frames 250, 500, 750, 1000 (budget 1000). With a window
# of 2 episodes, a grid of 4 points (250, 500, 750, 1000), the first 2 episodes for the initial
# reward, the last 25% of frames (episodes ending after 750) for the asymptote:
#
#   group       seed  rewards              running avg (= curve)  initial  asym  AUC     to 200
#   scratch     1     0   100 200 300      0   50  150 250         50      300   112.5   1000
#   scratch     2     0   200 200 300      0   100 200 250         100     300   137.5   750
#   initialize  1     200 200 300 300      200 200 250 300         200     300   237.5   500
#   initialize  2     100 300 300 300      100 200 300 300         200     300   225.0   500
#
# Group means: scratch initial 75, AUC 125, frames to 200 875; initialize initial 200, AUC 231.25,
# frames to 200 500 (a full window of 2 episodes is needed: not 250). Jumpstart 200 - 75 = 125.
# Lowest curve point 0, so the transfer ratio is 231.25 / 125 = 1.85; speedup to threshold
# 875 / 500 = 1.75.
FRAMES = [250, 500, 750, 1000]
REWARDS = {
    ("scratch", 1): [0, 100, 200, 300],
    ("scratch", 2): [0, 200, 200, 300],
    ("initialize", 1): [200, 200, 300, 300],
    ("initialize", 2): [100, 300, 300, 300],
}
SETTINGS = Settings(window=2, jumpstart_episodes=2, asymptote_fraction=0.25, threshold=200,
                    points=4)
SETTINGS_FLAGS = ["--window=2", "--jumpstart_episodes=2", "--asymptote_fraction=0.25",
                  "--threshold=200", "--points=4", "--resamples=2000"]


def config(strategy: str, seed: int, leg_length: float = 30.0, **changes) -> dict:
    """A results file's config as the trainer writes it (all flags, tuples as lists)."""
    transfer = strategy != "scratch"
    base = {
        "save_name": f"syn__leg{leg_length:g}__{strategy}__seed{seed}", "total_frames": 1000,
        "render": False, "record": "", "eval_episodes": 0, "leg_length": leg_length,
        "hidden_layers": [32, 32, 32, 32], "learning_rate": 3e-4, "batch_size": 250,
        "initial_model": "leg_34_trained" if transfer else "none",
        "transfer_learning": strategy if transfer else "none", "tl_end": 0.25,
        "reset_final_layer": False, "add_noise_layers": 0, "add_noise_alpha": 1.0,
        "seed": seed, "num_envs": 1, "quiet": True, "resume": False,
        "models_dir": "/somewhere/m", "results_dir": "/somewhere/r",
    }
    return {**base, **changes}


def write_results(folder: Path, config: dict, frames: list[int], rewards: list[float],
                  frames_run: int | None = None) -> Path:
    """A results pickle in the trainer's format."""
    count = len(rewards)
    results = {
        "config": config, "frames": frames[-1] if frames_run is None else frames_run,
        "best_score": float("-inf"), "wall_time": 1.0, "transfer": "",
        "episodes": {"frames": list(frames), "length": [250] * count, "reward": list(rewards),
                     "wall_time": [0.1 * i for i in range(count)], "action_std": [0.5] * count},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config['save_name']}.p"
    path.write_bytes(pickle.dumps(results))
    return path


def write_synthetic(folder: Path) -> list[Path]:
    return [write_results(folder, config(strategy, seed), FRAMES, rewards)
            for (strategy, seed), rewards in REWARDS.items()]


def write_evaluation(folder: Path, trained_leg: float, leg: float, returns: list[float],
                     fell: list[bool]) -> Path:
    """An evaluation report in the format `run.py --eval_episodes=N` writes."""
    name = f"zs_{trained_leg:g}_on_{leg:g}"
    report = {
        "save_name": name, "policy": f"/models/leg_{trained_leg:g}_trained.pt",
        "policy_env": {"env": "Bipedal_Custom_Leg_Length-v0", "leg_length": trained_leg},
        "policy_frames": 1000,
        "env": {"env": "Bipedal_Custom_Leg_Length-v0", "leg_length": leg},
        "seed": 1, "deterministic": True,
        "summary": {"episodes": len(returns), "mean_return": float(np.mean(returns))},
        "episodes": [{"seed": 1 + i, "return": r, "length": 100, "fell": f,
                      "outcome": "fell" if f else "time limit"}
                     for i, (r, f) in enumerate(zip(returns, fell, strict=True))],
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_eval.json"
    path.write_text(json.dumps(report))
    return path


def rows_of(folder: Path, settings: Settings = SETTINGS):
    studies, _ = load_inputs([str(folder / "*.p")])
    groups = group_studies(studies)
    bootstrap = Bootstrap(resamples=2000, seed=0)
    return [row for members in panels(groups)
            for row in compare(panel_metrics(members, settings), settings, bootstrap)]


# ----- the pieces ----------------------------------------------------------------------------


def test_running_average_is_trailing_and_short_at_the_start():
    assert running_average(np.array([0, 100, 200, 300]), 2).tolist() == [0, 50, 150, 250]
    assert running_average(np.array([3, 6, 9]), 10).tolist() == [3, 4.5, 6]


def test_on_grid_holds_the_last_value_and_backfills_before_the_first_episode():
    frames = np.array([300, 400, 900])
    values = np.array([1.0, 2.0, 3.0])
    grid = frame_grid(1000, 5)  # 200, 400, 600, 800, 1000
    assert grid.tolist() == [200, 400, 600, 800, 1000]
    assert on_grid(frames, values, grid).tolist() == [1.0, 2.0, 2.0, 2.0, 3.0]


def test_interquartile_mean_is_rliables_trimmed_mean():
    values = np.array([100.0, 1, 2, 3, 4, 5, 6, 7])  # the 2 lowest and 2 highest are cut
    assert interquartile_mean(values) == pytest.approx(4.5)
    assert interquartile_mean(np.array([1.0, 2.0, 9.0])) == pytest.approx(4.0)  # 3: all kept
    estimate = Bootstrap(resamples=500).iqm(values, "iqm")
    assert estimate.value == pytest.approx(4.5) and estimate.low <= 4.5 <= estimate.high


def test_probability_of_improvement_counts_ties_as_half():
    x, y = np.array([1.0, 3.0]), np.array([2.0, 2.0, 3.0])
    # Pairs won by x: (3, 2) twice; tied: (3, 3); lost: the other three. (2 + 0.5) / 6.
    assert probability_of_improvement(x, y) == pytest.approx(2.5 / 6)
    assert probability_of_improvement(x, y) == pytest.approx(
        scipy.stats.mannwhitneyu(x, y).statistic / 6)
    assert probability_of_improvement(y, x) == pytest.approx(1 - 2.5 / 6)
    estimate = Bootstrap(resamples=500).improvement(x + 10, y, "p")
    assert (estimate.value, estimate.low, estimate.high) == (1.0, 1.0, 1.0)


def test_intervals_are_percentiles_of_means_resampled_with_replacement():
    """Two values 0 and 1: a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4,
    so the 95% percentile interval is [0, 1] and the 40% one (30th-70th) is [0.5, 0.5]."""
    values = np.array([0.0, 1.0])
    wide = Bootstrap(resamples=4000, confidence=0.95, seed=5).mean(values, "m")
    narrow = Bootstrap(resamples=4000, confidence=0.4, seed=5).mean(values, "m")
    assert (wide.value, wide.low, wide.high) == (0.5, 0.0, 1.0)
    assert (narrow.low, narrow.high) == (0.5, 0.5)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    bootstrap = Bootstrap(resamples=2000, seed=3)
    values = np.array([1.0, 2.0, 6.0])
    first, second = bootstrap.mean(values, "x"), bootstrap.mean(values, "x")
    assert first == second
    assert first.value == 3.0 and 1.0 <= first.low < 3.0 < first.high <= 6.0
    assert not bootstrap.mean(np.array([5.0]), "one seed").has_interval


def test_ratio_is_undefined_when_the_baseline_area_is_not_above_the_floor():
    bootstrap = Bootstrap(resamples=200)
    assert math.isnan(bootstrap.ratio(np.array([5.0, 6.0]), np.array([-1.0, -2.0]), "r").value)
    assert bootstrap.ratio(np.array([5.0, 6.0]), np.array([-1.0, -2.0]), "r",
                           floor=-3.0).value == pytest.approx(8.5 / 1.5)


def test_labels_name_what_differs(tmp_path):
    write_results(tmp_path, config("scratch", 1, leg_length=40.0), FRAMES, [0, 0, 0, 0])
    for tl_end in (0.25, 0.5):
        write_results(tmp_path, config("freeze_then_thaw", 1, leg_length=40.0, tl_end=tl_end,
                                       save_name=f"thaw{tl_end}"), FRAMES, [0, 0, 0, 0])
    write_results(tmp_path, config("initialize", 1, leg_length=40.0,
                                   initial_model="leg_30_trained"), FRAMES, [0, 0, 0, 0])
    groups = group_studies(load_inputs([str(tmp_path / "*.p")])[0])
    assert sorted(g.label for g in groups) == [
        "freeze_then_thaw from leg_34_trained, tl_end=0.25",
        "freeze_then_thaw from leg_34_trained, tl_end=0.5",
        "initialize from leg_30_trained, tl_end=0.25", "scratch"]
    assert {g.panel_label for g in groups} == {"all studies"}


def test_groups_ignore_seed_and_run_settings_but_not_experiment_settings():
    studies = [
        config("scratch", 1), config("scratch", 2, num_workers=4, models_dir="/elsewhere",
                                     total_frames=5000, device="cuda"),
        # a from-scratch study records transfer defaults that mean nothing without a model
        config("scratch", 3, tl_end=0.5),
        config("initialize", 1), config("initialize", 2, initial_model="/m/leg_34_trained.pt"),
        config("initialize", 3, learning_rate=1e-3),
        config("scratch", 4, num_envs=4),  # the walkers decide the results (workers/vector.py)
    ]
    keys = [experiment_settings(c) for c in studies]
    assert keys[0] == keys[1] == keys[2]
    assert keys[3] == keys[4] != keys[0]
    assert keys[5] != keys[3]
    assert keys[6] != keys[0]
    assert strategy_of(config("freeze_then_thaw", 1)) == "freeze_then_thaw"


def test_schedules_in_frames_tell_experiments_apart():
    """A noise schedule over 60% of 1,000 frames and over 60% of 5,000 are two experiments;
    a study extended from 1,000 to 5,000 frames kept the schedule it started with (saved with
    its results) and is still the first one."""
    noise = {"action_std_start": 0.5, "action_std_final": 0.1, "action_std_end": 0.6}
    short = experiment_settings(config("scratch", 1, **noise))
    long = experiment_settings(config("scratch", 2, **noise, total_frames=5000))
    extended = experiment_settings(config("scratch", 3, **noise, total_frames=5000),
                                   {"action_std_start": 0.5, "action_std_final": 0.1,
                                    "action_std_end_frame": 600, "thaw_frames": []})
    assert short["action_std_end_frame"] == extended["action_std_end_frame"] == 600
    assert short == extended != long
    thaw = experiment_settings(config("freeze_then_thaw", 1, total_frames=4000, tl_end=0.75,
                                      hidden_layers=[8, 8, 8]))
    assert thaw["thaw_frames"] == (1000, 2000, 3000)
    reset = config("initialize", 1, reset_final_layer=True)
    assert strategy_of(reset) == "initialize + reset final"


# ----- the metrics, by hand -------------------------------------------------------------------


def test_transfer_metrics_match_the_hand_computed_values(tmp_path):
    write_synthetic(tmp_path)
    scratch, initialize = rows_of(tmp_path)
    assert (scratch.label, scratch.seeds, scratch.has_baseline) == ("scratch", 2, False)
    assert scratch.initial.value == 75
    assert scratch.asymptotic.value == 300
    assert scratch.auc.value == 125
    assert scratch.time_to_threshold.value == 875
    assert scratch.reached == (2, 2)

    assert (initialize.label, initialize.has_baseline) == ("initialize", True)
    assert initialize.initial.value == 200
    assert initialize.jumpstart.value == 125
    assert initialize.asymptotic.value == 300
    assert initialize.auc.value == 231.25
    assert initialize.transfer_ratio.value == pytest.approx(1.85)
    # Seed 1's first episode (200) alone is no window of 2: it reaches 200 at its second.
    assert initialize.time_to_threshold.value == 500
    assert initialize.threshold_speedup.value == pytest.approx(875 / 500)
    # Two seeds per group: resampled means of scratch's initial rewards (50, 100) are 50, 75
    # or 100, so the 95% interval spans exactly the two seeds.
    assert (scratch.initial.low, scratch.initial.high) == (50, 100)
    assert (initialize.initial.low, initialize.initial.high) == (200, 200)
    assert scratch.auc.low < 125 < scratch.auc.high


def test_ratio_floor_can_be_fixed(tmp_path):
    write_synthetic(tmp_path)
    _, initialize = rows_of(tmp_path, Settings(**{**SETTINGS.__dict__, "ratio_floor": -100}))
    assert initialize.transfer_ratio.value == pytest.approx((231.25 + 100) / (125 + 100))


def test_threshold_not_reached_is_a_lower_bound(tmp_path):
    write_results(tmp_path, config("scratch", 1), FRAMES, [0, 0, 0, 0])
    write_results(tmp_path, config("scratch", 2), FRAMES, [0, 100, 200, 300])  # 1000
    write_results(tmp_path, config("initialize", 1), FRAMES, [0, 0, 0, 0])
    scratch, initialize = rows_of(tmp_path)
    assert scratch.reached == (1, 2)
    assert scratch.time_to_threshold.value == 1000 and scratch.time_to_threshold.bound == ">="
    assert initialize.reached == (0, 1)
    table = metrics_table([scratch, initialize], SETTINGS)
    assert ">= 1.0k" in table and "(1/2 reached)" in table
    assert "not reached in 1.0k" in table


def test_time_to_threshold_needs_a_full_window_of_episodes(tmp_path):
    """One early episode above the threshold is not a running average of `window` episodes."""
    assert SETTINGS.window == 2
    write_results(tmp_path, config("scratch", 1), FRAMES, [900, 0, 0, 0])  # 450 at 500: full
    write_results(tmp_path, config("initialize", 1), [1000], [900])  # never a full window
    scratch, initialize = rows_of(tmp_path)
    assert scratch.time_to_threshold.value == 500 and scratch.reached == (1, 1)
    assert initialize.reached == (0, 1) and initialize.time_to_threshold.bound == ">="


def test_curves_are_cut_to_the_fewest_frames_any_compared_study_ran(tmp_path):
    write_results(tmp_path, config("scratch", 1), FRAMES, [0, 100, 200, 300])
    # The last batch overshoots total_frames: an episode past the common budget is not counted.
    write_results(tmp_path, config("initialize", 1), [*FRAMES, 1250], [200, 200, 300, 300, -500])
    scratch, initialize = rows_of(tmp_path)
    assert initialize.budget == scratch.budget == 1000
    assert initialize.auc.value == 237.5 and initialize.asymptotic.value == 300


def test_groups_are_compared_with_scratch_of_the_same_leg_length(tmp_path):
    write_synthetic(tmp_path)
    for (strategy, seed), rewards in REWARDS.items():  # leg 40: every reward 100 lower
        write_results(tmp_path, config(strategy, seed, leg_length=40.0), FRAMES,
                      [r - 100 for r in rewards])
    rows = rows_of(tmp_path)
    assert [(row.panel, row.label) for row in rows] == [
        ("leg 30", "scratch"), ("leg 30", "initialize"),
        ("leg 40", "scratch"), ("leg 40", "initialize")]
    assert rows[3].jumpstart.value == 125  # both groups shifted: the same jumpstart
    assert rows[3].auc.value == 131.25
    # floor = -100 (lowest leg-40 curve point): (231.25 - 100 + 100) / (125 - 100 + 100)
    assert rows[3].transfer_ratio.value == pytest.approx(1.85)


def test_zero_shot_pools_only_evaluations_of_the_whole_same_design():
    """Torque 80 and 160 at leg 30 are two walkers: not one cell of the leg axis."""
    trained_on = {"leg_length": "34", "leg_width": "8", "motor_torque": "80"}

    def evaluation(leg: float, torque: float, returns: list[float]) -> Evaluation:
        walker = walker_values({"leg_length": leg, "motor_torque": torque})
        return Evaluation("/m/leg_34_trained.pt", trained_on, walker, np.array(returns), 0)

    evaluations = [evaluation(30, 80, [100.0, 110.0]), evaluation(30, 160, [300.0, 310.0]),
                   evaluation(34, 80, [200.0]), evaluation(30, 80, [120.0])]
    lines = zero_shot_lines(evaluations, Bootstrap(resamples=200, seed=0), "leg_length")
    labels, xs, values = matrix(lines)
    assert labels == ["leg_34_trained (trained at leg_length 34) on motor_torque 160",
                      "leg_34_trained (trained at leg_length 34) on motor_torque 80"]
    assert xs == [30.0, 34.0]
    assert values[0, 0] == 305.0 and np.isnan(values[0, 1])
    assert values[1].tolist() == [110.0, 200.0]  # the two torque-80 reports at 30 pooled
    assert [cell.episodes for cell in lines[1].cells] == [3, 1]
    # Segments that follow the leg move with the axis: they do not split a line.
    following = [evaluation(leg, 80, [1.0]) for leg in (24, 30, 40)]
    assert len(zero_shot_lines(following, Bootstrap(resamples=200, seed=0), "leg_length")) == 1


# ----- the command line -----------------------------------------------------------------------


def test_analyze_writes_table_curves_and_zero_shot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_synthetic(tmp_path / "r")
    for trained in (34, 40):
        for leg in (30, 34, 40):
            top = 300 if leg == trained else 100
            write_evaluation(tmp_path / "r", trained, leg, [top, top - 20, top + 20],
                             [False, False, leg != trained])
    out = tmp_path / "docs"
    status = analyze.cli([str(tmp_path / "r" / "*.p"), str(tmp_path / "r" / "*_eval.json"),
                          "--out", str(out), "--prefix", "syn_", *SETTINGS_FLAGS])
    assert status == 0
    for name in ("learning_curves.png", "zero_shot.png"):
        assert (out / f"syn_{name}").read_bytes().startswith(PNG_MAGIC)
    metrics = (out / "syn_transfer_metrics.md").read_text()
    initialize_line = next(line for line in metrics.splitlines() if line.startswith("| init"))
    cells = [cell.strip() for cell in initialize_line.strip("|").split("|")]
    assert cells[:3] == ["initialize", "2", "200.0 [200.0, 200.0]"]
    assert cells[3].startswith("125.0 [") and cells[4] == "300.0 [300.0, 300.0]"
    assert cells[5] == "300.0 [300.0, 300.0]"  # asymptotic IQM: the mean with 2 seeds
    assert cells[6].startswith("231.2") and cells[7].startswith("1.85")
    assert cells[8] == "1.00 [1.00, 1.00]"  # both seeds' AUCs above both of scratch's
    assert cells[9].startswith("500 [") and cells[10].startswith("1.75")
    assert "| scratch | — | 0.00 [0.00, 0.00] |" in metrics  # the pairwise table
    assert "| initialize | 1.00 [1.00, 1.00] | — |" in metrics
    assert "running average of the last 2 episodes" in metrics
    zero_shot = (out / "syn_zero_shot.md").read_text()
    assert "| leg_34_trained (trained at leg_length 34) | 34 | 300.0 [" in zero_shot
    assert "| leg_40_trained (trained at leg_length 40) | 30 | 100.0 [" in zero_shot
    assert "| 33% | 3 |" in zero_shot
    assert "syn_learning_curves.png" in capsys.readouterr().out


def test_export_redraws_the_same_table(tmp_path):
    write_synthetic(tmp_path / "r")
    write_evaluation(tmp_path / "r", 34, 30, [120.0, 80.0], [False, True])
    studies, evaluations = load_inputs([str(tmp_path / "r" / "*.p"),
                                        str(tmp_path / "r" / "*_eval.json")])
    path = tmp_path / "studies.jsonl.gz"
    export(path, studies, evaluations)
    studies_back, evaluations_back = load_export(path)
    assert [s.name for s in studies_back] == [s.name for s in studies]
    assert evaluations_back[0].returns.tolist() == [120.0, 80.0]
    assert evaluations_back[0].falls == 1 and evaluations_back[0].trained_on["leg_length"] == "34"
    first = analyze.cli([str(tmp_path / "r" / "*.p"), "--out", str(tmp_path / "a"),
                         *SETTINGS_FLAGS])
    second = analyze.cli([str(path), "--out", str(tmp_path / "b"), *SETTINGS_FLAGS])
    assert first == second
    table = (tmp_path / "a" / "transfer_metrics.md").read_text().split("\n\n")[2]
    assert table == (tmp_path / "b" / "transfer_metrics.md").read_text().split("\n\n")[2]


def test_unfinished_studies_are_left_out_unless_asked(tmp_path, capsys):
    write_synthetic(tmp_path / "r")
    write_results(tmp_path / "r", config("scratch", 9), [250], [0.0], frames_run=250)
    assert analyze.cli([str(tmp_path / "r" / "*.p"), "--out", str(tmp_path / "d"),
                        *SETTINGS_FLAGS]) in (0, 1)
    assert "left out 1 unfinished studies" in capsys.readouterr().out
    assert "| scratch | 2 |" in (tmp_path / "d" / "transfer_metrics.md").read_text()


def test_bad_inputs_are_one_line_errors(tmp_path, capsys):
    assert analyze.cli([str(tmp_path / "nothing*.p"), "--out", str(tmp_path)]) == 2
    (tmp_path / "junk.p").write_bytes(b"not a pickle")
    assert analyze.cli([str(tmp_path / "junk.p"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nothing*.p: no such file" in err and "junk.p: not a results file" in err

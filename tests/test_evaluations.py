"""Evaluation during training (`study.evaluations`), the best checkpoint it picks, its files,
resume, `--initial_model=auto` recorded as a setting, and the `--eval_episodes` summary."""

from __future__ import annotations

import csv
import dataclasses
import json
import pickle
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, cli_in_process, only_line, tiny_flags

import evaluation.evaluate
from common.checkpoint import design_inputs_of, load_checkpoint, policy_from_checkpoint
from common.config import Config, parse_config
from evaluation.evaluate import EpisodeResult, make_env, play, summarize
from ppo.network import ActorCritic
from study.evaluations import (
    EvaluationInterrupted,
    evaluate_policy,
    evaluation_seeds,
    is_due,
)
from study.trainer import Study, train, walker_seeds
from workers.vector import WalkerPool

SHIPPED_WALKER = REPO_ROOT / "trained_models" / "leg_34_trained.pt"
EVERY = ("--eval_every=1000", "--eval_episodes_during=3")


def results_of(folder: Path, name: str = "tiny") -> dict:
    return pickle.loads((folder / "r" / f"{name}.p").read_bytes())


def test_evaluation_seeds_are_fixed_per_study_and_apart_from_the_walkers():
    seeds = evaluation_seeds(1, 5)
    assert seeds == evaluation_seeds(1, 5) and len(set(seeds)) == 5
    assert evaluation_seeds(1, 3) == seeds[:3], "more episodes add seeds, keep the first"
    assert set(seeds).isdisjoint(evaluation_seeds(2, 5))
    training = {seed for start in range(50) for seed in walker_seeds(1, 8, start)}
    assert training.isdisjoint(seeds)


def test_evaluations_are_due_at_each_multiple_and_at_the_end(tiny_config):
    config = tiny_config("--eval_every=1000", "--total_frames=2500")
    assert not is_due(config, 0, 600)
    assert is_due(config, 600, 1200) and is_due(config, 0, 1000)
    assert not is_due(config, 1000, 1900)
    assert is_due(config, 2000, 2500), "the end of the budget"
    off = tiny_config("--eval_every=0", "--best_by=running_average")
    assert not is_due(off, 0, 10**9)


def test_eval_every_zero_needs_the_running_average_rule(tmp_path, capsys):
    assert cli_in_process(tiny_flags(tmp_path, "--eval_every=0")) == 2
    line = only_line(capsys.readouterr().err)
    assert "--eval_every" in line and "--best_by=running_average" in line
    assert cli_in_process(tiny_flags(tmp_path, "--best_by=best")) == 2
    assert "--best_by" in only_line(capsys.readouterr().err)


def test_best_checkpoint_is_the_best_evaluation_and_its_score_reproduces(tmp_path, capsys):
    assert cli_in_process(tiny_flags(tmp_path, *EVERY, "--total_frames=3000", "--quiet=false")) == 0
    out = capsys.readouterr().out
    assert out.count("eval at ") == 3 and "mean return of 3 deterministic episodes" in out
    evaluations = results_of(tmp_path)["evaluations"]
    assert evaluations["frames"] == [1000, 2000, 3000]
    with (tmp_path / "r" / "tiny_evaluations.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["mean_return"]) for row in rows] == evaluations["mean_return"]
    best = int(np.argmax(evaluations["mean_return"]))
    checkpoint = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert checkpoint["frames"] == evaluations["frames"][best]
    assert checkpoint["score"] == max(evaluations["mean_return"])
    assert checkpoint["score_kind"] == "mean return of 3 deterministic episodes"
    # The recorded score is what the saved policy plays on the study's evaluation seeds.
    config = parse_config(tiny_flags(tmp_path))
    replayed = list(play(config, policy_from_checkpoint(checkpoint).eval(), 3,
                         design_inputs=design_inputs_of(checkpoint),
                         seeds=evaluation_seeds(config.seed, 3)))
    assert summarize(replayed)["mean_return"] == checkpoint["score"]


def test_running_average_rule_stays_available(tmp_path):
    flags = tiny_flags(tmp_path, *EVERY, "--best_by=running_average")
    assert cli_in_process(flags) == 0
    checkpoint = load_checkpoint(tmp_path / "m" / "tiny.pt")
    assert checkpoint["score_kind"].startswith("running average")
    assert len(results_of(tmp_path)["evaluations"]["frames"]) == 2  # still recorded


def test_a_resumed_study_evaluates_as_an_uninterrupted_one(tmp_path, monkeypatch):
    flags = (*EVERY, "--total_frames=4000", "--tensorboard=none")
    whole = train(parse_config(tiny_flags(tmp_path / "whole", *flags)))
    assert whole.stopped_by_signal is None

    write_results = Study.write_results

    def stop_after_two_batches(study: Study):
        paths = write_results(study)
        if study.frames == 2000:
            study.stop_signal = signal.SIGINT
        return paths

    monkeypatch.setattr(Study, "write_results", stop_after_two_batches)
    cut = train(parse_config(tiny_flags(tmp_path / "cut", *flags)))
    assert cut.stopped_by_signal == signal.SIGINT and cut.frames == 2000
    monkeypatch.setattr(Study, "write_results", write_results)
    train(parse_config(tiny_flags(tmp_path / "cut", *flags, "--resume=true")))

    # A resumed study resets its walkers with new seeds (study.trainer.walker_seeds), so its
    # later batches differ from an uninterrupted study's; what it kept and its schedule do not.
    a, b = results_of(tmp_path / "whole"), results_of(tmp_path / "cut")
    assert a["evaluations"]["frames"] == b["evaluations"]["frames"] == [1000, 2000, 3000, 4000]
    for name in ("mean_return", "std_return", "fall_rate", "finish_rate"):
        assert a["evaluations"][name][:2] == b["evaluations"][name][:2], name


def test_evaluating_changes_nothing_the_study_learns(tmp_path):
    """The evaluations draw from no generator of the study: with or without them, the same
    episodes and the same final weights."""
    with_eval = tiny_flags(tmp_path / "a", *EVERY, "--tensorboard=none")
    without = tiny_flags(tmp_path / "b", "--eval_every=0", "--best_by=running_average",
                         "--tensorboard=none")
    assert cli_in_process(with_eval) == 0 and cli_in_process(without) == 0
    a, b = results_of(tmp_path / "a"), results_of(tmp_path / "b")
    assert a["episodes"]["reward"] == b["episodes"]["reward"]
    last_a = load_checkpoint(tmp_path / "a" / "m" / "tiny.last.pt", "resume")
    last_b = load_checkpoint(tmp_path / "b" / "m" / "tiny.last.pt", "resume")
    for key, tensor in last_a["state_dict"].items():
        assert tensor.equal(last_b["state_dict"][key]), key


def test_a_resumed_study_keeps_its_evaluation_protocol(tmp_path, capsys):
    flags = tiny_flags(tmp_path, *EVERY, "--total_frames=1000")
    assert cli_in_process(flags) == 0
    capsys.readouterr()
    assert cli_in_process([*flags, "--total_frames=2000", "--resume=true",
                           "--eval_every=500"]) == 2
    assert "--eval_every" in only_line(capsys.readouterr().err)


# ----- evaluations in the worker processes ----------------------------------------------------


def test_evaluations_in_the_workers_match_those_played_in_the_trainer(tiny_config, monkeypatch):
    """Each episode is a fresh walker, its body too (a design range), drawn from its own seed:
    shared among 2 workers, the episodes are those the trainer plays, result for result."""
    played: list[tuple[int, list[EpisodeResult]]] = []

    def recorded(*args):
        walkers = args[-1]
        played.append((walkers.idle_workers, evaluate_policy(*args)))
        return played[-1][1]

    monkeypatch.setattr("study.trainer.evaluate_policy", recorded)
    base = tiny_config(*EVERY, "--num_envs=4", "--leg_length=30:40", "--tensorboard=none")
    for workers in (0, 2):
        Study(dataclasses.replace(base, num_workers=workers, save_name=f"w{workers}")).run()
    here, shared = played[:2], played[2:]
    assert [idle for idle, _ in here] == [0, 0]
    assert [idle for idle, _ in shared] == [2, 2]
    assert [results for _, results in shared] == [results for _, results in here]
    assert len({result.length for _, results in here for result in results}) > 1


def evaluation_pool(config: Config, stop_requested=lambda: False) -> WalkerPool:
    """The walkers of `config`'s study, in 2 workers."""
    return WalkerPool(config.env, {**config.env_kwargs(), "design_inputs": None},
                      config.num_envs, 2, stop_requested)


def untrained_policy(config: Config) -> ActorCritic:
    torch.manual_seed(0)
    env = make_env(config)
    policy = ActorCritic(env.observation_space.shape[0], env.action_space.shape[0], (16,))
    env.close()
    return policy


def test_a_worker_error_during_an_evaluation_reaches_the_trainer(tiny_config, monkeypatch):
    config = tiny_config("--eval_episodes_during=4", "--num_envs=4")
    broken = evaluation_seeds(config.seed, 4)[-1]  # in the second worker's share
    run_episode = evaluation.evaluate.run_episode

    def breaking(env, policy, seed, *args):
        if seed == broken:
            raise ValueError("the walker broke")
        return run_episode(env, policy, seed, *args)

    monkeypatch.setattr(evaluation.evaluate, "run_episode", breaking)  # before the fork
    pool = evaluation_pool(config)
    try:
        with pytest.raises(RuntimeError,
                           match=r"walker worker 1 failed:[\s\S]*ValueError: the walker broke"):
            evaluate_policy(config, untrained_policy(config), None, lambda: False, pool)
    finally:
        pool.close()
    assert not any(worker.is_alive() for worker in pool.workers)


def test_a_stop_ends_an_evaluation_in_the_workers_at_their_next_step(tiny_config):
    """The workers end their episodes themselves: nobody is killed for it, and the trainer
    sees the interrupted evaluation it handles as played here (the batch is dropped)."""
    config = tiny_config("--eval_episodes_during=1000", "--num_envs=4")
    asked = []

    def stop_requested() -> bool:
        asked.append(True)
        return len(asked) > 1

    pool = evaluation_pool(config, stop_requested)
    try:
        started = time.monotonic()
        with pytest.raises(EvaluationInterrupted):
            evaluate_policy(config, untrained_policy(config), None, stop_requested, pool)
        # Not 1000 episodes of about 120 steps (about 10 s on 2 cores).
        assert time.monotonic() - started < 5
    finally:
        pool.close()
    assert all(worker.describe_exit() == "exited with status 0" for worker in pool.workers)


# ----- --initial_model=auto ------------------------------------------------------------------


def test_auto_with_a_taken_name_is_refused_before_any_ranking(tmp_path, capsys):
    models = tmp_path / "m"
    models.mkdir()
    shutil.copyfile(SHIPPED_WALKER, models / "walker.pt")
    assert cli_in_process(tiny_flags(tmp_path)) == 0
    capsys.readouterr()
    assert cli_in_process(tiny_flags(tmp_path, "--initial_model=auto")) == 2
    captured = capsys.readouterr()
    assert "auto:" not in captured.out
    assert "--save_name" in only_line(captured.err)


def test_an_auto_study_resumes_and_reruns_as_the_same_experiment(tmp_path, capsys):
    models = tmp_path / "m"
    models.mkdir()
    shutil.copyfile(SHIPPED_WALKER, models / "walker.pt")
    flags = tiny_flags(tmp_path, "--initial_model=auto", "--total_frames=1000", "--quiet=false",
                       "--leg_length=34")
    assert cli_in_process(flags) == 0
    first = results_of(tmp_path)
    assert first["config"]["initial_model"] == "auto" and first["chosen_initial_model"]
    capsys.readouterr()
    # Extended with --resume: no new ranking, the same choice.
    assert cli_in_process([*flags, "--total_frames=2000", "--resume=true"]) == 0
    out = capsys.readouterr().out
    assert "auto: ranking" not in out
    assert results_of(tmp_path)["chosen_initial_model"] == first["chosen_initial_model"]


# ----- --eval_episodes's summary -------------------------------------------------------------


def test_summary_has_a_95_interval_fall_and_finish_rates():
    results = [EpisodeResult(1, 100.0, 500, "finished"), EpisodeResult(2, 110.0, 700, "finished"),
               EpisodeResult(3, -50.0, 80, "fell"), EpisodeResult(4, 20.0, 1500, "time limit")]
    summary = summarize(results)
    low, high = summary["return_ci95"]
    assert summary["mean_return"] == pytest.approx(45.0)
    # t(0.975, 3) = 3.182; sample std of the returns = 76.7
    assert high - low == pytest.approx(2 * 3.182446 * np.std([100, 110, -50, 20], ddof=1) / 2,
                                       rel=1e-5)
    assert summary["fall_rate"] == 0.25 and summary["finish_rate"] == 0.5
    assert summary["mean_steps_to_finish"] == 600.0
    assert summarize(results[2:])["mean_steps_to_finish"] is None


def test_eval_episodes_report_carries_the_interval_and_rates(tmp_path, capsys):
    flags = [f"--initial_model={SHIPPED_WALKER}", "--eval_episodes=2", "--max_time_steps=100",
             f"--models_dir={tmp_path / 'm'}", f"--results_dir={tmp_path / 'r'}",
             f"--tensorboard={tmp_path / 'runs'}", "--save_name=shipped"]
    assert cli_in_process(flags) == 0
    out = capsys.readouterr().out
    assert "95% interval of the mean" in out and "finished: " in out
    assert "fewer than 30 episodes" in out
    summary = json.loads((tmp_path / "r" / "shipped_eval.json").read_text())["summary"]
    assert {"return_ci95", "fall_rate", "finish_rate", "mean_steps_to_finish"} <= set(summary)

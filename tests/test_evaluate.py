"""Running a saved policy: evaluation (--eval_episodes), video (--record), window (--render)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, files_under, run_py, subprocess_env, tiny_flags

from common.checkpoint import save_policy
from common.config import Config, parse_config
from evaluation import evaluate, video
from ppo.network import ActorCritic

HULL_COLOUR = np.array([127, 51, 229])  # the hull's fill colour in rendered frames
EPISODE_STEPS = 50
SHORT = f"--max_time_steps={EPISODE_STEPS}"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """`tmp_path` with an untrained policy saved as m/tiny.pt (what tiny_flags points at)."""
    torch.manual_seed(0)
    policy = ActorCritic(24, 4, (32, 32, 32, 32))
    save_policy(tmp_path / "m" / "tiny.pt", policy,
                {"env": "Bipedal_Custom_Leg_Length-v0", "leg_length": 34.0}, 0, 0.0)
    return tmp_path


def config_for(folder: Path, *extra: str) -> Config:
    return parse_config(tiny_flags(folder, SHORT, *extra))


def hull_pixels(frame: np.ndarray, tolerance: int) -> int:
    """Pixels within `tolerance` (per channel) of the hull's colour."""
    difference = np.abs(frame[..., :3].astype(int) - HULL_COLOUR).max(axis=-1)
    return int((difference <= tolerance).sum())


def assert_frames_show_the_walker(frames: np.ndarray, tolerance: int) -> None:
    for frame in frames[:: max(1, len(frames) // 5)]:
        assert hull_pixels(frame, tolerance) > 300, "no hull in the frame"
        colours = np.unique(frame[..., :3].reshape(-1, 3), axis=0)
        assert len(colours) > 20, "frame is (nearly) blank"
        # The overlay: dark text on a light box in the top-left corner.
        corner = frame[8:40, 8:150, :3].astype(int)
        assert (corner.sum(axis=-1) < 200).sum() > 50, "no overlay text"


# ----- recording -----------------------------------------------------------------------------

def test_gif_decodes_with_one_frame_in_two_per_episode_showing_the_walker(folder: Path) -> None:
    import imageio.v3 as iio

    path = folder / "videos" / "walker.gif"
    path.parent.mkdir()  # --record writes into a folder that exists, it creates none
    config = config_for(folder, f"--record={path}", "--eval_episodes=2")
    assert evaluate.record(config) == 0

    policy, _, _ = evaluate.load_policy(config)
    lengths = [r.length for r in evaluate.play(config, policy, 2)]
    frames = iio.imread(path, index=None)
    # Each episode renders reset + one frame per step; a GIF keeps frames 0, 2, 4, ... of each.
    assert video.GIF_FRAME_STRIDE == 2
    assert len(frames) == sum(math.ceil((n + 1) / 2) for n in lengths)
    assert len(frames) == video.frames_in_video(lengths, path)
    assert frames.shape[1:3] == (400, 600)
    assert_frames_show_the_walker(frames, tolerance=12)
    assert not np.array_equal(frames[1], frames[-1]), "the walker moves"
    assert sorted(p.name for p in path.parent.iterdir()) == ["walker.gif"], "temporary file left"


def test_mp4_decodes_with_every_frame_showing_the_walker(folder: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio

    path = folder / "walker.mp4"
    config = config_for(folder, f"--record={path}")  # --eval_episodes=0: one episode
    assert evaluate.record(config) == 0

    frames = iio.imread(path)
    assert len(frames) == EPISODE_STEPS + 1 == video.frames_in_video([EPISODE_STEPS], path)
    assert frames.shape[1:] == (400, 600, 3)
    assert_frames_show_the_walker(frames, tolerance=40)  # H.264 shifts colours a little


def test_interrupted_recording_leaves_no_video(folder: Path, monkeypatch) -> None:
    path = folder / "walker.gif"
    config = config_for(folder, f"--record={path}")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "act", interrupt)
    assert evaluate.record(config) == 130  # 128 + SIGINT
    assert list(folder.glob("*.gif")) == [] and list(folder.glob(".*")) == []


def test_record_needs_a_gif_or_mp4_path(folder: Path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        config_for(folder, "--record=walker.avi")
    assert stop.value.code == 2
    assert "--record: must be a path ending in .gif or .mp4" in capsys.readouterr().err


# ----- evaluation ----------------------------------------------------------------------------

def test_evaluation_is_reproducible_with_a_seed(folder: Path) -> None:
    config = config_for(folder, "--seed=5")
    policy, _, _ = evaluate.load_policy(config)
    first = list(evaluate.play(config, policy, 3))
    second = list(evaluate.play(config, policy, 3))
    assert first == second
    assert [r.seed for r in first] == [5, 6, 7]
    other = list(evaluate.play(config_for(folder, "--seed=6"), policy, 3))
    # Episode i has seed seed + i and depends on nothing else (not on the episodes before it).
    assert other[:2] == first[1:]
    assert [r.episode_return for r in other] != [r.episode_return for r in first]


def test_evaluation_counts_falls(folder: Path) -> None:
    """The untrained walker topples within ~130 steps: every long-enough episode is a fall."""
    config = config_for(folder, "--max_time_steps=300", "--fall_penalty=-77")
    policy, _, _ = evaluate.load_policy(config)
    results = list(evaluate.play(config, policy, 2))
    assert all(r.fell and r.outcome == "fell" and r.length < 300 for r in results)
    assert evaluate.summarize(results)["fall_rate"] == 1.0


def test_eval_prints_mean_return_and_writes_json(folder: Path) -> None:
    models_before = files_under(folder / "m")
    done = run_py(tiny_flags(folder, SHORT, "--eval_episodes=2", "--leg_length=30"))
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("mean_return=")
    report = json.loads((folder / "r" / "tiny_eval.json").read_text())
    assert float(last.split("=", 1)[1]) == report["summary"]["mean_return"]
    assert [e["seed"] for e in report["episodes"]] == [1, 2]
    assert [e["length"] for e in report["episodes"]] == [EPISODE_STEPS] * 2
    assert report["summary"]["mean_return"] == pytest.approx(
        np.mean([e["return"] for e in report["episodes"]]))
    assert report["env"]["leg_length"] == 30 and report["policy_env"]["leg_length"] == 34
    assert report["policy"].endswith("tiny.pt")
    assert "zero-shot" in done.stdout and "\u00b1" in done.stdout and "falls:" in done.stdout
    assert files_under(folder / "r") == {"tiny_eval.json"}
    assert files_under(folder / "m") == models_before


def without_save_name(flags: list[str]) -> list[str]:
    return [flag for flag in flags if not flag.startswith("--save_name")]


def test_evaluating_and_recording_a_named_policy_need_no_save_name(folder: Path) -> None:
    """The evaluation report is then named after the policy and the walker."""
    import run

    flags = without_save_name(tiny_flags(folder, SHORT, "--initial_model=tiny"))
    assert run.cli([*flags, "--eval_episodes=1"]) == 0
    name = "tiny_on_max_time_steps50"  # SHORT's episodes: not the default walker
    assert files_under(folder / "r") == {f"{name}_eval.json"}
    report = json.loads((folder / "r" / f"{name}_eval.json").read_text())
    assert report["save_name"] == name and report["policy"].endswith("tiny.pt")
    assert run.cli([*flags, f"--record={folder / 'walk.gif'}"]) == 0
    assert (folder / "walk.gif").stat().st_size > 0


@pytest.mark.parametrize("mode", ["--eval_episodes=1", "--record=x.gif", "--render"])
def test_a_policy_mode_without_any_policy_name_says_which_flag_to_give(folder: Path, capsys,
                                                                      monkeypatch, mode) -> None:
    import run

    monkeypatch.setattr(video, "display_problem", lambda: None)  # --render gets to the policy
    assert run.cli(without_save_name(tiny_flags(folder, mode))) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("run.py: error: --initial_model: name the policy")
    assert not (REPO_ROOT / "x.gif").exists() and not (folder / "r").exists()


def test_missing_policy_is_the_same_one_line_error_as_for_initial_model(folder: Path, capsys,
                                                                       monkeypatch) -> None:
    import run

    monkeypatch.setattr(video, "display_problem", lambda: None)  # --render gets to the policy
    for flags, flag in ((["--eval_episodes=1", "--save_name=absent"], "--save_name"),
                        (["--record=x.gif", "--initial_model=absent"], "--initial_model"),
                        (["--render=true", "--initial_model=absent"], "--initial_model")):
        assert run.cli(tiny_flags(folder, *flags)) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith(f"run.py: error: {flag}: no model 'absent' (looked for ")
        assert lines[0].count("tiny") == 1, "the error lists the models that exist"
    assert not (REPO_ROOT / "x.gif").exists() and not (folder / "r").exists()


# ----- the window ------------------------------------------------------------------------------

def test_render_without_a_display_fails_in_one_line(folder: Path) -> None:
    env = {k: v for k, v in subprocess_env().items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}
    done = subprocess.run([sys.executable, "run.py", *tiny_flags(folder, "--render=True")],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "no display" in lines[0] and "--record" in lines[0]
    assert not (folder / "r").exists()


class FakeWindow:
    """Stands in for the pygame window: counts frames, then `stop()` (closes it, Ctrl-C...)."""

    shown: list[str] = []

    def __init__(self, width: int, height: int, caption: str, stop, after: int) -> None:
        self.stop, self.after = stop, after
        FakeWindow.shown = []

    def show(self, frame: np.ndarray, caption: str) -> None:
        assert frame.shape == (400, 600, 3)
        FakeWindow.shown.append(caption)
        if len(FakeWindow.shown) == self.after:
            self.stop()

    def close(self) -> None:
        FakeWindow.shown.append("closed")


def raiser(error: type[BaseException]):
    def stop() -> None:
        raise error
    return stop


def send_sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(("stop", "status", "said"), [
    (raiser(video.WindowClosed), 0, "stopped"),   # window closed, Escape or q
    (raiser(KeyboardInterrupt), 130, "stopped"),  # Ctrl-C
    (send_sigterm, 143, "stopped by signal 15"),  # `kill PID`, as a training run takes it
], ids=["closed", "ctrl-c", "sigterm"])
def test_watching_stops_cleanly_and_writes_nothing(folder: Path, monkeypatch, capsys, stop,
                                                   status: int, said: str) -> None:
    monkeypatch.setattr(video, "display_problem", lambda: None)
    monkeypatch.setattr(video, "Window",
                        lambda w, h, caption: FakeWindow(w, h, caption, stop, after=60))
    models_before = files_under(folder / "m")
    handler_before = signal.getsignal(signal.SIGTERM)
    assert evaluate.watch(config_for(folder, "--render=True")) == status
    assert signal.getsignal(signal.SIGTERM) is handler_before, "the handler is put back"
    # Episode 1 is reset + 50 steps (51 frames); the window closes in episode 2.
    assert FakeWindow.shown[-1] == "closed" and len(FakeWindow.shown) == 61
    assert "leg length 34" in FakeWindow.shown[0] and "episode 2" in FakeWindow.shown[-2]
    out = capsys.readouterr().out
    assert "episode 1 (seed 1)" in out and out.strip().endswith(said)
    assert files_under(folder / "m") == models_before and not (folder / "r").exists()


def test_watching_stops_after_eval_episodes(folder: Path, monkeypatch) -> None:
    monkeypatch.setattr(video, "display_problem", lambda: None)
    monkeypatch.setattr(video, "Window", lambda w, h, caption: FakeWindow(
        w, h, caption, video.WindowClosed, after=10**6))
    assert evaluate.watch(config_for(folder, "--render=True", "--eval_episodes=2")) == 0
    assert len(FakeWindow.shown) == 2 * (EPISODE_STEPS + 1) + 1


def test_display_problem_reads_the_environment(monkeypatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    assert "no display" in video.display_problem()
    monkeypatch.setenv("DISPLAY", ":0")
    assert video.display_problem() is None
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert "dummy" in video.display_problem()

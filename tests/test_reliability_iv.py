"""Issue #34, "Reliability IV": stops that resume everywhere, a search that never hangs, no
pickle from disk, bounded flags. Each test reproduces one failure with a tiny budget."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    REPO_ROOT,
    cli_in_process,
    only_line,
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

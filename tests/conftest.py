"""Shared fixtures: tiny study budgets, and running `run.py` as a real subprocess.

Every study a test starts writes into its own `tmp_path`, never into the repository's
`trained_models/` or `results/`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # plain `pytest` as well as `python -m pytest`
    sys.path.insert(0, str(REPO_ROOT))

TINY_BUDGET = (
    "--total_frames=2000",
    "--batch_size=1000",
    "--minibatch_size=250",
    "--train_steps=4",
    "--num_envs=1",
    "--quiet=true",
    # Short episodes, so that even a 1000-frame batch completes several of them.
    "--max_time_steps=200",
)
"""Two updates of a study: a few seconds."""
TINY_FIXED = [f"--fixed={flag.removeprefix('--')}" for flag in TINY_BUDGET
              if not flag.startswith("--quiet")]
"""The same budget as sweep.py --fixed flags; the sweep sets quiet itself."""

SUBPROCESS_TIMEOUT_S = 120
"""Generous: the suite may share two cores with a training job."""


def tiny_flags(tmp_path: Path, *extra: str, save_name: str = "tiny") -> list[str]:
    """Flags for a tiny study writing under `tmp_path`; later flags in `extra` override."""
    return [
        f"--save_name={save_name}",
        *TINY_BUDGET,
        f"--models_dir={tmp_path / 'm'}",
        f"--results_dir={tmp_path / 'r'}",
        f"--tensorboard={tmp_path / 'runs'}",
        *extra,
    ]


def subprocess_env() -> dict[str, str]:
    """One thread per process: the tests run beside other jobs on a small machine."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1"}


def run_py(args: list[str], timeout: float = SUBPROCESS_TIMEOUT_S
           ) -> subprocess.CompletedProcess[str]:
    """`python run.py ARGS` from the repository root; output captured as text."""
    assert any(a.startswith("--models_dir") for a in args), "tests must not write into the repo"
    assert any(a.startswith("--results_dir") for a in args), "tests must not write into the repo"
    assert any(a.startswith("--tensorboard") for a in args), "tests must not write into the repo"
    return subprocess.run([sys.executable, "run.py", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def start_run_py(args: list[str]) -> subprocess.Popen[str]:
    """`run.py` started in the background, leading its own process group (as a shell job
    would), so that a test can signal the study and its environment workers together."""
    assert any(a.startswith("--models_dir") for a in args)
    assert any(a.startswith("--results_dir") for a in args)
    assert any(a.startswith("--tensorboard") for a in args)
    return subprocess.Popen([sys.executable, "run.py", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), start_new_session=True)


def files_under(folder: Path) -> set[str]:
    """Every file and folder below `folder`, as relative paths."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.fixture
def tiny_config(tmp_path: Path):
    """Build a validated Config for a tiny study in `tmp_path`: `tiny_config("--seed=3")`."""
    from common.config import parse_config

    def build(*extra: str, folder: Path = tmp_path, save_name: str = "tiny"):
        return parse_config(tiny_flags(folder, *extra, save_name=save_name))

    return build


def cli_in_process(argv: list[str]) -> int:
    """`run.py ARGV` in this process: its exit status (argparse errors exit via SystemExit)."""
    import run

    try:
        return run.cli(argv)
    except SystemExit as exit_info:
        return exit_info.code


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {stderr!r}"
    return lines[0]


def study_results(folder: Path, save_name: str = "tiny") -> dict:
    """The results pickle of a study written under `folder` by `tiny_flags`."""
    return pickle.loads((folder / "r" / f"{save_name}.p").read_bytes())

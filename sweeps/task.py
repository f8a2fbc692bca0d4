"""The body of each Ray task, wherever it runs: `run.cli(argv)` (the code path of
`python run.py`) with its output appended to the study's log, in a scratch folder whose files
travel back to the sweep when the nodes share no filesystem."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import traceback
from pathlib import Path
from typing import Any

from sweeps.state import now

LOG_TAIL_LINES = 15


def run_study(argv: list[str], log_name: str, inputs: dict[str, bytes] | None = None,
              ship_back: bool = False) -> dict[str, Any]:
    """Body of the Ray task: `run.cli(argv)` with its output appended to a log file.

    Without shipping, `argv` names the real folders and the log goes to `log_name` there. With
    `inputs` or `ship_back`, the study runs in a scratch folder: `inputs` ({path relative to it:
    bytes}) are written first, argv's folders are `models/`, `results/` and `runs/` (TensorBoard
    events) inside it, and every file the study wrote comes back as {path relative to it:
    bytes}. Returns the exit status, the log's last lines, those files and the id of the Ray
    node it ran on.
    """
    import ray

    scratch = Path(tempfile.mkdtemp(prefix="sweep-")) if ship_back else None
    try:
        if scratch is not None:
            for relative, data in (inputs or {}).items():
                (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
                (scratch / relative).write_bytes(data)
            argv = [arg.replace("{scratch}", str(scratch)) for arg in argv]
            log_path = scratch / "results" / log_name
        else:
            log_path = Path(log_name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        status = _run_logged(argv, log_path)
        tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        files = {}
        if scratch is not None:
            written = ((str(path.relative_to(scratch)), path) for path in scratch.rglob("*")
                       if path.is_file() and not path.name.startswith("."))
            files = {relative: data for relative, path in written
                     if (data := path.read_bytes()) != (inputs or {}).get(relative)}
        node = ray.get_runtime_context().get_node_id()
        return {"status": status, "log_tail": tail, "files": files, "node": node}
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_logged(argv: list[str], log_path: Path) -> int:
    import run  # the repository root is on the worker's path (local) or is its working_dir

    with log_path.open("a") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        print(f"\n[{now()}] python run.py {' '.join(argv)}", flush=True)
        try:
            status = run.cli(argv)
        except SystemExit as exit_:  # argparse rejected a flag
            status = exit_.code if isinstance(exit_.code, int) else 1
        except Exception:  # noqa: BLE001 (any crash is this study's failure, not the sweep's)
            traceback.print_exc()
            status = 1
        print(f"[{now()}] exit status {status}", flush=True)
    return status

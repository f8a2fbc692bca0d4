"""Running a sweep's studies as Ray tasks: launching them (with their files, on a cluster),
writing back what they produced, retrying failures, stopping cleanly, and the final report."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from common.checkpoint import atomic_write_bytes
from common.config import names_a_model, parse_config
from common.errors import Interrupted, UsageError, interrupt_exit_status
from common.locking import StudyLock
from common.models import resolve_model_path
from sweeps.state import UNFINISHED, Paths, StudyRecord, Sweep, prepare, status_counts, study_argv
from sweeps.task import run_study
from transfer.selection import is_auto, resolve_initial_model

REPO_ROOT = Path(__file__).resolve().parent.parent


def task_arguments(sweep: Sweep, study: StudyRecord, resume: bool) -> tuple[list[str], str,
                                                                      dict[str, bytes], bool]:
    """(argv, log name, inputs, ship_back) for `run_study`, for this machine or a remote node."""
    files = sweep.paths.of(study.save_name)
    if not sweep.ship_files:
        argv = study_argv(study, sweep.paths, sweep.cpus_per_study, resume)
        return argv, str(files["log"]), {}, False
    remote = Paths(Path("{scratch}/models"), Path("{scratch}/results"),
                   None if sweep.paths.tensorboard is None else Path("{scratch}/runs"))
    inputs: dict[str, bytes] = {}
    flags = dict(study.flags)
    if is_auto(flags.get("initial_model", "none")):
        flags["initial_model"] = choose_here(sweep, study, resume, files["log"])
    if names_a_model(flags.get("initial_model", "none")):
        # Sent as models/NAME.pt and named NAME, so the results record the same initial_model
        # as a local run (a path given as initial_model is recorded by its file name).
        source = resolve_model_path(flags["initial_model"], sweep.paths.models_dir)
        inputs[f"models/{source.name}"] = source.read_bytes()
        flags["initial_model"] = source.stem
    if resume:
        inputs[f"models/{files['checkpoint'].name}"] = files["checkpoint"].read_bytes()
    if files["log"].exists():
        inputs[f"results/{files['log'].name}"] = files["log"].read_bytes()
    shipped = dataclasses.replace(study, flags=flags)
    argv = study_argv(shipped, remote, sweep.cpus_per_study, resume)
    return argv, files["log"].name, inputs, True


def choose_here(sweep: Sweep, study: StudyRecord, resume: bool, log: Path) -> str:
    """`--initial_model=auto` for a study that runs elsewhere: the candidates are this machine's
    models, so they are ranked here (the ranking goes to the study's log) and the winner is
    shipped as if it had been named."""
    config = parse_config(study_argv(study, sweep.paths, sweep.cpus_per_study, resume))
    choice = resolve_initial_model(config)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle:
        handle.write(choice.report + "\n")
    return choice.config.initial_model


def write_shipped(sweep: Sweep, files: dict[str, bytes]) -> None:
    """Files a remote study wrote (or changed) -> this machine's folders: models/NAME and
    results/NAME, and its TensorBoard events, runs/<save_name>/NAME."""
    folders = {"models": (sweep.paths.models_dir, 0), "results": (sweep.paths.results_dir, 0)}
    if sweep.paths.tensorboard is not None:
        folders["runs"] = (sweep.paths.tensorboard, 1)
    for relative, data in files.items():
        top, _, rest = relative.partition("/")
        if top in folders and rest and rest.count("/") == folders[top][1]:
            atomic_write_bytes(folders[top][0] / rest, data)


def run_sweep(sweep: Sweep, out: TextIO | None = None) -> int:
    """Run every study not yet complete; return 0 if all finished, 1 if any did not."""
    import ray

    def say(text: str) -> None:
        print(text, file=out or sys.stdout, flush=True)

    to_run, locks = lock_shipped_studies(sweep, prepare(sweep))
    sweep.write_manifest()
    total = len(sweep.studies)
    for study in sweep.studies:
        if study.status != "pending":
            say(f"{study.status:<8} {study.save_name}" + (f": {study.error}" if study.error
                                                          else ""))
    started_ray = False
    pending: dict[Any, tuple[StudyRecord, float]] = {}
    if to_run:
        if not ray.is_initialized():
            start_ray(sweep.address)
            started_ray = True
        if not fits_a_node(sweep, ray.nodes()):
            say(f"sweep.py: error: --cpus_per_study/--resource: no node of the Ray cluster has "
                f"{describe_reservation(sweep)}; the studies would wait forever")
            release(locks)
            if started_ray:
                ray.shutdown()
            return 2
        task = ray.remote(run_study).options(num_cpus=sweep.cpus_per_study,
                                             resources=sweep.resources, max_retries=0)

        def launch(study: StudyRecord, resume: bool) -> None:
            study.status, study.attempts, study.error = "running", study.attempts + 1, None
            study.resumed = study.resumed or resume
            pending[task.remote(*task_arguments(sweep, study, resume))] = (study, time.time())

        for study, resume in to_run:
            launch(study, resume)
        sweep.write_manifest()
        say(f"running {len(to_run)} of {total} studies on Ray "
            f"({sweep.cpus_per_study} CPU(s) each); "
            f"logs: {sweep.paths.results_dir}/<study>.log")
    finished = total - len(to_run)
    previous_handler = signal.signal(signal.SIGTERM, interrupt)  # `kill` stops it as Ctrl-C does
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            study, launched = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as error:  # noqa: BLE001 (a lost worker, an unpicklable result...)
                outcome = {"status": 1, "log_tail": [f"{type(error).__name__}: {error}"],
                           "files": {}}
            write_shipped(sweep, outcome["files"])
            study.node = outcome.get("node", study.node)
            sweep.record_files(study)
            minutes = (time.time() - launched) / 60
            if outcome["status"] == 0 or study.attempts > sweep.retries:
                release({study.save_name: locks.pop(study.save_name)}
                        if study.save_name in locks else {})
            if outcome["status"] == 0:
                study.status = "done"
                finished += 1
                say(f"[{finished}/{total}] done     {study.save_name}: {describe(study)} "
                    f"({minutes:.1f} min)")
            else:
                study.error = last_error_line(outcome["log_tail"], outcome["status"])
                if study.attempts <= sweep.retries:
                    say(f"retrying {study.save_name}: {study.error}")
                    launch(study, sweep.paths.of(study.save_name)["checkpoint"].exists())
                else:
                    study.status = "failed"
                    finished += 1
                    say(f"[{finished}/{total}] FAILED   {study.save_name} after "
                        f"{study.attempts} attempt(s): {study.error}")
            sweep.write_manifest()
    except KeyboardInterrupt as stop:
        stop_running(pending, say)
        for study, _ in pending.values():
            study.status, study.error = "interrupted", "the sweep was interrupted"
            sweep.record_files(study)
        sweep.write_manifest()
        say(f"interrupted; run the same command again to resume. Manifest: "
            f"{sweep.manifest_path}")
        return interrupt_exit_status(stop)  # 130 for Ctrl-C, 143 for SIGTERM, as run.py
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        release(locks)
        if started_ray:
            ray.shutdown()
    return report(sweep, say)


def lock_shipped_studies(sweep: Sweep, to_run: list[tuple[StudyRecord, bool]]
                         ) -> tuple[list[tuple[StudyRecord, bool]], dict[str, StudyLock]]:
    """With --ship_files a study trains in a scratch folder elsewhere, where its own lock
    protects nothing here: this process holds the study's lock (`common.locking`) instead, from
    before it starts until its files are back. A study locked by another process is not run."""
    if not sweep.ship_files:
        return to_run, {}
    runnable, locks = [], {}
    for study, resume in to_run:
        lock = StudyLock(sweep.paths.study_files(study.save_name).lock, study.save_name)
        try:
            lock.__enter__()
        except UsageError as error:
            study.status, study.error = "conflict", str(error)
            continue
        locks[study.save_name] = lock
        runnable.append((study, resume))
    return runnable, locks


def release(locks: dict[str, StudyLock]) -> None:
    for lock in locks.values():
        lock.release()


def reservation(sweep: Sweep) -> dict[str, float]:
    """What each study reserves on the node it runs on."""
    return {"CPU": float(sweep.cpus_per_study), **sweep.resources}


def describe_reservation(sweep: Sweep) -> str:
    return " and ".join(f"{amount:g} {name}" for name, amount in reservation(sweep).items())


def fits_a_node(sweep: Sweep, nodes: list[dict[str, Any]]) -> bool:
    """Whether some live node (`ray.nodes()`) has everything a study reserves."""
    wanted = reservation(sweep)
    return any(node.get("Alive") and all(node.get("Resources", {}).get(name, 0.0) >= amount
                                         for name, amount in wanted.items())
               for node in nodes)


def interrupt(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def describe(study: StudyRecord) -> str:
    if study.mean_return is not None:
        return f"mean return {study.mean_return:.1f} (evaluation)"
    text = f"{study.frames:,} frames" if study.frames is not None else "no results file"
    if study.best_score is not None:
        text += f", best {study.best_by} {study.best_score:.1f}"
    return text


def stop_running(pending: dict[Any, tuple[StudyRecord, float]], say) -> None:
    """Ask running studies to stop (run.py saves its checkpoint on SIGINT) and wait briefly."""
    import ray

    say("\nstopping the running studies (their checkpoints are kept)...")
    for ref in pending:
        ray.cancel(ref, force=False)
    with contextlib.suppress(Exception):
        ray.wait(list(pending), num_returns=len(pending), timeout=30)


def last_error_line(log_tail: list[str], status: int) -> str:
    """The most telling line of a failed study's log: its error message, else its last line."""
    lines = [line.strip() for line in log_tail if line.strip() and not line.startswith("[")]
    errors = [line for line in lines if "error" in line.lower() or "stopped" in line.lower()]
    detail = (errors or lines or ["no output"])[-1]
    return f"exit status {status}: {detail}"


def report(sweep: Sweep, say) -> int:
    unfinished = [study for study in sweep.studies if study.status in UNFINISHED]
    counts = ", ".join(f"{count} {status}" for status, count in
                       status_counts(sweep.studies).items())
    say(f"sweep {sweep.name}: {len(sweep.studies)} studies: {counts}. "
        f"Manifest: {sweep.manifest_path}")
    for study in unfinished:
        say(f"  {study.status}: {study.save_name}: {study.error}")
    return 1 if unfinished else 0


def start_ray(address: str | None = None) -> None:
    """Local Ray with one CPU per core, or join the cluster at `address` (sending the code)."""
    import ray

    if address is None:
        # Workers import run.py and the packages from this checkout, wherever the sweep started.
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                    os.environ.get("PYTHONPATH")]))
        # "local": a Ray of its own even where another runs on this machine (`ray start`,
        # another sweep's cluster), which a bare ray.init() would join; --address=auto joins.
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": python_path}})
        return
    ray.init(address=address, log_to_driver=False, runtime_env={
        "working_dir": str(REPO_ROOT),
        "excludes": [".git", "results", "docs"],
    })

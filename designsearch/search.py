"""The search: an Optuna study over the design space, one trial per candidate design.

- Storage: any Optuna database URL (`--storage`), by default SQLite at
  `<results_dir>/<save_name>.db`; the study is named `save_name`, so `optuna.load_study` and
  optuna-dashboard open it as they are.
- Sampler: TPE (see docs/design_search.md for the choice and its measurement). Candidates are
  proposed in batches of `--parallel` and told back in trial order, so one seed gives one
  search wherever it runs. The sampler is reseeded from (seed, trials so far) at every start:
  a resumed search continues from its history instead of replaying its first proposals.
- Resume: finished trials are never evaluated again. A trial that was running when the search
  stopped (Ctrl-C, SIGTERM, kill -9) is marked failed and its design queued again, so it is
  evaluated once it can finish.
- One search per name at a time on this machine: a lock file `.NAME.design.lock` in
  `results_dir` (`StudyLock`, the studies' lock); a second search is refused in one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from designsearch.project import (
    CAN_FORK,
    ChildProcess,
    ParentGone,
    ParentWatch,
    StudyFailed,
    StudyLock,
    UsageError,
    raise_interrupted,
    start_child,
    start_ray,
)
from designsearch.scoring import Course, Job, evaluate
from designsearch.space import default_body, full_design, stands

PARETO_OBJECTIVES = (("score", "maximize"), ("leg_area", "minimize"), ("energy", "minimize"))
"""--objective=pareto: what the multi-objective sampler trades off, and which way each goes."""
STARTUP_TRIALS = 8
"""TPE's random start-up trials (the default body, where it is in the ranges, is the first)."""


@dataclass(frozen=True)
class Search:
    """Every setting of a design search; field names are design.py's flags."""

    save_name: str
    policy_name: str
    policy_path: Path
    ranges: dict[str, tuple[float, float]]
    fixed: dict[str, float]
    course: Course
    objective: str = "score"
    min_score: float = 300.0
    energy_weight: float = 0.01
    finish_bonus: float = 100.0
    trials: int = 30
    episodes: int = 5
    parallel: int = 4
    sampler: str = "tpe"
    storage: str = ""
    address: str | None = None
    resume: bool = False
    overwrite: bool = False
    models_dir: Path = Path("trained_models")
    results_dir: Path = Path("results")
    quiet: bool = False
    max_fall_rate: float = 1.0
    """A design that falls in a larger share of its episodes is infeasible; 1: no constraint."""
    train_fixed: dict[str, str] = field(default_factory=dict)
    """run.py flags given to every training run of the stages (e.g. a small batch_size)."""
    candidates: tuple[tuple[str, dict[str, float]], ...] = ()
    """A stage's study: the designs it evaluates, (label, params) each, enqueued when it is
    created; not TPE's."""

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.results_dir / f'{self.save_name}.db')}"

    @property
    def sqlite_file(self) -> Path | None:
        prefix = "sqlite:///"
        return Path(self.storage_url[len(prefix):]) if self.storage_url.startswith(prefix) \
            else None

    @property
    def direction(self) -> str:
        """The direction of the ranking (for --objective=pareto: by score)."""
        return "minimize" if self.objective == "min_leg_area" else "maximize"

    @property
    def directions(self) -> list[str]:
        """The study's directions: one per objective."""
        if self.objective == "pareto":
            return [direction for _, direction in PARETO_OBJECTIVES]
        return [self.direction]

    def identity(self) -> dict[str, Any]:
        """What makes two searches the same experiment (checked on --resume): not the budget
        (--trials may grow), nor where or how fast it runs."""
        return {"policy": self.policy_name, "ranges": {k: list(v) for k, v in self.ranges.items()},
                "fixed": self.fixed, "objective": self.objective,
                "min_score": self.min_score if self.objective == "min_leg_area" else None,
                "energy_weight": self.energy_weight if self.objective == "energy" else None,
                "finish_bonus": self.finish_bonus, "episodes": self.episodes,
                "course": dataclasses.asdict(self.course), "parallel": self.parallel,
                "sampler": self.sampler,
                **({"max_fall_rate": self.max_fall_rate} if self.max_fall_rate < 1 else {}),
                **({"candidates": list(self.candidates)} if self.candidates else {})}

    def outputs(self) -> list[Path]:
        """Files the search writes in results_dir besides its database."""
        stem = self.results_dir / f"{self.save_name}_design"
        return [stem.with_suffix(".md"), stem.with_suffix(".json"),
                *(self.results_dir / f"{self.save_name}_design_{kind}.png"
                  for kind in ("params", "progress", "pareto"))]

    def lock(self) -> StudyLock:
        return StudyLock(self.results_dir / f".{self.save_name}.design.lock", self.save_name)


def objective_value(search: Search, summary: dict[str, Any]) -> float:
    """The value a design is ranked by (for --objective=pareto: its score)."""
    if search.objective == "min_leg_area":
        return summary["leg_area"]
    return summary["energy_score" if search.objective == "energy" else "score"]


def objective_values(search: Search, summary: dict[str, Any]) -> float | list[float]:
    """What the study is told: one value, or one per objective of --objective=pareto."""
    if search.objective == "pareto":
        return [summary[name] for name, _ in PARETO_OBJECTIVES]
    return objective_value(search, summary)


def named_constraints(search: Search, summary: dict[str, Any]) -> dict[str, float]:
    """Optuna's constraints (feasible when every one is <= 0), by name: the mean return of
    min_leg_area and --max_fall_rate. Set on each trial (`set_constraints`), where TPE reads
    them."""
    values = {}
    if search.objective == "min_leg_area":
        values["min_score"] = search.min_score - summary["mean_return"]
    if search.max_fall_rate < 1:
        values["max_fall_rate"] = summary["fall_rate"] - search.max_fall_rate
    return values


def constraints(search: Search, summary: dict[str, Any]) -> list[float]:
    return list(named_constraints(search, summary).values())


def set_constraints(trial: Any, search: Search, summary: dict[str, Any]) -> None:
    """Optuna's current constraint API (`constraints_func` is deprecated since 5.0)."""
    for name, value in named_constraints(search, summary).items():
        trial.set_constraint(name, value)


def feasible(search: Search, summary: dict[str, Any]) -> bool:
    return all(value <= 0 for value in constraints(search, summary))


# ----- the study ---------------------------------------------------------------------------------

def quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_names(storage: str) -> list[str]:
    import optuna

    try:
        return optuna.get_all_study_names(storage)
    except Exception as error:  # noqa: BLE001 (a bad URL, a missing driver, no server)
        raise UsageError(f"--storage: cannot open {storage}: "
                         f"{str(error).splitlines()[0][:200]}") from None


def make_sampler(search: Search, trials_so_far: int) -> Any:
    import optuna

    seed = int(np.random.SeedSequence([search.course.seed, trials_so_far]).generate_state(1)[0])
    if search.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                            warn_independent_sampling=False)
    # The constraints are set on each trial (`set_constraints`): TPE reads them there.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)


def open_study(search: Search) -> Any:
    """Create, continue or replace the study, as --resume and --overwrite say; refuse the rest
    in one line naming the flag."""
    import optuna

    quiet_optuna()
    sqlite = search.sqlite_file
    exists_here = sqlite is None or sqlite.exists()
    names = study_names(search.storage_url) if exists_here else []
    present = search.save_name in names
    leftovers = [path for path in search.outputs() if path.exists()]
    if search.resume and not present:
        raise UsageError(f"--resume: there is no design search {search.save_name} in "
                         f"{search.storage_url} to continue; leave out --resume to start it")
    if not search.resume and not search.overwrite and (present or leftovers):
        what = f"a design search {search.save_name} exists in {search.storage_url}" if present \
            else f"{leftovers[0]} exists"
        raise UsageError(f"--save_name: {what}; continue it with --resume=true, start it again "
                         f"with --overwrite=true, or pick another --save_name")
    if search.overwrite:
        if present:
            optuna.delete_study(study_name=search.save_name, storage=search.storage_url)
        for path in leftovers:
            path.unlink()
    if search.resume:
        study = optuna.load_study(study_name=search.save_name, storage=search.storage_url)
        saved = study.user_attrs.get("search", {})
        differing = [key for key, value in search.identity().items()
                     if json.loads(json.dumps(value)) != saved.get(key)]
        if differing:
            flag = {"ranges": "the design flags", "fixed": "the design flags",
                    "policy": "--initial_model", "course": "--seed or the course flags"}.get(
                differing[0], f"--{differing[0]}")
            raise UsageError(f"--resume: {flag} differ from the search being resumed "
                             f"({differing[0]}: was {saved.get(differing[0])}); use the same "
                             f"flags, or another --save_name")
        problem = foreign_trial(search, study)
        if problem:
            raise UsageError(f"--resume: {search.storage_url}: {problem}, so the search stored "
                             f"there is not one this tool wrote (edited, or another's); start "
                             f"it again with --overwrite=true, or pick another --save_name")
        study.sampler = make_sampler(search, len(study.trials))
        return study
    if sqlite is not None:
        sqlite.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=search.save_name, storage=search.storage_url,
                                directions=search.directions, sampler=make_sampler(search, 0))
    study.set_user_attr("search", json.loads(json.dumps(search.identity())))
    baseline = default_body(search.ranges)
    if baseline is not None:
        study.enqueue_trial(baseline, user_attrs={"baseline": True})
    for label, params in search.candidates:
        study.enqueue_trial(params, user_attrs={"label": label})
    return study


EVALUATION_NUMBERS = ("score", "mean_return", "fall_rate", "finish_rate", "energy",
                      "energy_score", "leg_area")
EVALUATION_INTERVALS = ("score_ci", "return_ci")
"""What the report and the sampler read of every finished trial's evaluation
(`designsearch.scoring.summarize`)."""


def foreign_trial(search: Search, study: Any) -> str | None:
    """What shows that a stored trial is not one of this search's own, or None: a design
    outside the declared space, or a finished trial without its evaluation."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                          TrialState.RUNNING)):
        if set(trial.params) != set(search.ranges):
            return f"trial {trial.number} searched {', '.join(trial.params) or 'nothing'}"
        for name, value in trial.params.items():
            low, high = search.ranges[name]
            if not (isinstance(value, float) and low <= value <= high):
                return f"trial {trial.number} has {name}={value}, outside {low:g}:{high:g}"
        if trial.state == TrialState.COMPLETE and not evaluated(trial):
            return f"trial {trial.number} lacks its evaluation"
    return None


def evaluated(trial: Any) -> bool:
    """Whether a finished trial holds its objective values and the evaluation the report
    reads."""
    attrs = trial.user_attrs
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) \
            and math.isfinite(value)

    return (bool(trial.values) and all(map(number, trial.values))
            and all(number(attrs.get(key)) for key in EVALUATION_NUMBERS)
            and all(isinstance(attrs.get(key), list) and len(attrs[key]) == 2
                    and all(map(number, attrs[key])) for key in EVALUATION_INTERVALS))


@contextlib.contextmanager
def store_failures(search: Search) -> Iterator[None]:
    """A write to the search's database that fails at run time (a read-only or full file, a
    lost server) ends the search in one line, exit status 1 (StudyFailed), instead of a
    traceback; what was stored before stays."""
    import optuna
    import sqlalchemy.exc

    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as error:
        cause = error.__cause__ or error
        reason = getattr(cause, "orig", None) or cause
        first = (str(reason).strip().splitlines() or [type(reason).__name__])[0]
        raise StudyFailed(f"cannot write the search's database {search.storage_url}: "
                          f"{first[:200]}; the trials stored before are kept") from None


def requeue_unfinished(study: Any) -> int:
    """Trials left RUNNING (by a search that died, kill -9, or one being interrupted now):
    failed, and their designs queued again. Safe because this process holds the lock."""
    from optuna.trial import TrialState

    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in stale:
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={**trial.user_attrs,
                                                      "requeued_from": trial.number})
    return len(stale)


# ----- where candidates are evaluated -------------------------------------------------------------

class Evaluator:
    """Evaluates a batch of jobs in parallel and yields the summaries in order."""

    def imap(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        raise NotImplementedError

    def close(self, force: bool = False) -> None:
        pass


class InProcess(Evaluator):
    def imap(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        return map(evaluate, jobs)


CLOSE_GRACE_S = 2.0
"""How long a pool process may take to exit once told to, before it is killed."""
REPLY_SLICE_S = 0.5
"""The pool waits for results in slices this long, checking on its processes between them."""


class EvaluatorLost(StudyFailed):
    """A pool process died: its candidate's evaluation is lost, the search cannot go on."""


def serve_evaluations(connection: Connection, parent: ParentWatch) -> None:
    """A pool process: evaluate each job it is sent and send back its summary, or the
    traceback of its failure. Returns at end of file (the search closed it or died) or when
    the search's process is gone."""
    try:
        while True:
            parent.wait_for_message()
            job = connection.recv()
            try:
                reply: dict[str, Any] | str = evaluate(job)
            except Exception:  # noqa: BLE001 (reported to the search, which raises it)
                reply = traceback.format_exc()
            connection.send(reply)
    except (EOFError, OSError, ParentGone):
        pass


class ProcessPool(Evaluator):
    """Forked processes on this machine (`workers.processes`): they never outlive the search
    (SIGTERM, kill -9 and all), hold none of its files (its lock included), ignore the signals
    sent to its process group (the search stops them), and one that dies is named at once."""

    def __init__(self, processes: int) -> None:
        self.children: list[ChildProcess] = []
        try:
            for _ in range(processes):
                self.children.append(start_child(serve_evaluations))
        except BaseException:
            self.close(force=True)
            raise

    def imap(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        """The jobs' summaries in job order, each as soon as it and those before it are in."""
        waiting = list(enumerate(jobs))
        running: dict[int, int] = {}  # child -> job
        done: dict[int, dict[str, Any]] = {}
        idle = list(range(len(self.children)))
        for position in range(len(jobs)):
            while position not in done:
                while idle and waiting:
                    child = idle.pop()
                    running[child], job = waiting.pop(0)
                    self._send(child, job)
                for child in self._ready(running):
                    done[running.pop(child)] = self._receive(child)
                    idle.append(child)
            yield done.pop(position)

    def _send(self, child: int, job: Job) -> None:
        try:
            self.children[child].connection.send(job)
        except OSError:
            raise self._lost(child) from None

    def _ready(self, running: dict[int, int]) -> list[int]:
        """The running children with a reply, after at most one slice of waiting; a dead one
        raises EvaluatorLost."""
        by_connection = {self.children[child].connection: child for child in running}
        ready = [by_connection[c] for c in wait(list(by_connection), REPLY_SLICE_S)]
        for child in running:
            if child not in ready and not self.children[child].is_alive():
                raise self._lost(child)
        return ready

    def _receive(self, child: int) -> dict[str, Any]:
        try:
            reply = self.children[child].connection.recv()
        except (EOFError, OSError):
            raise self._lost(child) from None
        if isinstance(reply, str):
            raise RuntimeError(f"evaluation process {child} failed:\n{reply}")
        return reply

    def _lost(self, child: int) -> EvaluatorLost:
        process = self.children[child]
        if not process.wait(timeout_s=1.0):
            process.kill()
            process.wait(timeout_s=1.0)
        return EvaluatorLost(f"evaluation process {child} (PID {process.pid}) "
                             f"{process.describe_exit()}")

    def close(self, force: bool = False) -> None:
        """Bounded: told to exit (or, `force`, killed at once), then killed past
        CLOSE_GRACE_S; every process is reaped. Idempotent."""
        for process in self.children:
            if force:
                process.kill()
            process.close_connection()  # end of file: an idle process exits
        deadline = time.monotonic() + CLOSE_GRACE_S
        for process in self.children:
            if not process.wait(max(0.0, deadline - time.monotonic())):
                process.kill()
                process.wait(timeout_s=5.0)
        self.children = []


class RayTasks(Evaluator):
    """One Ray task (1 CPU) per candidate: a local Ray (`--address=local`) or a cluster."""

    def __init__(self, address: str) -> None:
        import ray

        self.started = not ray.is_initialized()
        if self.started:
            try:
                start_ray(None if address == "local" else address)
            except Exception as error:  # noqa: BLE001 (no cluster there, a bad address)
                ray.shutdown()
                first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise UsageError(f"--address: cannot start or reach Ray at {address}: "
                                 f"{first[:200]}") from None
        self.task = ray.remote(evaluate).options(num_cpus=1, max_retries=1)
        self.refs: list[Any] = []

    def imap(self, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        import ray

        self.refs = [self.task.remote(job) for job in jobs]
        for ref in self.refs:
            yield ray.get(ref)
        self.refs = []

    def close(self, force: bool = False) -> None:
        import ray

        for ref in self.refs if force else []:
            ray.cancel(ref, force=True)
        if self.started:
            ray.shutdown()


def make_evaluator(search: Search) -> Evaluator:
    if search.address is not None:
        return RayTasks(search.address)
    processes = min(search.parallel, os.cpu_count() or 1)
    return ProcessPool(processes) if processes > 1 and CAN_FORK else InProcess()


# ----- the loop ----------------------------------------------------------------------------------

def completed(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run_search(search: Search, say: Callable[[str], None], banner: str = "",
               evaluators: Callable[[Search], Evaluator] = make_evaluator
               ) -> tuple[Any, int | None]:
    """Run trials until `search.trials` have completed. Returns (study, signal that stopped it
    or None). The caller holds the lock. `evaluators` makes what scores the candidates (a
    test injects a cheap objective)."""
    from optuna.distributions import FloatDistribution
    # A cluster is reached before the study is created: an unreachable one leaves no database.
    remote = RayTasks(search.address) if search.address is not None else None
    try:
        study = open_study(search)
    except BaseException:
        if remote is not None:
            remote.close()
        raise
    if banner:
        say(banner)
    requeued = requeue_unfinished(study)
    done = len(completed(study))
    if requeued:
        say(f"{requeued} trial(s) interrupted earlier are queued again")
    if done:
        say(f"resuming: {done} trial(s) already evaluated, none is evaluated again")
    distributions = {name: FloatDistribution(low, high) for name, (low, high)
                     in search.ranges.items()}
    policy_bytes = search.policy_path.read_bytes()
    evaluator = remote or (evaluators(search) if done < search.trials else InProcess())
    stopped: int | None = None
    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        while done < search.trials:
            asked = [ask_standing(study, distributions, search.fixed)
                     for _ in range(min(search.parallel, search.trials - done))]
            jobs = [Job(full_design(trial.params, search.fixed), search.episodes, search.course,
                        search.finish_bonus, search.energy_weight, search.policy_name,
                        policy_bytes) for trial in asked]
            for trial, summary in zip(asked, evaluator.imap(jobs), strict=True):
                summary.pop("pid", None)
                for key, value in summary.items():
                    trial.set_user_attr(key, value)
                set_constraints(trial, search, summary)
                value = objective_value(search, summary)
                study.tell(trial, objective_values(search, summary))
                done += 1
                say(progress_line(search, trial.number, done, trial.params, summary, value,
                                  best_so_far(search, study)))
    except KeyboardInterrupt as interrupt:
        stopped = getattr(interrupt, "signum", signal.SIGINT)
        settle(study, evaluator)
        evaluator = InProcess()
        say(f"stopped by signal {stopped}: {done} trial(s) kept; continue with --resume=true")
    except EvaluatorLost as error:
        settle(study, evaluator)
        evaluator = InProcess()
        raise EvaluatorLost(f"{error}; {done} trial(s) kept; continue with --resume=true") \
            from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        evaluator.close()
    return study, stopped


def ask_standing(study: Any, distributions: dict[str, Any], fixed: dict[str, float]) -> Any:
    """A trial whose body starts standing. The sampler's others are told they failed (never
    evaluated, never counted): a box of per-leg lengths holds legs whose shin is over twice
    their thigh, which the walker refuses (docs/ha2018.md)."""
    from optuna.trial import TrialState

    while True:
        trial = study.ask(distributions)
        if stands(full_design(trial.params, fixed)):
            return trial
        trial.set_user_attr("refused", "the body does not start standing")
        study.tell(trial, state=TrialState.FAIL)


def settle(study: Any, evaluator: Evaluator) -> None:
    """After a stop or a lost evaluation: the evaluations under way end, and their trials are
    failed and queued again (every running trial is this process's: it holds the lock). A
    second Ctrl-C or SIGTERM meanwhile cannot leave a trial RUNNING: this takes moments."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT,
                                                                    signal.SIGTERM)}
    try:
        evaluator.close(force=True)
        requeue_unfinished(study)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def best_so_far(search: Search, study: Any) -> float | None:
    values = [objective_value(search, t.user_attrs) for t in completed(study)
              if feasible(search, t.user_attrs)]
    if not values:
        return None
    return min(values) if search.direction == "minimize" else max(values)


def format_params(params: dict[str, float]) -> str:
    return " ".join(f"{name}={value:.2f}" for name, value in params.items())


def progress_line(search: Search, number: int, done: int, params: dict[str, float],
                  summary: dict[str, Any], value: float, best: float | None) -> str:
    low, high = summary["score_ci"]
    line = (f"[{done}/{search.trials}] trial {number}: {format_params(params)} "
            f"score {summary['score']:.1f} [{low:.1f}, {high:.1f}] "
            f"return {summary['mean_return']:.1f} falls {100 * summary['fall_rate']:.0f}% "
            f"finished {100 * summary['finish_rate']:.0f}%")
    if search.objective in ("min_leg_area", "pareto"):
        line += f" leg_area {summary['leg_area']:.0f}"
    if constraints(search, summary):
        line += " (feasible)" if feasible(search, summary) else " (infeasible)"
    if search.objective in ("energy", "pareto"):
        line += f" energy {summary['energy']:.0f} objective {value:.1f}"
    best_text = "none feasible" if best is None else f"{best:.1f}"
    return line + f" | best {best_text}"

"""The study configuration: one typed object built from the command line and passed everywhere."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import os
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

from common import resources
from common.errors import UsageError
from common.resources import CAN_FORK
from common.study_files import (
    MAX_SAVE_NAME_LENGTH,
    RESULT_SUFFIXES,
    StudyFiles,
    check_save_name,
    colliding_endings,
)
from envs import (
    COURSE_DEFAULTS,
    DECLARED,
    DESIGN_DEFAULTS,
    DESIGN_DRAWS,
    DESIGN_PARAMETERS,
    EDGE_PROBABILITY,
    ENV_ID,
    MAX_ABS_FALL_PENALTY,
    MAX_TERRAIN_LENGTH_SCALE,
    MAX_TIME_STEPS,
    MIN_TERRAIN_LENGTH_SCALE,
    InvalidWalkerArgument,
    WalkerDesign,
    check_walker_arguments,
)
from envs.design import FOLLOWERS, PARAMETERS, SHORTHANDS, overriders, reaches_body

OPTIMIZERS = {"adam": "Adam", "adagrad": "Adagrad", "sgd": "SGD", "rmsprop": "RMSprop"}
"""--optimizer values and the torch.optim class each names."""
BEST_BY = ("eval", "running_average")
"""--best_by values: what picks the best checkpoint (study.evaluations)."""
TRANSFER_STRATEGIES = ("none", "initialize", "freeze_all_but_final", "freeze_then_thaw")
SAVE_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VIDEO_SUFFIXES = (".gif", ".mp4")
MIN_ENVS_FOR_WORKERS = 4
"""Fewer walkers are stepped in the training process by default: 2 or 3 walkers on a worker
each ran slower than in process (measured: docs/speed.md)."""
WORKERS_PER_CORE = 4
"""At most this many worker processes per core: more only slow the study down."""
MAX_TOTAL_FRAMES = 10**12
"""Far beyond any study (years of this tool's frames per second), and a refusal of the typo
that would otherwise run forever."""
MAX_TRAIN_STEPS = 1_000_000
"""Gradient steps per batch: more would hold a single update for days."""
MAX_EPISODES = 100_000
"""Episodes of one evaluation (--eval_episodes, --eval_episodes_during): their seeds are drawn
up front and their results kept, so the count sizes memory before the first episode."""
MAX_DEVICE_INDEX = 127
"""torch keeps device indices in 8 bits: `cuda:128` silently becomes `cuda:-128`."""
MAX_VALUE_COEF = 100.0
MAX_NOISE_ALPHA = 100.0
"""Beyond these the loss (or the noised weights) overflow at the first update, which would then
blame the learning rate."""


class DesignRange(NamedTuple):
    """`--leg_length=24:46`: each walker draws the value uniformly in [low, high] at every reset."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}:{self.high:g}"


DesignValue = float | DesignRange


EXPERIMENT = "experiment"
RUN = "run"


STUDY = "Study parameters"
ENVIRONMENT = "Environment parameters"
DESIGN = "Walker design parameters"
MODEL = "Network and model parameters"
TRANSFER = "Transfer learning parameters"
"""The sections of `--help` (and of README's parameter reference), in this order."""
GROUPS = (STUDY, ENVIRONMENT, DESIGN, MODEL, TRANSFER)


def experiment_setting(default: Any = dataclasses.MISSING, *, group: str, help: str = "",
                       transfer: bool = False) -> Any:
    """A Config field that can change what a study learns (walker, network, algorithm,
    walkers, seed, transfer, schedules): studies are the same experiment exactly when these
    agree. `transfer`: meaningful only with an initial model. `group` and `help` are its
    `--help` section and text (a design parameter's help is its declaration's, envs.DECLARED)."""
    return dataclasses.field(default=default, metadata={
        "part": EXPERIMENT, "transfer": transfer, "group": group, "help": help})


def design_setting(name: str) -> Any:
    """A design parameter's field: an experiment setting whose default and help are its
    declaration's (envs.DECLARED)."""
    return experiment_setting(DESIGN_DEFAULTS[name], group=DESIGN)


CHANGES = "changes"
KEPT = "kept"
LOCATES = "locates"
NOT_TRAINING = "not training"
"""What `--resume` does with a run setting (`on_resume`): it may change (restored from the study
when not given), it is kept (restored, and refused if given otherwise: the evaluation protocol
that picked the best policy so far), it locates the study (taken as given), or it is not about
training a study (an action on files, or a mode that runs a saved policy)."""


def run_setting(default: Any = dataclasses.MISSING, *, group: str, help: str,
                on_resume: str = CHANGES) -> Any:
    """A Config field that says how a study runs (budget, processes, device, folders, display,
    what to do with existing files): it may differ between runs of one experiment, e.g. when
    a study is resumed on another machine or extended with a larger budget, unless
    `on_resume` says otherwise."""
    return dataclasses.field(default=default, metadata={"part": RUN, "group": group,
                                                        "help": help, "on_resume": on_resume})


def default_num_workers(num_envs: int, cpus: int) -> int:
    """Worker processes for `num_envs` walkers on `cpus` cores: one per core, at most one per
    walker, none where they cannot pay for their round trips (see Config.worker_processes)."""
    workers = min(num_envs, cpus)
    too_few = num_envs < MIN_ENVS_FOR_WORKERS or workers < 2
    return 0 if too_few or not CAN_FORK else workers


def names_a_model(initial_model: str) -> bool:
    """Whether an --initial_model value names a model (any case of "none" does not)."""
    return initial_model.lower() != "none"


@dataclass(frozen=True)
class Config:
    """Every setting of a study. Field names are the command-line flags.

    Each field is declared with `experiment_setting` or `run_setting`: that one declaration is
    what resume checks, sweeps and analysis use to decide whether two studies are the same
    experiment (`experiment_of`). A field declared otherwise fails at import.
    """

    save_name: str = run_setting(
        "", group=STUDY,
        help=f"name under which the trained model and results are saved: letters, digits, "
            f"_ . -, at most {MAX_SAVE_NAME_LENGTH} characters, not ending in "
            f"{' or '.join(colliding_endings())}; not needed to render, record or "
            f"evaluate --initial_model",
        on_resume=LOCATES)
    """"": not given (allowed only where no study is trained: see `validate`)."""
    total_frames: int = run_setting(
        10_000_000, group=STUDY,
        help="total number of frames (time steps) the study runs for, never more: the "
            "last batch is shortened to fit (at least num_envs, one step of each walker)")
    render: bool = run_setting(
        False, group=STUDY,
        help="true: watch the policy (initial_model, else models_dir/SAVE_NAME.pt) in a "
            "window; no training happens",
        on_resume=NOT_TRAINING)
    record: str = run_setting(
        "", group=STUDY,
        help="write the policy's episodes to this .gif or .mp4 (no display needed); no training",
        on_resume=NOT_TRAINING)
    export: str = run_setting(
        "", group=STUDY,
        help="write the policy's deterministic actions as an ONNX model to this .onnx file: "
            "the walker's raw observation in, the action out, the observation normaliser and "
            "(for a design-conditioned policy) the design flags' body inside; no training",
        on_resume=NOT_TRAINING)
    eval_episodes: int = run_setting(
        0, group=STUDY,
        help="evaluate the policy deterministically for N episodes (seeds seed, seed+1, "
            "...), print the mean return and write results/SAVE_NAME_eval.json "
            "(without --save_name: POLICY_on_WALKER_eval.json, one per policy and body); "
            "with --record: episodes recorded (0 means 1); with --render: episodes shown "
            "(0: until the window is closed)",
        on_resume=NOT_TRAINING)
    seed: int = experiment_setting(
        1, group=STUDY,
        help="seed for python, numpy, torch and the environments")
    resume: bool = run_setting(
        False, group=STUDY,
        help="true: continue the study SAVE_NAME from its last checkpoint with the settings "
            "it was started with (a flag given must agree with them or be a run setting; a "
            "larger --total_frames extends it)",
        on_resume=NOT_TRAINING)
    overwrite: bool = run_setting(
        False, group=STUDY,
        help="true: start the study again, replacing the files of an earlier study of this "
            "save_name (without it, a name already used is refused); with --eval_episodes, "
            "replace an evaluation report of another policy or walker",
        on_resume=NOT_TRAINING)
    quiet: bool = run_setting(
        False, group=STUDY,
        help="true: no progress display")
    models_dir: str = run_setting(
        "trained_models", group=STUDY,
        help="folder for trained policies",
        on_resume=LOCATES)
    results_dir: str = run_setting(
        "results", group=STUDY,
        help="folder for results files",
        on_resume=LOCATES)
    tensorboard: str = run_setting(
        "runs", group=STUDY,
        help="folder for TensorBoard events, each study in FOLDER/SAVE_NAME "
            "(tensorboard --logdir FOLDER); none: no events")
    list_models: bool = run_setting(
        False, group=STUDY,
        help="true: list the policies in models_dir (design, frames, score and how it "
            "was measured, whether design-conditioned) and exit",
        on_resume=NOT_TRAINING)
    eval_every: int = run_setting(
        200_000, group=STUDY,
        help="every this many frames (and at the end of the budget) evaluate the policy "
            "deterministically on --eval_episodes_during fixed episodes (their seeds and, "
            "for a design range, their bodies never change during the study); written to "
            "results, SAVE_NAME_evaluations.csv and TensorBoard (eval/); 0: never",
        on_resume=KEPT)
    eval_episodes_during: int = run_setting(
        10, group=STUDY,
        help="episodes of each evaluation during training",
        on_resume=KEPT)
    best_by: str = run_setting(
        "eval", group=STUDY,
        help=f"what picks the best checkpoint ({' or '.join(BEST_BY)}): eval: the best "
            f"deterministic evaluation (needs --eval_every > 0); running_average: the best "
            f"average return of the last 100 training episodes, under exploration noise",
        on_resume=KEPT)
    env: str = experiment_setting(
        ENV_ID, group=ENVIRONMENT,
        help=f"environment to train in; only {ENV_ID} is implemented")
    terrain_length_scale: float = experiment_setting(
        COURSE_DEFAULTS["terrain_length_scale"], group=ENVIRONMENT,
        help=f"above/below 1 lengthens/shortens the course the walker can "
            f"traverse, in [{MIN_TERRAIN_LENGTH_SCALE:g}, "
            f"{MAX_TERRAIN_LENGTH_SCALE:g}]")
    fall_penalty: float = experiment_setting(
        COURSE_DEFAULTS["fall_penalty"], group=ENVIRONMENT,
        help=f"reward when the walker falls over (ends the episode), in "
            f"[{-MAX_ABS_FALL_PENALTY:g}, {MAX_ABS_FALL_PENALTY:g}]")
    max_time_steps: int = experiment_setting(
        COURSE_DEFAULTS["max_time_steps"], group=ENVIRONMENT,
        help=f"maximum number of time steps in each episode, in [1, {MAX_TIME_STEPS:g}]")
    leg_length: DesignValue = design_setting("leg_length")
    thigh_length: DesignValue | None = design_setting("thigh_length")
    shin_length: DesignValue | None = design_setting("shin_length")
    leg_width: DesignValue = design_setting("leg_width")
    motor_torque: DesignValue = design_setting("motor_torque")
    left_thigh_length: DesignValue | None = design_setting("left_thigh_length")
    right_thigh_length: DesignValue | None = design_setting("right_thigh_length")
    left_shin_length: DesignValue | None = design_setting("left_shin_length")
    right_shin_length: DesignValue | None = design_setting("right_shin_length")
    left_thigh_width: DesignValue | None = design_setting("left_thigh_width")
    right_thigh_width: DesignValue | None = design_setting("right_thigh_width")
    left_shin_width: DesignValue | None = design_setting("left_shin_width")
    right_shin_width: DesignValue | None = design_setting("right_shin_width")
    design_draw: str = experiment_setting(
        DESIGN_DRAWS[0], group=DESIGN,
        help=f"how each walker draws the design flags given as ranges at every reset: "
            f"uniform; or edges: each ranged parameter at one end of its range with "
            f"probability {EDGE_PROBABILITY:g} (either end alike), uniformly in it otherwise, "
            f"so that the box's faces and corners are visited far more often")
    hidden_layers: tuple[int, ...] = experiment_setting(
        (32, 32, 32, 32), group=MODEL,
        help="widths of the hidden layers of actor and critic, e.g. [32,32,32,32]; "
            "networks, batch and walkers together must fit in half of this "
            "machine's memory (estimated before the study starts)")
    algorithm: str = experiment_setting(
        "ppo", group=MODEL,
        help="reinforcement learning algorithm; only ppo is implemented")
    optimizer: str = experiment_setting(
        "adam", group=MODEL,
        help=f"optimiser for the network parameters: {', '.join(OPTIMIZERS)}")
    learning_rate: float = experiment_setting(
        3e-4, group=MODEL,
        help="learning rate of the optimiser")
    gamma: float = experiment_setting(
        0.98, group=MODEL,
        help="reward discount rate, in (0, 1]")
    batch_size: int = experiment_setting(
        10_000, group=MODEL,
        help="frames collected (across all workers) before each training phase")
    train_steps: int = experiment_setting(
        80, group=MODEL,
        help="gradient steps (each on one minibatch) per batch")
    minibatch_size: int = experiment_setting(
        1000, group=MODEL,
        help="frames per gradient step, at least 2 (its advantages are normalised "
            "by their standard deviation)")
    action_std: float = experiment_setting(
        0.5, group=MODEL,
        help="standard deviation of the exploration noise on actions (fixed; not with a "
            "schedule)")
    action_std_start: float | None = experiment_setting(
        None, group=MODEL,
        help="noise std at the start of a linear schedule (set all three to use it)")
    action_std_final: float | None = experiment_setting(
        None, group=MODEL,
        help="noise std at the end of the schedule")
    action_std_end: float | None = experiment_setting(
        None, group=MODEL,
        help="fraction of total_frames, in [0, 1], over which the schedule runs; "
            "fixed in frames when the study starts, so a study extended with a "
            "larger --total_frames continues it")
    device: str = run_setting(
        "cpu", group=MODEL,
        help=f"torch device to train on: cpu, cuda, cuda:N (N <= {MAX_DEVICE_INDEX}), mps")
    num_envs: int = experiment_setting(
        8, group=MODEL,
        help="walkers stepped in parallel; the batch is split evenly between them (memory "
            "bounds them, see hidden_layers)")
    num_workers: int | None = run_setting(
        None, group=MODEL,
        help=f"processes stepping the walkers, at most num_envs and {WORKERS_PER_CORE} per "
            f"core; 0: in the training process; none: one per core, at most num_envs "
            f"(0 for fewer than 4 walkers or 1 core)")
    gae_lambda: float = experiment_setting(
        0.95, group=MODEL,
        help="GAE lambda, in [0, 1]")
    clip: float = experiment_setting(
        0.2, group=MODEL,
        help="PPO clipping range of the probability ratio")
    value_coef: float = experiment_setting(
        0.5, group=MODEL,
        help=f"weight of the value loss, in [0, {MAX_VALUE_COEF:g}]. Actor and critic are "
            f"separate networks, so the value loss reaches only the critic, and an "
            f"optimizer that normalises each gradient (adam, rmsprop, adagrad) cancels "
            f"its scale: it acts through the --max_grad_norm clip over both networks "
            f"(a larger weight makes the critic's gradient more of the clipped norm, "
            f"so every step, the actor's too, is clipped harder). With sgd it scales "
            f"the critic's steps; 0: the critic does not learn")
    max_grad_norm: float = experiment_setting(
        0.5, group=MODEL,
        help="gradients are clipped to this global norm")
    initial_model: str = experiment_setting(
        "none", transfer=True, group=TRANSFER,
        help="trained_models/NAME.pt (or a path to a .pt) to start from; none: scratch; "
            "auto: the compatible policy in models_dir that walks this walker best in "
            "a short zero-shot evaluation")
    transfer_learning: str = experiment_setting(
        "none", transfer=True, group=TRANSFER,
        help=f"how to reuse initial_model: {', '.join(TRANSFER_STRATEGIES)}")
    tl_end: float = experiment_setting(
        0.25, transfer=True, group=TRANSFER,
        help="freeze_then_thaw: fraction of total_frames, in (0, 1], over which layers thaw; "
            "fixed in frames when the study starts (thawed layers stay thawed in a study "
            "extended with a larger --total_frames)")
    reset_final_layer: bool = experiment_setting(
        False, transfer=True, group=TRANSFER,
        help="true: re-initialise the final layer of actor and critic after loading")
    add_noise_layers: int = experiment_setting(
        0, transfer=True, group=TRANSFER,
        help="add Gaussian noise to the final N layers of actor and critic")
    add_noise_alpha: float = experiment_setting(
        1.0, transfer=True, group=TRANSFER,
        help=f"noise std relative to the std of each noised layer's parameters, in "
            f"[0, {MAX_NOISE_ALPHA:g}]")

    @property
    def steps_per_env(self) -> int:
        """Rollout length per worker; the batch is rounded up to a multiple of `num_envs`."""
        return math.ceil(self.batch_size / self.num_envs)

    @property
    def frames_per_batch(self) -> int:
        return self.steps_per_env * self.num_envs

    def steps_in_batch(self, frames: int) -> int:
        """Steps of every walker in the batch that starts after `frames`: a full batch, or the
        rest of the budget (the study never trains past total_frames); 0 once it is spent."""
        return max(0, min(self.steps_per_env, (self.total_frames - frames) // self.num_envs))

    @property
    def worker_processes(self) -> int:
        """Stepping is the bottleneck on a CPU box: by default one process per core.

        Except where workers cannot pay for their round trips: with fewer than
        MIN_ENVS_FOR_WORKERS walkers, or fewer than two cores, the training process steps
        them itself (faster, measured: benchmarks/README.md).
        """
        if self.num_workers is not None:
            return self.num_workers
        return default_num_workers(self.num_envs, os.cpu_count() or 1)

    @property
    def uses_schedule(self) -> bool:
        return self.action_std_start is not None

    @property
    def has_initial_model(self) -> bool:
        return names_a_model(self.initial_model)

    @property
    def mode(self) -> str:
        """What this run does, named by the flag that asked for it: "render", "record",
        "export" or "eval_episodes" (a saved policy, in that precedence), else "train"."""
        if self.render:
            return "render"
        if self.record:
            return "record"
        if self.export:
            return "export"
        return "eval_episodes" if self.eval_episodes > 0 else "train"

    @property
    def runs_saved_policy(self) -> bool:
        """--render, --record, --export and --eval_episodes run a saved policy instead of
        training."""
        return self.mode != "train"

    def design_ranges(self) -> dict[str, list[float]]:
        """The design parameters given as ranges, redrawn by every walker at every reset."""
        return {name: list(value) for name in DESIGN_PARAMETERS
                if isinstance(value := getattr(self, name), DesignRange)}

    def design(self) -> dict[str, DesignValue | None]:
        """The walker's design as the flags give it (numbers, ranges, or None: follows leg)."""
        return {name: getattr(self, name) for name in DESIGN_PARAMETERS}

    def env_kwargs(self) -> dict[str, Any]:
        """The walker's constructor arguments. A ranged parameter's fixed value is only the
        body the walker is built with before its first reset, which draws a new one."""
        fixed = {name: value.low if isinstance(value, DesignRange) else value
                 for name, value in self.design().items()}
        return {
            **fixed,
            "terrain_length_scale": self.terrain_length_scale,
            "fall_penalty": self.fall_penalty,
            "max_time_steps": self.max_time_steps,
            "design_ranges": self.design_ranges(),
            "design_draw": self.design_draw,
        }


def settings_where(**metadata: Any) -> tuple[str, ...]:
    """Config fields whose declaration carries `metadata`, in declaration order."""
    return tuple(spec.name for spec in dataclasses.fields(Config)
                 if all(spec.metadata.get(key) == value for key, value in metadata.items()))


EXPERIMENT_SETTINGS = settings_where(part=EXPERIMENT)
RUN_SETTINGS = settings_where(part=RUN)
TRANSFER_SETTINGS = settings_where(transfer=True)
TRANSFER_FLAGS = tuple(name for name in TRANSFER_SETTINGS if name != "initial_model")
"""Flags that mean nothing without --initial_model."""
RESUME_CHANGES = settings_where(on_resume=CHANGES)
RESUME_KEPT = settings_where(on_resume=KEPT)
RESUME_LOCATES = settings_where(on_resume=LOCATES)
_unclassified = set(settings_where()) - set(EXPERIMENT_SETTINGS) - set(RUN_SETTINGS)
if _unclassified:
    raise TypeError(f"Config fields {sorted(_unclassified)} must be declared with "
                    f"experiment_setting() or run_setting()")


def experiment_of(settings: Config | Mapping[str, Any]) -> dict[str, Any]:
    """The experiment a study's settings describe, in a form where equal experiments compare
    equal: what identifies a study to `--resume`, to a sweep and to the analysis.

    `settings` is a Config, or its flags as a plain dict as checkpoints and results files
    store them. Only experiment settings count. A setting missing from an older file takes its
    default (the flag did not exist yet, so the study ran with its default behaviour); lists
    become tuples; an initial model is named by its file name without `.pt` (a name, or a path
    to a copy); `none` and `initialize` are one strategy; a study without an initial model has
    no transfer settings; a study with a noise schedule has no fixed `action_std`.
    """
    if isinstance(settings, Config):
        settings = dataclasses.asdict(settings)
    experiment = {}
    for spec in dataclasses.fields(Config):
        if spec.name in EXPERIMENT_SETTINGS:
            value = settings.get(spec.name, spec.default)
            experiment[spec.name] = tuple(value) if isinstance(value, list) else value
    if str(experiment["initial_model"]).lower() == "none":
        for name in TRANSFER_SETTINGS:
            del experiment[name]
    else:
        experiment["initial_model"] = Path(str(experiment["initial_model"])).stem
        if experiment["transfer_learning"] == "none":
            experiment["transfer_learning"] = "initialize"
    if experiment["action_std_start"] is not None:
        del experiment["action_std"]  # the schedule replaces it
    return experiment


def config_from_settings(settings: Mapping[str, Any]) -> Config:
    """A Config from a study's flags as files store them (lists for tuples): flags the file
    lacks take their defaults, names that are no longer flags are ignored."""
    names = {spec.name for spec in dataclasses.fields(Config)}
    return Config(**{name: tuple(value) if isinstance(value, list) else value
                     for name, value in settings.items() if name in names})


def experiment_differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the experiment settings in which two studies' flags (plain dicts) differ."""
    before, after = experiment_of(saved), experiment_of(wanted)
    names = [name for name in EXPERIMENT_SETTINGS if name in before or name in after]
    return [name for name in names if before.get(name) != after.get(name)]


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits with status 2;
    an unknown flag close to a known one gets "did you mean" (Python 3.11's argparse has none)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:
        namespace, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self.error(self.describe_unknown(unknown[0]))
        return namespace

    def known_flags(self) -> list[str]:
        return [option for action in self._actions for option in action.option_strings
                if option.startswith("--")]

    def describe_unknown(self, argument: str) -> str:
        flag = argument.split("=", 1)[0]
        return f"unrecognized argument {argument}{did_you_mean(flag, self.known_flags())}"


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` (did you mean X?)` for the known name closest to a mistyped one, or ""."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


SUFFIX_MULTIPLIERS = {"k": 1e3, "m": 1e6, "g": 1e9}
"""`50k`, `2M`: not accepted (`m` could be milli), but recognised so as to name the number."""


def parse_count(text: str) -> int:
    """An integer that may be written in scientific notation, as the spec's `10e6`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number{suggest_scientific(text)}, got {text!r}") from None
    if not math.isfinite(value) or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def suggest_scientific(text: str) -> str:
    """` (write 5e4 or 50000)` for `50k`: the number a suffixed count means, as flags take it."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgKMG])\s*", text)
    if not match:
        return ""
    value = float(match[1]) * SUFFIX_MULTIPLIERS[match[2].lower()]
    exponent = math.floor(math.log10(value)) if value >= 1 else 0
    mantissa = round(value / 10**exponent, 6)
    return f" (write {mantissa:g}e{exponent} or {value:.0f})"


def parse_layers(text: str) -> tuple[int, ...]:
    """`[64,64]`, `64,64` or `64 64` -> (64, 64)."""
    parts = [p for p in re.split(r"[\s,]+", text.strip().strip("[]()")) if p]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(
            f"expected a list of positive layer widths such as [32,32], got {text!r}"
        )
    return tuple(int(p) for p in parts)


def parse_design_value(text: str) -> DesignValue:
    """`34` -> 34.0; `24:46` -> DesignRange(24.0, 46.0). The walker checks the values."""
    parts = text.strip().split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return DesignRange(*values)
    raise argparse.ArgumentTypeError(f"expected a number or a range LOW:HIGH, got {text!r}")


def parse_optional_design_value(text: str) -> DesignValue | None:
    return None if text.strip().lower() == "none" else parse_design_value(text)


def parse_optional_count(text: str) -> int | None:
    return None if text.strip().lower() == "none" else parse_count(text)


def parse_optional_float(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None



DESIGN_HELP = {parameter.name: parameter.describe_help() for parameter in DECLARED}
FLAG_HELP = {spec.name: spec.metadata["help"] or DESIGN_HELP[spec.name]
             for spec in dataclasses.fields(Config)}
"""Each flag's help, from its field's declaration (a design parameter's, from envs.DECLARED)."""
HELP_GROUPS = {group: tuple(spec.name for spec in dataclasses.fields(Config)
                            if spec.metadata["group"] == group) for group in GROUPS}
"""The sections of `--help`: each field's declared group, in declaration order."""
"""`--help`'s sections: the README's groups of parameters, in the README's order."""

FLAG_TYPES = {
    bool: parse_bool,
    int: parse_count,
    float: float,
    str: str,
    tuple[int, ...]: parse_layers,
    float | None: parse_optional_float,
    int | None: parse_optional_count,
    DesignValue: parse_design_value,
    DesignValue | None: parse_optional_design_value,
}


def describe_default(spec: dataclasses.Field) -> str:
    if spec.name == "save_name":
        return "none; required to train"
    if isinstance(spec.default, tuple):
        return "[" + ",".join(map(str, spec.default)) + "]"
    if spec.default == "":
        return "none"
    return str(spec.default)


def build_parser() -> argparse.ArgumentParser:
    """Flags in HELP_GROUPS' sections; a boolean flag given bare (`--render`) means true."""
    parser = OneLineErrorParser(
        prog="run.py",
        usage="run.py --save_name=NAME [--FLAG=VALUE ...]",
        description="Train a PPO walker, from scratch or by transfer from a trained policy. "
                    "Every flag takes --flag=value or --flag value; booleans alone mean true.",
    )
    hints = typing.get_type_hints(Config)
    specs = {spec.name: spec for spec in dataclasses.fields(Config)}
    groups = {}
    for title, names in HELP_GROUPS.items():
        group = groups[title] = parser.add_argument_group(title)
        for name in names:
            spec = specs.pop(name)
            help_text = FLAG_HELP[name]
            boolean = hints[name] is bool
            group.add_argument(
                f"--{name}",
                type=FLAG_TYPES[hints[name]],
                nargs="?" if boolean else None,
                const=True if boolean else None,
                default=argparse.SUPPRESS,
                metavar="true|false" if boolean else name.upper(),
                help=f"{help_text} (default: {describe_default(spec)})",
            )
    if specs:
        raise RuntimeError(f"flags missing from HELP_GROUPS: {', '.join(specs)}")
    groups[STUDY].add_argument(
        "--config", default=argparse.SUPPRESS, metavar="FILE.json",
        help=f"start from the settings in this JSON file (a study's "
             f"results/SAVE_NAME{RESULT_SUFFIXES['config']}, a file in experiments/, or one "
             f"written by hand: {{\"flag\": value}}); flags given here override it")
    return parser


def parse_config(argv: list[str] | None = None) -> Config:
    """Flags -> validated Config; bad input exits with status 2 and a one-line message.

    Settings come from, last winning: the defaults, the study's own saved settings (with
    `--resume`), a `--config` file, the command line. A setting counts as given when typed on
    the command line, or when a file sets it to other than its default."""
    parser = build_parser()
    flags = vars(parser.parse_args(argv))
    try:
        config_file = flags.pop("config", None)
        given = set(flags)
        if config_file is not None:
            from_file = read_config_file(config_file)
            given |= {name for name, value in from_file.items() if value != DEFAULTS[name]}
            flags = {**from_file, **flags}
        if flags.get("resume"):
            flags = resumed_flags(flags, given)
        config = Config(**flags)
        validate(config, given=given)
    except UsageError as error:
        parser.error(str(error))
    return config


def validate(config: Config, given: set[str] = frozenset()) -> None:
    """Raise UsageError, naming the flag and what is allowed, for any setting we cannot run."""
    def require(ok: bool, flag: str, allowed: str) -> None:
        if not ok:
            value = getattr(config, flag)
            raise UsageError(f"--{flag}: {allowed}, got {format_value(value)}")

    if config.list_models:
        return  # reads the models folder; nothing else is used
    if not config.save_name and not config.runs_saved_policy:
        raise UsageError("--save_name: required to train: the name of the study's files, "
                         "e.g. --save_name=walker_34")
    require(not config.save_name or (bool(SAVE_NAME_PATTERN.fullmatch(config.save_name))
                                     and ".." not in config.save_name),
            "save_name", "must be a plain file name (letters, digits, _ . -; no path separators)")
    name_problem = check_save_name(config.save_name) if config.save_name else None
    require(name_problem is None, "save_name", str(name_problem))
    require(config.env == ENV_ID, "env", f"only {ENV_ID} is implemented")
    require(config.algorithm.lower() == "ppo", "algorithm", "only ppo is implemented")
    require(config.optimizer.lower() in OPTIMIZERS, "optimizer",
            f"must be one of {tuple(OPTIMIZERS)}")
    require(config.transfer_learning in TRANSFER_STRATEGIES, "transfer_learning",
            f"must be one of {TRANSFER_STRATEGIES}")
    require(0 < config.total_frames <= MAX_TOTAL_FRAMES, "total_frames",
            f"must be in [1, {MAX_TOTAL_FRAMES:.0e}]")
    require(config.batch_size > 0, "batch_size", "must be positive")  # bounded by the memory
    require(0 < config.train_steps <= MAX_TRAIN_STEPS, "train_steps",
            f"must be in [1, {MAX_TRAIN_STEPS:,}]")
    require(config.num_envs > 0, "num_envs", "must be positive")  # before frames_per_batch
    validate_workers(config, require)
    # Advantages are normalised per minibatch by their standard deviation, which one frame
    # does not have (NaN, reported as a diverged loss): two frames at least.
    require(2 <= config.minibatch_size <= config.frames_per_batch, "minibatch_size",
            f"must be in [2, batch_size={config.frames_per_batch}] (advantages are normalised "
            f"per minibatch by their standard deviation)")
    require(config.learning_rate > 0 and math.isfinite(config.learning_rate), "learning_rate",
            "must be a positive number")
    require(0 < config.gamma <= 1, "gamma", "must be in (0, 1]")
    require(0 <= config.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
    require(0 < config.clip < 1, "clip", "must be in (0, 1)")
    require(0 <= config.value_coef <= MAX_VALUE_COEF, "value_coef",
            f"must be a number in [0, {MAX_VALUE_COEF:g}]")
    require(0 <= config.seed < 2**32, "seed", "must be in [0, 2**32 - 1]")  # numpy's range
    require(config.max_grad_norm > 0, "max_grad_norm", "must be positive")
    require(config.action_std > 0 and math.isfinite(config.action_std), "action_std",
            "must be a positive number")
    validate_schedule(config, given, require)
    validate_evaluations(config, require)
    validate_transfer(config, given, require)
    validate_policy_modes(config, require)
    validate_shorthands(config, given, require)
    require("design_draw" not in given or config.design_draw == DESIGN_DRAWS[0]
            or bool(config.design_ranges()), "design_draw",
            "draws the design flags given as ranges LOW:HIGH; give one")
    try:
        # A study from scratch observes its own ranges: check them as design inputs too. A
        # saved policy observes its own inputs, whatever range it is run over (30:30 too).
        scratch = not config.runs_saved_policy and not config.has_initial_model
        check_walker_arguments(**config.env_kwargs(),
                               design_inputs=config.design_ranges() if scratch else None)
    except InvalidWalkerArgument as error:
        value = error.value if isinstance(error.value, str) else format_value(error.value)
        raise UsageError(f"--{error.argument}: must be {error.allowed}, got {value}") from None
    device = re.fullmatch(r"cpu|mps|cuda(:(?P<index>\d{1,9}))?", config.device)
    require(device is not None and int(device["index"] or 0) <= MAX_DEVICE_INDEX, "device",
            f"must be cpu, cuda, cuda:N (N in [0, {MAX_DEVICE_INDEX}]) or mps")
    require(not (config.resume and config.overwrite), "overwrite",
            "cannot be combined with --resume=true (continue the study, or start it again)")
    validate_memory(config)
    require(config.total_frames >= config.num_envs, "total_frames",
            f"must be at least num_envs={config.num_envs} (one step of every walker)")


def validate_shorthands(config: Config, given: set[str], require) -> None:
    """A shorthand (--leg_length, --thigh_length, --shin_length, --leg_width) given as a number
    while every parameter that follows it is given too changes nothing in the body: it is
    refused unless it equals what the body's design input would observe (the mean of those
    that follow it), rather than shown beside a body it is not (a range of it is refused by
    the walker's own check)."""
    design = {name: value for name, value in config.design().items()}
    if any(isinstance(value, DesignRange) for value in design.values()):
        return
    for name in SHORTHANDS:
        value = design[name]
        if name not in given or value is None or reaches_body(design, {}, name):
            continue
        observed = WalkerDesign.from_parameters(design).value(name)
        means = [follower for follower in FOLLOWERS[name] if PARAMETERS[follower].scale == 1]
        others = overriders(design, {}, name)
        are = "are both" if len(others) == 2 else "are all"
        require(math.isclose(value, observed), name,
                f"must be left out when {' and '.join('--' + o for o in others)} {are} given, "
                f"or equal the body's {name} ({observed:g}: the mean of "
                f"{' and '.join(means)})")


def validate_workers(config: Config, require) -> None:
    most = min(config.num_envs, WORKERS_PER_CORE * (os.cpu_count() or 1))
    require(config.num_workers is None or 0 <= config.num_workers <= most,
            "num_workers", f"must be in [0, {most}] (at most num_envs={config.num_envs} and "
                           f"{WORKERS_PER_CORE} per core) or none")
    require(CAN_FORK or not config.num_workers, "num_workers",
            "must be 0 or none here: worker processes need os.fork")


def validate_memory(config: Config) -> None:
    """Refuse a study whose estimated memory exceeds the budget, naming its largest part."""
    budget = resources.memory_budget()
    if budget is None:
        return
    needs = resources.memory_needs(config.hidden_layers, config.frames_per_batch,
                                   config.minibatch_size, config.num_envs,
                                   config.terrain_length_scale, config.worker_processes)
    total = sum(needs.values())
    if total <= budget:
        return
    flag = max(needs, key=needs.get)
    parts = ", ".join(f"--{name} {resources.describe_bytes(size)}"
                      for name, size in needs.items() if size)
    raise UsageError(f"--{flag}: the study would need about {resources.describe_bytes(total)} "
                     f"of memory ({parts}), more than {resources.describe_bytes(budget)} "
                     f"({resources.MEMORY_FRACTION:.0%} of this machine's); make it smaller, "
                     f"got {format_value(getattr(config, flag))}")


def validate_schedule(config: Config, given: set[str], require) -> None:
    schedule = (config.action_std_start, config.action_std_final, config.action_std_end)
    some_set = any(v is not None for v in schedule)
    require(not some_set or all(v is not None for v in schedule), "action_std_start",
            "the schedule needs all of --action_std_start, --action_std_final, --action_std_end")
    require(not some_set or "action_std" not in given, "action_std",
            "has no effect with a noise schedule (--action_std_start/_final/_end); give one "
            "or the other")
    if some_set:
        require(0 < config.action_std_start < math.inf, "action_std_start",
                "must be a positive number")
        require(0 < config.action_std_final < math.inf, "action_std_final",
                "must be a positive number")
        require(0 <= config.action_std_end <= 1, "action_std_end", "must be in [0, 1]")


def validate_evaluations(config: Config, require) -> None:
    require(config.eval_every >= 0, "eval_every", "must be >= 0 (0: no evaluation)")
    require(1 <= config.eval_episodes_during <= MAX_EPISODES, "eval_episodes_during",
            f"must be in [1, {MAX_EPISODES:,}]")
    require(config.best_by in BEST_BY, "best_by", f"must be one of {BEST_BY}")
    require(config.eval_every > 0 or config.best_by != "eval", "eval_every",
            "0 (no evaluation) needs --best_by=running_average (the best checkpoint is "
            "otherwise picked by the evaluations)")


def validate_transfer(config: Config, given: set[str], require) -> None:
    stray = [flag for flag in TRANSFER_FLAGS if flag in given]
    require(config.has_initial_model or not stray, "initial_model",
            f"is needed by --{stray[0] if stray else ''}; name a trained model")
    require(0 < config.tl_end <= 1, "tl_end", "must be in (0, 1]")
    require(config.add_noise_layers >= 0, "add_noise_layers", "must be >= 0")
    require(config.add_noise_layers <= len(config.hidden_layers) + 1, "add_noise_layers",
            f"must be at most the number of layers ({len(config.hidden_layers) + 1})")
    require(0 <= config.add_noise_alpha <= MAX_NOISE_ALPHA, "add_noise_alpha",
            f"must be a number in [0, {MAX_NOISE_ALPHA:g}]")


def validate_policy_modes(config: Config, require) -> None:
    """--render, --record, --export and --eval_episodes run a saved policy instead of
    training."""
    require(not config.record or config.record.lower().endswith(VIDEO_SUFFIXES),
            "record", "must be a path ending in .gif or .mp4")
    require(not (config.record and config.render), "record",
            "cannot be combined with --render=true (watch or record, not both)")
    require(0 <= config.eval_episodes <= MAX_EPISODES, "eval_episodes",
            f"must be in [0, {MAX_EPISODES:,}] (0: no evaluation)")
    if config.export:
        validate_export(config, require)


def validate_export(config: Config, require) -> None:
    """One body's controller: a design range cannot be baked into it."""
    require(config.export.lower().endswith(".onnx"), "export", "must be a path ending in .onnx")
    others = [flag for flag in ("render", "record", "eval_episodes") if getattr(config, flag)]
    require(not others, "export", f"cannot be combined with --{others[0] if others else ''} "
                                  f"(export, watch, record or evaluate: one at a time)")
    ranged = next(iter(config.design_ranges()), None)
    if ranged:
        raise UsageError(f"--{ranged}: --export writes the controller of one body: give one "
                         f"value, got {format_value(getattr(config, ranged))}")


def format_value(value: object) -> str:
    if isinstance(value, DesignRange):
        return str(value)
    if isinstance(value, tuple):
        return "[" + ",".join(map(str, value)) + "]"
    return repr(value) if isinstance(value, str) else str(value)


# ----- configuration files and resume by name ---------------------------------------------------

LEFT_OUT_OF_CONFIG_FILES = ("resume", "overwrite")
"""What a run did to an earlier study's files, not what the study is: a file holding them would
resume or replace whatever study it is given to next."""
DEFAULTS = {spec.name: spec.default for spec in dataclasses.fields(Config)}
DESIGN_TYPES = (DesignValue, DesignValue | None)


def json_value(value: Any) -> Any:
    """A setting as a config file holds it: a range as its flag text `24:46`, a tuple a list."""
    if isinstance(value, DesignRange):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


def config_file_text(config: Config) -> str:
    """The study's settings as JSON, experiment and run settings in sections of their own."""
    sections: dict[str, dict[str, Any]] = {EXPERIMENT: {}, RUN: {}}
    for spec in dataclasses.fields(Config):
        if spec.name not in LEFT_OUT_OF_CONFIG_FILES:
            sections[spec.metadata["part"]][spec.name] = json_value(getattr(config, spec.name))
    return json.dumps(sections, indent=2) + "\n"


def flag_text(value: Any, hint: Any) -> str:
    """A file's value as it would be typed after `--flag=`, so that the flag's own parser reads
    it: a file is bad input exactly where the command line would be."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        return (":" if hint in DESIGN_TYPES else ",").join(map(str, value))
    return str(value)


def typed_settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Settings as files store them (JSON values, or a checkpoint's plain types) -> Config
    values; unknown names are refused as unknown flags are."""
    hints = typing.get_type_hints(Config)
    typed = {}
    for name, value in settings.items():
        if name not in hints or name in LEFT_OUT_OF_CONFIG_FILES:
            raise UsageError(f"--config: {source}: unknown flag {name!r}"
                             f"{did_you_mean(name, set(hints) - set(LEFT_OUT_OF_CONFIG_FILES))}")
        try:
            typed[name] = FLAG_TYPES[hints[name]](flag_text(value, hints[name]))
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise UsageError(f"--{name}: {error} (in {source})") from None
    return typed


def read_config_file(path: str) -> dict[str, Any]:
    """A config file's settings as Config values: a study's (sections `experiment` and `run`)
    or a flat table of flags written by hand."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as error:
        raise UsageError(f"--config: cannot read {path} ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"--config: {path} is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config: {path} must hold a table of flags {{\"flag\": value}}")
    sectioned = data and set(data) <= {EXPERIMENT, RUN} and all(
        isinstance(section, dict) for section in data.values())
    settings = ({name: value for section in data.values() for name, value in section.items()}
                if sectioned else data)
    return typed_settings(settings, path)


def saved_flags(save_name: str, models_dir: str, results_dir: str) -> dict[str, Any] | None:
    """The settings the study `save_name` was started (or last resumed) with: its config file,
    else (a study from before config files) the settings in its resume checkpoint. None without
    a checkpoint: nothing to continue (one stopped in its first batch starts afresh with the
    flags given, see study.trainer)."""
    files = StudyFiles(Path(models_dir), Path(results_dir), save_name)
    checkpoint = files.last
    if not checkpoint.is_file():
        return None
    if files.config.is_file():
        return read_config_file(str(files.config))
    from common.checkpoint import read_checkpoint

    settings = read_checkpoint(checkpoint, "resume").get("config")
    if not isinstance(settings, dict):
        return None
    return typed_settings({name: value for name, value in settings.items()
                           if name in DEFAULTS and name not in LEFT_OUT_OF_CONFIG_FILES},
                          str(checkpoint))


def resumed_flags(flags: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """`--resume`: the study's saved settings, with the run settings given now (Sample
    Factory's rule). An experiment setting or a kept run setting given otherwise than saved
    is refused, naming it."""
    located = {name: flags.get(name, DEFAULTS[name]) for name in RESUME_LOCATES}
    saved = saved_flags(**located) if located["save_name"] else None
    if saved is None:
        return flags  # nothing to continue: the study says so (study.trainer)
    merged = {**saved, **flags}
    changed = [name for name in experiment_differences(saved, merged) if name in given]
    changed += [name for name in RESUME_KEPT
                if name in given and name in saved and flags[name] != saved[name]]
    if changed:
        name = changed[0]
        raise UsageError(
            f"--{name}: study {located['save_name']} was started with "
            f"--{name}={format_value(saved.get(name, DEFAULTS[name]))}, not "
            f"{format_value(flags[name])}; leave it out to continue the study as it was "
            f"started (on resume only {', '.join('--' + n for n in RESUME_CHANGES)} may "
            f"change; a larger --total_frames extends it)")
    restored = {name: value for name, value in saved.items()
                if name in RESUME_CHANGES + RESUME_KEPT or name in EXPERIMENT_SETTINGS}
    return {**restored, **flags}


def resume_command(config: Config) -> str:
    """The command that continues this study: its name, and its folders where not the
    defaults (everything else is restored from the study)."""
    flags = [f"--{name}={getattr(config, name)}" for name in RESUME_LOCATES
             if name == "save_name" or getattr(config, name) != DEFAULTS[name]]
    return " ".join(["python run.py", *flags, "--resume"])

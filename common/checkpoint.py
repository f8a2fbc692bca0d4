"""Policies on disk: self-describing, written atomically, loaded without running pickled code."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import pickle
import platform
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

import envs
from common.errors import OutputError, UsageError
from common.study_files import temporary_path
from ppo.network import ActorCritic, linear_layers
from ppo.normalize import RewardScaler

FORMAT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.

    Any OSError (disk full, permission lost) becomes an OutputError naming `path`; the
    previous file stays as it was and the temporary file is removed.
    """
    temp_path = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a fresh file of our own; the mode is filtered by the umask like any new file.
        handle = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "wb") as temp:
                temp.write(data)
                temp.flush()
                os.fsync(temp.fileno())
            os.replace(temp_path, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp_path.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise OutputError(path, error) from None


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj: Any, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),  # a TorchVersion, which weights_only loading refuses
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def policy_checkpoint(
    policy: ActorCritic, env_settings: dict[str, Any], frames: int, score: float,
    reward_scaler: RewardScaler | None = None, score_kind: str = "",
) -> dict[str, Any]:
    """Everything needed to rebuild and run the policy, in types `weights_only` loading accepts.

    With the statistics of the reward scaler it was trained with, when given: a transfer
    study restores them (the critic learnt returns on that scale); checkpoints from before
    they were saved simply lack the key.
    """
    scaler = {"reward_scaler": reward_scaler.state_dict()} if reward_scaler else {}
    return {
        "format_version": FORMAT_VERSION,
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        "hidden_layers": list(policy.hidden_layers),
        "obs_dim": linear_layers(policy.actor)[0].in_features,
        "act_dim": linear_layers(policy.actor)[-1].out_features,
        "env": dict(env_settings),
        "frames": int(frames),
        "score": float(score),
        **({"score_kind": score_kind} if score_kind else {}),
        "versions": library_versions(),
        **scaler,
    }


def save_policy(path: Path, policy: ActorCritic, env_settings: dict[str, Any], frames: int,
                score: float, reward_scaler: RewardScaler | None = None,
                score_kind: str = "") -> None:
    atomic_torch_save(policy_checkpoint(policy, env_settings, frames, score, reward_scaler,
                                        score_kind), path)


MAX_ABS_WEIGHT = 1e6
"""Trained weights are of order 1 (Adam moves each by at most about the learning rate per step).
Beyond this a file is corrupt; and it keeps every pre-activation far from float32's overflow,
where inf - inf would give the NaN actions that crash Box2D."""


def load_checkpoint(path: Path, flag: str | None = None) -> dict[str, Any]:
    """A policy checkpoint, loaded without running code from it and checked to hold a usable
    policy; any problem is one UsageError line `--flag: path: problem`.

    Checks only what loading and running the policy need: other keys may come and go.
    """
    checkpoint = read_checkpoint(path, flag)
    problem = policy_problem(checkpoint) or metadata_problem(checkpoint)
    if problem:
        raise checkpoint_error(flag, path, problem)
    return checkpoint


def read_checkpoint(path: Path, flag: str | None = None) -> dict[str, Any]:
    """torch.load(weights_only=True) that turns every failure into one UsageError line."""
    if path.exists() and not path.is_file():  # a folder; a FIFO would block the read forever
        raise checkpoint_error(flag, path, "not a regular file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise checkpoint_error(flag, path, "no such file") from None
    except OSError as error:
        raise checkpoint_error(flag, path, f"cannot be read ({error.strerror or error})") from None
    damage = archive_problem(data)
    if damage:
        raise checkpoint_error(flag, path, damage)
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise checkpoint_error(flag, path, f"refused to load, it is not a plain weights file "
                                           f"({unpickling_cause(error)})") from None
    except FileNotFoundError:
        raise checkpoint_error(flag, path, "no such file") from None
    except (Exception, MemoryError) as error:  # noqa: BLE001 (corrupt bytes fail anywhere)
        raise checkpoint_error(flag, path, f"not a readable checkpoint, the file is damaged or "
                                           f"of another kind ({type(error).__name__})") from None
    if not isinstance(checkpoint, dict):
        raise checkpoint_error(flag, path, "not a transfer_rl policy checkpoint")
    return checkpoint


def archive_problem(data: bytes) -> str | None:
    """What makes `data` not an intact torch zip archive, or None.

    Every member of the archive carries a CRC32 of its bytes: a flipped bit in the pickled
    metadata or in a tensor is caught here, where torch.load would read it silently. The
    structure is checked too: one central directory that ends the file, and members whose
    local headers agree with it (torch reads offsets and sizes from the central directory).
    What no check covers (a timestamp, a comment) changes nothing that is loaded.
    Sizes are checked in the zip directory before anything is inflated: torch writes its
    members uncompressed, so together they are never larger than the file (a zip bomb is).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if not members:
                return "not a readable checkpoint, the file is damaged or of another kind " \
                       "(an empty archive)"
            inflated = sum(member.file_size for member in members)
            if inflated > len(data):
                return (f"not a checkpoint torch wrote: its archive would inflate to "
                        f"{inflated:,} bytes from {len(data):,}")
            for member in members:
                with archive.open(member) as stream:  # checks the local header's name
                    content = stream.read()
                if len(content) != member.file_size or zlib.crc32(content) != member.CRC:
                    return (f"damaged: the archive member {member.filename} does not match "
                            f"its checksum")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            OSError, ValueError, RuntimeError, UnicodeDecodeError, zlib.error) as error:
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        if "CRC" in reason:
            return f"damaged: an archive member does not match its checksum ({reason})"
        return (f"not a readable checkpoint, the file is damaged or of another kind "
                f"({reason})")
    return None


def checkpoint_error(flag: str | None, path: Path, problem: str) -> UsageError:
    prefix = f"--{flag}: " if flag else ""
    return UsageError(f"{prefix}{path}: {problem}")


def unpickling_cause(error: pickle.UnpicklingError) -> str:
    """The one informative line of torch's multi-line, colour-coded weights_only refusal."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    for line in lines:
        if "Unsupported" in line:
            return line[:200]
    return next((line[:200] for line in lines if line), "unsafe content")


def architecture_of(state_dict: dict[str, Any]) -> tuple[int, int, list[int]] | None:
    """(inputs, outputs, hidden widths) read from the actor's weight shapes, or None."""
    weights = []
    for key, value in state_dict.items():
        parts = key.split(".") if isinstance(key, str) else []
        if (len(parts) == 3 and parts[0] == "actor" and parts[1].isdigit()
                and parts[2] == "weight" and isinstance(value, torch.Tensor)
                and value.dim() == 2):
            weights.append((int(parts[1]), value.shape))
    if not weights:
        return None
    shapes = [shape for _, shape in sorted(weights)]
    return shapes[0][1], shapes[-1][0], [shape[0] for shape in shapes[:-1]]


def policy_problem(checkpoint: dict[str, Any]) -> str | None:
    """What makes `checkpoint` unusable as a policy, or None.

    The architecture is read from the tensors and must match the metadata; every tensor must
    have the shape and dtype the network gives it, and values a policy can have: finite,
    weights within MAX_ABS_WEIGHT, a normaliser with non-negative variance and a positive count.
    """
    state_dict = checkpoint.get("state_dict")
    if not isinstance(state_dict, dict) or not state_dict:
        return "not a transfer_rl policy checkpoint (no state_dict)"
    architecture = architecture_of(state_dict)
    if architecture is None:
        return "not a transfer_rl policy checkpoint (no actor network)"
    obs_dim, act_dim, hidden = architecture
    if not all(width > 0 for width in (obs_dim, act_dim, *hidden)):
        return "damaged: a layer of its actor network has no units"
    metadata = {"obs_dim": obs_dim, "act_dim": act_dim, "hidden_layers": hidden}
    if any(key in checkpoint and checkpoint[key] != value for key, value in metadata.items()):
        return "damaged: its metadata (obs_dim, act_dim, hidden_layers) disagrees with its weights"
    with torch.device("meta"):  # shapes and dtypes only: nothing allocated or initialised
        expected = ActorCritic(obs_dim, act_dim, hidden).state_dict()
    if set(state_dict) != set(expected):
        return "damaged: its tensors are not those of a transfer_rl policy"
    for key, reference in expected.items():
        tensor = state_dict[key]
        if not isinstance(tensor, torch.Tensor) or tensor.shape != reference.shape \
                or tensor.dtype != reference.dtype:
            return f"damaged: {key} is not a {reference.dtype} tensor of shape " \
                   f"{tuple(reference.shape)}"
        if not torch.isfinite(tensor).all():
            return f"holds NaN or infinite values ({key})"
        if key.startswith(("actor.", "critic.")) and tensor.abs().max() > MAX_ABS_WEIGHT:
            return f"damaged: {key} holds values beyond +-{MAX_ABS_WEIGHT:g}"
    if (state_dict["obs_normalizer.var"] < 0).any() or state_dict["obs_normalizer.count"] <= 0:
        return "damaged: its observation normaliser has a negative variance or count"
    return None


def is_number(value: Any) -> bool:
    """A real number as checkpoints store them (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


WALKER_NUMBERS = ("terrain_length_scale", "fall_penalty", "max_time_steps")


def walker_settings_problem(env: Any) -> str | None:
    """What is wrong with a checkpoint's walker settings (its `env` entry), or None.

    As strict as the flags that made them: the walker's id, every design parameter a number in
    its range (a segment may be None: it follows leg_length), every range and design input a
    pair of such numbers under a design parameter's name, the course settings in their ranges.
    Settings that older checkpoints lack take their defaults; unknown ones are refused.
    """
    if not isinstance(env, dict):
        return "its walker settings (env) are not a table of settings"
    known = {"env", *envs.DESIGN_PARAMETERS, *WALKER_NUMBERS, "design_ranges", "design_inputs",
             "design_draw"}
    unknown = [key for key in env if key not in known]
    if unknown:
        return f"its walker settings (env) hold an unknown entry {str(unknown[0])[:40]!r}"
    if "env" in env and env["env"] != envs.ENV_ID:
        return f"its walker settings (env) name the walker {str(env['env'])[:40]!r}, not " \
               f"{envs.ENV_ID}"
    for name in (*envs.DESIGN_PARAMETERS, *WALKER_NUMBERS):
        value = env.get(name)
        optional = name in envs.DESIGN_DEFAULTS and envs.DESIGN_DEFAULTS[name] is None
        if name in env and not (is_number(value) or (optional and value is None)):
            return f"its walker setting {name} is not a number (got {type(value).__name__})"
        if name == "max_time_steps" and name in env and not isinstance(value, int):
            return "its walker setting max_time_steps is not a whole number"
    if "design_draw" in env and env["design_draw"] not in envs.DESIGN_DRAWS:
        return f"its walker setting design_draw must be one of {', '.join(envs.DESIGN_DRAWS)}"
    for table in ("design_ranges", "design_inputs"):
        ranges = env.get(table)
        if table not in env or (table == "design_inputs" and ranges is None):
            continue
        if not isinstance(ranges, dict):
            return f"its walker setting {table} is not a table of ranges"
        for name, bounds in ranges.items():
            if name not in envs.DESIGN_PARAMETERS:
                return f"its walker setting {table} names {str(name)[:40]!r}, not a design " \
                       f"parameter"
            if not (isinstance(bounds, list | tuple) and len(bounds) == 2
                    and all(is_number(bound) for bound in bounds)):
                return f"its walker setting {table}[{name}] is not a pair of numbers LOW:HIGH"
    defaults = {"leg_length": envs.DESIGN_DEFAULTS["leg_length"], **envs.COURSE_DEFAULTS}
    arguments = {**defaults, **{key: value for key, value in env.items() if key != "env"}}
    try:
        envs.check_walker_arguments(**arguments)
    except (envs.InvalidWalkerArgument, TypeError, ValueError) as error:
        argument = getattr(error, "argument", None)
        if argument is None:
            return f"its walker settings (env) are not valid ({error})"
        return f"its walker setting {argument} must be {error.allowed}, got {error.value}"
    return None


def metadata_problem(checkpoint: dict[str, Any]) -> str | None:
    """What is wrong with the metadata a policy checkpoint carries besides its tensors, or None.

    Each field is checked as strictly as the flag or the code that made it: a checkpoint is
    bad input like a flag, so a wrong type is refused here in one line, not a traceback later.
    """
    version = checkpoint.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) \
            or not 1 <= version <= FORMAT_VERSION:
        return f"damaged or from a newer version: format_version {str(version)[:20]!r} is not " \
               f"in [1, {FORMAT_VERSION}]"
    frames = checkpoint.get("frames", 0)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 0:
        return "damaged: its frame count is not a whole number >= 0"
    score = checkpoint.get("score", 0.0)
    if not is_number(score) or math.isnan(score) or score == math.inf:
        return "damaged: its score is not a number"
    if not isinstance(checkpoint.get("score_kind", ""), str):
        return "damaged: what its score measures is not text"
    versions = checkpoint.get("versions", {})
    if not isinstance(versions, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in versions.items()):
        return "damaged: its library versions are not text"
    if "reward_scaler" in checkpoint and (problem := scaler_problem(checkpoint["reward_scaler"])):
        return problem
    if "env" in checkpoint:
        problem = walker_settings_problem(checkpoint["env"])
        if problem:
            return f"damaged: {problem}"
    return None


def policy_from_checkpoint(checkpoint: dict[str, Any]) -> ActorCritic:
    """The policy of a checkpoint that `load_checkpoint` accepted.

    Built on the meta device and given the checkpoint's tensors: no weights are initialised
    only to be overwritten (orthogonal initialisation is most of the cost of building one).
    """
    with torch.device("meta"):
        policy = ActorCritic(*architecture_of(checkpoint["state_dict"]))
    state_dict = {key: value.clone() for key, value in checkpoint["state_dict"].items()}
    policy.load_state_dict(state_dict, assign=True)
    return policy


def load_resume_checkpoint(path: Path) -> dict[str, Any]:
    """A `.last.pt` checked like any policy, plus the state `--resume` restores."""
    checkpoint = load_checkpoint(path, "resume")
    problem = resume_problem(checkpoint)
    if problem:
        raise checkpoint_error("resume", path, problem)
    return checkpoint


NON_NEGATIVE_OPTIMIZER_STATE = frozenset({"exp_avg_sq", "square_avg", "sum", "step"})
"""Adam's, RMSprop's and Adagrad's running squares, and step counts: negative only if damaged
(the square root of a negative one would turn the first update into NaN)."""


def resume_problem(checkpoint: dict[str, Any]) -> str | None:
    """What makes a `.last.pt` unusable for `--resume` beyond its policy, or None."""
    def number(key: str, low: float, allow_minus_inf: bool = False) -> bool:
        value = checkpoint.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return value >= low and (math.isfinite(value) or (allow_minus_inf and value == -math.inf))

    if not all(isinstance(checkpoint.get(key), int) and checkpoint[key] >= 0
               for key in ("frames", "updates")):
        return "damaged: its frame or update count is not a whole number >= 0"
    if not number("wall_time", 0.0) or not number("best_score", -math.inf, allow_minus_inf=True):
        return "damaged: its wall time or best score is not a number"
    if not isinstance(checkpoint.get("config"), dict) \
            or not isinstance(checkpoint.get("transfer", ""), str) \
            or not isinstance(checkpoint.get("auto", {}), dict):
        return "damaged: its study settings are missing"
    for key in ("generator", "torch_rng"):
        state = checkpoint.get(key)
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
            return f"damaged: its random generator state ({key}) is missing"
    return columns_problem(checkpoint.get("episodes"), "episode results",
                           finite=("frames", "length", "reward")) \
        or columns_problem(checkpoint.get("update_log", {}), "update diagnostics") \
        or columns_problem(checkpoint.get("evaluations", {}), "evaluations") \
        or scaler_problem(checkpoint.get("reward_scaler")) \
        or optimizer_problem(checkpoint.get("optimizer"))


def columns_problem(columns: Any, what: str, finite: tuple[str, ...] = ()) -> str | None:
    """Equal-length lists of numbers (`EpisodeLog`'s, `UpdateLog`'s columns); the columns named
    in `finite` must hold finite ones (a NaN reward would poison the running average)."""
    if not isinstance(columns, dict) or not all(isinstance(v, list) for v in columns.values()):
        return f"damaged: its {what} are missing"
    if len({len(values) for values in columns.values()}) > 1:
        return f"damaged: its {what} have columns of different lengths"
    for name, values in columns.items():
        if not all(isinstance(v, int | float) and not isinstance(v, bool)
                   and (math.isfinite(v) or name not in finite) for v in values):
            return f"damaged: its {what} hold values that are not numbers ({name})"
    return None


def scaler_problem(scaler: Any) -> str | None:
    """Only the statistics `ppo.normalize.RewardScaler` restores; other keys are its business."""
    if not isinstance(scaler, dict):
        return "damaged: its reward scaling statistics are missing"
    values = [scaler.get(key) for key in ("mean", "var", "count")]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values) \
            or values[1] < 0 or values[2] <= 0:
        return "damaged: its reward scaling statistics are not valid"
    return None


def optimizer_problem(state: Any) -> str | None:
    if not isinstance(state, dict) or not isinstance(state.get("state"), dict) \
            or not isinstance(state.get("param_groups"), list):
        return "damaged: its optimiser state is missing"
    for parameter_state in state["state"].values():
        if not isinstance(parameter_state, dict):
            return "damaged: its optimiser state is not valid"
        for name, value in parameter_state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() and (
                    not torch.isfinite(value).all()
                    or (name in NON_NEGATIVE_OPTIMIZER_STATE and (value < 0).any())):
                return f"damaged: its optimiser state ({name}) holds impossible values"
    return None


def config_as_plain_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as builtins only (tuples become lists), safe for weights_only loading."""
    fields = dataclasses.asdict(config).items()
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields}


def trained_env(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The walker settings a policy was trained with; empty when its checkpoint has none."""
    env = checkpoint.get("env")
    return env if isinstance(env, dict) else {}


def design_inputs_of(checkpoint: dict[str, Any]) -> dict[str, list[float]]:
    """The design parameters a policy reads from its observation, and their input ranges;
    empty for a fixed-design policy (and for checkpoints from before design inputs existed)."""
    env = checkpoint.get("env")
    inputs = env.get("design_inputs") if isinstance(env, dict) else None
    return dict(inputs) if isinstance(inputs, dict) else {}

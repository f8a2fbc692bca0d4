"""Where a policy is found by name: `--initial_model=NAME`, `auto`'s candidates and the
`--list_models` listing all look in the same folders, in the same order."""

from __future__ import annotations

from pathlib import Path

from common.errors import UsageError

REPO_MODELS_DIR = Path(__file__).resolve().parent.parent / "trained_models"
"""The repository's own models (the shipped sample), found even when --models_dir points away."""


def model_dirs(models_dir: Path) -> list[Path]:
    """Where a bare NAME is looked up, in order, without duplicates."""
    if Path(models_dir).resolve() == REPO_MODELS_DIR:
        return [Path(models_dir)]
    return [Path(models_dir), REPO_MODELS_DIR]


def model_files(models_dir: Path, include_resume: bool = True) -> list[Path]:
    """`.pt` files in the model folders (hidden temporary files excluded), resume checkpoints
    (`NAME.last.pt`) only if `include_resume`."""
    return sorted(
        path
        for directory in model_dirs(models_dir) if directory.is_dir()
        for path in directory.glob("*.pt")
        if path.is_file() and not path.name.startswith(".")
        and (include_resume or not path.name.endswith(".last.pt"))
    )


def available_models(models_dir: Path) -> list[str]:
    """Names that `--initial_model` accepts as they stand."""
    return sorted({path.stem for path in model_files(models_dir)})


def candidate_paths(name: str, models_dir: Path) -> list[Path]:
    """Where `--initial_model=name` may live, in order of preference.

    A name with a directory part is a path (".pt" optional); a bare name ending in .pt is tried
    as given first; a bare name is looked up in the model folders.
    """
    filename = name if name.endswith(".pt") else f"{name}.pt"
    if Path(filename).name != filename:
        return [Path(filename)]
    as_given = [Path(name)] if name.endswith(".pt") else []
    return as_given + [directory / filename for directory in model_dirs(models_dir)]


def resolve_model_path(name: str, models_dir: Path, flag: str | None = "initial_model") -> Path:
    """`--initial_model` value -> an existing .pt file, or a one-line error listing what exists,
    led by `--flag: ` (None: by nothing, for a caller from Python)."""
    candidates = candidate_paths(name, models_dir)
    for path in candidates:
        if path.is_file():
            return path
    found = ", ".join(available_models(models_dir)) or "none"
    looked = ", ".join(str(path) for path in candidates)
    prefix = f"--{flag}: " if flag else ""
    raise UsageError(
        f"{prefix}no model {name!r} (looked for {looked}); "
        f"models in {', '.join(map(str, model_dirs(models_dir)))}: {found}"
    )

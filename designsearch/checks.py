"""design.py's checks of what the command line names outside the design space: where the search
writes (results_dir, the storage URL, file names), where it evaluates (--address) and the
training runs of the stages. Each raises a one-line UsageError naming the flag, before
anything is written."""

from __future__ import annotations

import re
from pathlib import Path

from designsearch.choices import DESIGN_FLAGS
from designsearch.project import (
    CONFIG_FLAGS,
    MAX_FILE_NAME_BYTES,
    MAX_SAVE_NAME_LENGTH,
    SWEEP_OWNED_FLAGS,
    UsageError,
    check_output_folder,
    run_py_config,
    temporary_path,
)

TRAINING_NAME_RESERVE = len("_finetune_baseline" + "9" * 4 + "__seed" + "9" * 6)
"""What a training stage appends to the search's name for a training run (design and seed)."""
MAX_SEARCH_NAME_LENGTH = MAX_SAVE_NAME_LENGTH - TRAINING_NAME_RESERVE
"""The longest save_name whose files and fine-tuning studies' files all fit in NAME_MAX."""
ADDRESS_PATTERN = re.compile(r"(local|auto|(ray://)?[A-Za-z0-9_.\-\[\]:]+:[0-9]{1,5})")
IN_MEMORY = ("", ":memory:")


def check_save_name_length(save_name: str) -> None:
    files = [f"{save_name}.db-journal", f"{save_name}_finetune_manifest.json",
             f"{save_name}_design_progress.png", f".{save_name}.design.lock"]
    longest = max(len(temporary_path(Path(name)).name.encode()) for name in files)
    if len(save_name) > MAX_SEARCH_NAME_LENGTH or longest > MAX_FILE_NAME_BYTES:
        raise UsageError(f"--save_name: at most {MAX_SEARCH_NAME_LENGTH} characters (its files "
                         f"and its training runs' files must fit in {MAX_FILE_NAME_BYTES} "
                         f"bytes), got {len(save_name)}")


def check_storage(storage: str | None, results_dir: str) -> None:
    """The folder of the default SQLite file, or of the one --storage names, can be written;
    an in-memory database (which no --resume could find) is refused."""
    check_output_folder(results_dir, "results_dir")
    if storage is None:
        return
    if not storage.strip():
        raise UsageError("--storage: an empty URL")
    if storage.startswith("sqlite:"):
        path = storage.removeprefix("sqlite:///").partition("?")[0]
        if not storage.startswith("sqlite:///") or path in IN_MEMORY:
            raise UsageError(f"--storage: {storage} is an in-memory database, lost when the "
                             f"search ends; name a file: sqlite:///RELATIVE/PATH.db or "
                             f"sqlite:////ABSOLUTE/PATH.db")
        if Path(path).is_dir():
            raise UsageError(f"--storage: {path} is a folder; name a database file")
        if not Path(path).absolute().parent.is_dir():  # a typo must not become a new folder
            raise UsageError(f"--storage: the folder {Path(path).absolute().parent} does not "
                             f"exist; name a database file in an existing folder")
        check_output_folder(str(Path(path).parent), "storage")


def check_address(address: str | None) -> None:
    if address is not None and not ADDRESS_PATTERN.fullmatch(address.strip()):
        raise UsageError(f"--address: local, auto, ray://HOST:PORT or HOST:PORT, got "
                         f"{address!r}")


def check_train_fixed(training: bool, train_fixed: list[str],
                      base_flags: dict[str, str]) -> dict[str, str]:
    """--train_fixed FLAG=VALUE texts -> {flag: value}: run.py flags that the search does not
    set itself, whose values run.py accepts with the training runs' other flags
    (`base_flags`)."""
    if train_fixed and not training:
        raise UsageError("--train_fixed: only with --finetune or --final (it sets their "
                         "training runs' flags)")
    fixed: dict[str, str] = {}
    for text in train_fixed:
        key, sep, value = text.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key or not value.strip():
            raise UsageError(f"--train_fixed: expects FLAG=VALUE, got {text!r}")
        if key not in CONFIG_FLAGS:
            raise UsageError(f"--train_fixed: {key} is not a run.py flag")
        if key in SWEEP_OWNED_FLAGS or key in DESIGN_FLAGS or key == "initial_model":
            raise UsageError(f"--train_fixed: {key} is set by the search itself (the design "
                             f"flags and --initial_model by the candidates, the rest by the "
                             f"stage's sweep)")
        fixed[key] = value.strip()
    if training:
        try:
            run_py_config({**base_flags, **fixed})
        except UsageError as error:
            raise UsageError(f"--train_fixed: the training runs would be refused: "
                             f"{error}") from None
    return fixed

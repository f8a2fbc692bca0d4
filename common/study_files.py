"""The files of one study, named in one place: what a study writes, may overwrite, and locks.

Every name is the study's `--save_name` plus a suffix. Two rules follow from that table alone,
so a new file kind gets them for free: a name whose files would be another study's files is
refused (`X.last` would write `X.last.pt`, study X's resume checkpoint), and a name must leave
room for the longest file name we derive from it, temporary names included.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from common.errors import UsageError

TEMPORARY_NAME = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{8}\.tmp")
"""Temporary files are hidden and named after their target: `.NAME.pt.<8 hex digits>.tmp`."""


def temporary_path(path: Path) -> Path:
    """A fresh hidden name beside `path` for the file that will replace it."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Delete the temporary files a killed writer of `path` left behind; return them.

    Only names `temporary_path(path)` can give: another file's temporaries (`.NAME.pt.pt.*`
    belongs to the study NAME.pt) are never touched. Call it only while no one else can be
    writing `path` (the study lock).
    """
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        match = TEMPORARY_NAME.fullmatch(candidate.name)
        if match and match["target"] == path.name:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


MODEL_SUFFIXES = {"best": ".pt", "last": ".last.pt"}
"""In `--models_dir`: the best policy, and the full state of the latest update (`--resume`)."""
RESULT_SUFFIXES = {"results": ".p", "csv": ".csv", "updates": "_updates.csv",
                   "evaluations": "_evaluations.csv", "evaluation": "_eval.json", "log": ".log",
                   "config": "_config.json"}
"""In `--results_dir`: results, their episodes, updates and evaluations during training as CSV,
an evaluation's report (`--eval_episodes`), a sweep study's log, the study's settings (what
`--resume` restores and `--config` takes)."""
LOCK_SUFFIX = ".lock"
"""`.NAME.lock` beside the models: held by whoever trains the study (see `common.locking`)."""

MAX_FILE_NAME_BYTES = 255
"""NAME_MAX of Linux, macOS and Windows file systems."""


def colliding_endings() -> list[str]:
    """Endings a save_name must not have, because its files would be another study's.

    For two suffixes of one folder where one ends with the other (`.last.pt`, `.pt`), the
    difference (`.last`) makes NAME + `.pt` equal to (NAME minus `.last`) + `.last.pt`.
    """
    endings = []
    for suffixes in (MODEL_SUFFIXES.values(), RESULT_SUFFIXES.values()):
        for longer, shorter in itertools.permutations(suffixes, 2):
            if longer.lower().endswith(shorter.lower()):
                endings.append(longer[: -len(shorter)])
    return endings


def longest_file_name(save_name: str) -> int:
    """Bytes in the longest file name a study called `save_name` may create."""
    names = [temporary_path(Path(save_name + suffix)).name
             for suffix in (*MODEL_SUFFIXES.values(), *RESULT_SUFFIXES.values())]
    names.append(f".{save_name}{LOCK_SUFFIX}")
    return max(len(name.encode()) for name in names)


MAX_SAVE_NAME_LENGTH = MAX_FILE_NAME_BYTES - longest_file_name("")
"""The longest save_name (in ASCII characters) whose every file name fits in NAME_MAX."""


def check_save_name(save_name: str) -> str | None:
    """What is wrong with `save_name` as a study name (its form is checked by the config), or
    None."""
    if longest_file_name(save_name) > MAX_FILE_NAME_BYTES:
        return (f"must be at most {MAX_SAVE_NAME_LENGTH} characters long (the names of its "
                f"files and their temporary copies must fit in {MAX_FILE_NAME_BYTES} bytes)")
    for ending in colliding_endings():
        if save_name.lower().endswith(ending.lower()):
            other = save_name[: -len(ending)]
            return (f"must not end in {ending}: its files would be those of the study "
                    f"{other} (e.g. {other}{MODEL_SUFFIXES['last']})")
    return None


@dataclass(frozen=True)
class StudyFiles:
    """Paths of the files of the study `save_name`."""

    models_dir: Path
    results_dir: Path
    save_name: str

    def model(self, kind: str) -> Path:
        return self.models_dir / f"{self.save_name}{MODEL_SUFFIXES[kind]}"

    def result(self, kind: str) -> Path:
        return self.results_dir / f"{self.save_name}{RESULT_SUFFIXES[kind]}"

    @property
    def best(self) -> Path:
        return self.model("best")

    @property
    def last(self) -> Path:
        return self.model("last")

    @property
    def results(self) -> Path:
        return self.result("results")

    @property
    def csv(self) -> Path:
        return self.result("csv")

    @property
    def evaluation(self) -> Path:
        return self.result("evaluation")

    @property
    def lock(self) -> Path:
        return self.models_dir / f".{self.save_name}{LOCK_SUFFIX}"

    @property
    def training_outputs(self) -> tuple[Path, ...]:
        """What training writes: a new study refuses to start over them unless told to."""
        return (self.best, self.last, self.results, self.csv, self.result("updates"),
                self.result("evaluations"))

    @property
    def config(self) -> Path:
        """Written when the study starts, not counted among `training_outputs`: a study
        killed in its first batch is started afresh as before."""
        return self.result("config")

    def existing_outputs(self) -> list[Path]:
        return [path for path in self.training_outputs if path.exists()]

    def check_fresh_start(self, overwrite: bool) -> None:
        """Refuse to start a new study over an existing one, unless `overwrite` is set."""
        existing = self.existing_outputs()
        if existing and not overwrite:
            raise UsageError(
                f"--save_name: {existing[0]} exists: a study called {self.save_name} was run "
                f"before; continue it with --resume=true, or start again with "
                f"--overwrite=true (its files are replaced), or pick another --save_name")

    def remove_training_outputs(self) -> None:
        """`--overwrite=true`: the old study goes, so nothing of it can mix with the new one."""
        for path in (*self.training_outputs, self.config):
            path.unlink(missing_ok=True)

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files left by a writer of this study's files that was killed (kill -9)."""
        return [stale for path in (*self.training_outputs, self.config)
                for stale in remove_stale_temporaries(path)]


def check_output_folder(folder: str, flag: str) -> None:
    """Fail before any work, not at the first save, if `folder` cannot be written.

    Creates nothing: the nearest existing ancestor must be a writable folder (the rest is made
    when the first file is saved).
    """
    if not folder.strip():
        raise UsageError(f"--{flag}: must name a folder, got ''")
    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--{flag}: {existing} exists and is not a folder; name a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--{flag}: cannot write in {existing}; name a writable folder")


def check_output_file(path: Path, flag: str, create_folder: bool = True) -> None:
    """Fail before any work if the file `path` (written atomically) cannot be written there.

    `create_folder=False`: a file the user named, whose folder must exist (a typo in it
    should not silently become a new folder).
    """
    if path.is_dir():
        raise UsageError(f"--{flag}: {path} is a folder; name a file")
    if len(temporary_path(path).name.encode()) > MAX_FILE_NAME_BYTES:
        raise UsageError(f"--{flag}: the file name {path.name[:40]}... is too long")
    if not create_folder and not path.absolute().parent.is_dir():
        raise UsageError(f"--{flag}: the folder {path.absolute().parent} does not exist; name "
                         f"a file in an existing folder")
    check_output_folder(str(path.parent), flag)
    if path.parent.is_dir():  # try it: permissions do not tell (root, read-only mounts, /proc)
        probe = temporary_path(path)
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            raise UsageError(f"--{flag}: cannot write {path} ({error.strerror or error}); name "
                             f"a file in a writable folder") from None
        probe.unlink(missing_ok=True)

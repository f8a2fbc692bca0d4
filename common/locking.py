"""One study per name at a time: an exclusive lock on `.NAME.lock` beside the models.

The lock is `flock(2)` on an open file, so the kernel releases it when its holder dies however
it dies: a lock file left behind by `kill -9` is just a file, never a stale lock, and the next
study takes it. The holder writes its PID into the file, so a refused study can say who holds
it. On a clean release the holder deletes the file while still holding the lock; whoever
locked the same file meanwhile then finds that the path no longer leads to it, and retries.

Worker processes forked while the lock is held close their copy of its descriptor
(`workers.vector`), so the lock is the trainer's alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from types import TracebackType

from common.errors import OutputError, UsageError

try:
    import fcntl
except ImportError:  # Windows: no flock; studies are not locked there
    fcntl = None


class StudyLock:
    """`with StudyLock(path, "NAME"):` holds the lock or raises UsageError (exit status 2).

    Creates the folders it needs, and removes again the ones it made if they are still empty
    when it is released, so a refused study leaves nothing behind.
    """

    def __init__(self, path: Path, save_name: str) -> None:
        self.path = path
        self.save_name = save_name
        self.handle: int | None = None
        self.made_folders: list[Path] = []

    def __enter__(self) -> StudyLock:
        self.made_folders = make_folders(self.path.parent)
        try:
            self.handle = self._acquire()
        except BaseException:
            self._remove_made_folders()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()

    def _acquire(self) -> int | None:
        if fcntl is None:
            return None
        while True:
            try:
                handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as error:
                raise OutputError(self.path, error) from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = read_holder(handle)
                os.close(handle)
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(self.path, error) from None
                raise UsageError(
                    f"--save_name: study {self.save_name} is running in another process "
                    f"({holder}); wait for it to end, or stop it, or pick another --save_name"
                ) from None
            if same_file(handle, self.path):
                break
            os.close(handle)  # released and deleted by its holder meanwhile: take the new one
        with contextlib.suppress(OSError):  # a full disk: others then see "PID unknown"
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
        return handle

    def release(self) -> None:
        """Delete the lock file, then let go of the lock. Idempotent."""
        if self.handle is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self.handle)  # closing the last descriptor releases the lock
            self.handle = None
        self._remove_made_folders()

    def _remove_made_folders(self) -> None:
        for folder in reversed(self.made_folders):
            with contextlib.suppress(OSError):  # not empty: the study wrote something there
                folder.rmdir()
        self.made_folders = []


def make_folders(folder: Path) -> list[Path]:
    """mkdir -p `folder`; return the folders it created, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(folder, error) from None
    return list(reversed(missing))


def read_holder(handle: int) -> str:
    """`PID 1234` from the lock file, as its holder wrote it ("PID unknown" while it has not)."""
    try:
        text = os.pread(handle, 32, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"PID {text}" if text.isdigit() else "PID unknown"


def same_file(handle: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(handle)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

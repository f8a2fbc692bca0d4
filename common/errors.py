"""The exception types that `run.py` turns into one line and an exit status."""

from __future__ import annotations

import signal


class UsageError(ValueError):
    """Bad input from the command line or a file the user pointed at.

    `run.py` prints the message as a single line and exits with status 2, so the message must
    name the flag and say what is allowed.
    """


class StudyFailed(RuntimeError):
    """The study cannot go on through no fault of its flags: a worker died, a disk filled up.

    `run.py` prints the message as a single line and exits with status 1. Whoever raises it
    leaves the files of the last completed batch as they were.
    """


class OutputError(StudyFailed):
    """A file could not be written at run time (disk full, permission lost)."""

    def __init__(self, path: object, error: OSError) -> None:
        reason = error.strerror or type(error).__name__
        super().__init__(f"cannot write {path}: {reason} (errno {error.errno})")


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived where no one was waiting to stop cleanly (start-up, output).

    A KeyboardInterrupt, so every clean-up that Ctrl-C runs runs for SIGTERM too.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def raise_interrupted(signum: int, _frame: object) -> None:
    """Signal handler: stop whatever runs now, as Ctrl-C does."""
    raise Interrupted(signum)


def interrupt_exit_status(error: KeyboardInterrupt) -> int:
    """128 + the signal that interrupted (a plain KeyboardInterrupt is SIGINT's)."""
    return error.exit_status if isinstance(error, Interrupted) else 128 + signal.SIGINT

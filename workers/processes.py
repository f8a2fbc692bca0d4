"""Child processes that never outlive their parent, and that it can always get rid of.

A child is forked with one end of a socket pair and nothing else: it closes every descriptor
it inherited (the parent's ends of earlier children's sockets, the study lock, log files), so
the parent's death closes the child's socket and the child's next read ends. Two more guards
cover a child that is busy or was forked a moment before its parent died: on Linux the kernel
sends it SIGKILL when its parent dies (PR_SET_PDEATHSIG), and a child waiting for a message
checks every PARENT_CHECK_S that its parent is still the one that forked it.

The parent side never blocks on a child: `ChildProcess.wait` takes a bound, and
`kill` ends even a child stopped with SIGSTOP.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

PARENT_CHECK_S = 1.0
"""How often an idle child checks that its parent is alive."""
POLL_INTERVAL_S = 0.01
PR_SET_PDEATHSIG = 1
"""From <linux/prctl.h>."""


class ParentGone(Exception):
    """The process that forked this child has died."""


class ChildProcess:
    """The parent's handle on a forked child: its PID and the parent's end of its socket."""

    def __init__(self, pid: int, connection: Connection) -> None:
        self.pid = pid
        self.connection = connection
        self._wait_status: int | None = None

    def poll(self) -> int | None:
        """The child's wait status once it has exited (reaping it), else None."""
        if self._wait_status is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone, how is unknown
                pid, status = self.pid, -1
            if pid:
                self._wait_status = status
        return self._wait_status

    def is_alive(self) -> bool:
        return self.poll() is None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the child to exit; whether it has."""
        deadline = time.monotonic() + timeout_s
        while self.is_alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL_S)
        return True

    def kill(self) -> None:
        """SIGKILL: works on a stopped (SIGSTOP) or hung child too."""
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def describe_exit(self) -> str:
        """How the child ended, e.g. 'was killed by signal 9 (SIGKILL)'."""
        status = self.poll()
        if status is None:
            return "is still running"
        if status == -1:
            return "has exited"
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            return f"exited with status {code}"
        return f"was killed by signal {-code} ({signal.Signals(-code).name})"

    def close_connection(self) -> None:
        self.connection.close()


def start_child(target: Callable[..., None], *args: Any) -> ChildProcess:
    """Fork a child that runs `target(connection, parent_watch, *args)` and then exits.

    `parent_watch` is a `ParentWatch` the child's loop uses to wait for messages without
    outliving the parent. The child exits with status 0 when `target` returns, 1 if it raises;
    it never returns into the parent's code.
    """
    parent_end, child_end = socket.socketpair()
    parent_pid = os.getpid()
    # The kernel's parent-death signal fires when the forking *thread* ends: only rely on it
    # when that is the main thread, which lives as long as the process.
    death_signal = threading.current_thread() is threading.main_thread()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            watch = detach_from_parent(parent_pid, death_signal, child_end.fileno())
            target(Connection(child_end.detach()), watch, *args)
            status = 0
        finally:
            os._exit(status)
    child_end.close()
    return ChildProcess(pid, Connection(parent_end.detach()))


class ParentWatch:
    """Waits for a message on the child's socket, but never longer than its parent lives."""

    def __init__(self, parent_pid: int, fd: int) -> None:
        self.parent_pid = parent_pid
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def wait_for_message(self) -> None:
        """Return when the socket is readable (a message, or end of file); raise ParentGone if
        the parent died first."""
        while not self.poller.poll(int(PARENT_CHECK_S * 1000)):
            if os.getppid() != self.parent_pid:
                raise ParentGone


def detach_from_parent(parent_pid: int, death_signal: bool, keep_fd: int) -> ParentWatch:
    """First steps of a forked child: die with the parent, keep nothing of the parent's."""
    # The objects copied from the parent are not ours to finalise: a collected socket object
    # would close a descriptor number that we may have reused.
    gc.freeze()
    # The parent decides when its children stop: Ctrl-C and SIGTERM sent to the whole process
    # group are for it; it then closes its children within seconds.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if death_signal:
        set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        raise ParentGone
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the parent's wake-up descriptor is about to be closed
    close_inherited_descriptors(keep_fd)
    return ParentWatch(parent_pid, keep_fd)


def set_parent_death_signal(signum: int) -> bool:
    """Linux: have the kernel send `signum` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def close_inherited_descriptors(keep_fd: int) -> None:
    """Close every descriptor but stdin, stdout, stderr and `keep_fd`."""
    limit = max(os.sysconf("SC_OPEN_MAX"), keep_fd + 1)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, limit)

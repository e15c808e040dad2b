"""One writer per output: an exclusive `flock` on `<out>.lock`, held for the whole run.

flock, not "create the file if absent": the kernel drops the lock when the holding process dies, even
by SIGKILL, so a crashed run never leaves a stale lock behind. The lock file itself stays on disk
(deleting it would let a second run lock a fresh inode while a first one still holds the old one).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType


class OutputLocked(RuntimeError):
    """Another process holds the lock of this output."""


def lock_path(out_path: str | os.PathLike[str]) -> Path:
    """`<out>.lock`, next to the output."""
    return Path(f"{os.fspath(out_path)}.lock")


class OutputLock:
    """Context manager: `with OutputLock(out): ...` holds `<out>.lock` or raises OutputLocked."""

    def __init__(self, out_path: str | os.PathLike[str]) -> None:
        self.path = lock_path(out_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this OutputLock")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _read_holder(fd)
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputLocked(
                    f"{self.path} is locked{holder}: another run is writing this output; "
                    "wait for it to finish or choose another --out"
                ) from None
            raise
        self._fd = fd
        _write_holder(fd)
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    """Record our pid in the lock file: only a hint for the message a second run prints."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" by process {pid}" if pid.isdigit() else ""

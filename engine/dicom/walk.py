"""Walk the input paths: every candidate file once, by real path, following folder links safely.

The walk yields the real path of each file to read, or a record for what it will not read (a
link loop, a link to a folder read through another path, a broken link, a FIFO or device, a
folder it cannot list). Memory does not grow with the number of files or folders: a real folder
is read by the walk of the one "base" (an input folder or a followed link target) it lies in,
so only bases and files reached from outside a base (file arguments, file links) are remembered.

`exclude` names paths the walk never reads and never reports: the engine's own outputs when they
sit inside an input folder (the scores file, its lock, journal, store files, views, report). A path
is compared by real path; an excluded folder excludes everything below it; a path that does not
exist yet is fine.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator

from mammo_batch.engine.dicom.policy import fail, skip
from mammo_batch.engine.dicom.record import ViewRecord

SKIPPED_DIRS = {"__MACOSX"}


def candidate(name: str) -> bool:
    """Hidden files and folders and macOS resource forks are never candidates."""
    return not name.startswith(".") and name not in SKIPPED_DIRS


class _Folder(str):
    """A real sub-folder found by a listing (the walk descends into it)."""


class Walk:
    def __init__(self, paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()) -> None:
        self.inputs = [os.fspath(p) for p in paths]
        self.excluded = frozenset(os.path.realpath(p) for p in exclude)
        self.bases: set[str] = set()  # real folders whose walk reads everything below them
        self.extra: set[str] = set()  # real files read from outside their folder's walk
        self.walked: set[str] = set()
        self.chain: list[str] = []  # folders holding the links followed to reach the current walk

    def __iter__(self) -> Iterator[str | ViewRecord]:
        kinds = [(path, _kind(path)) for path in self.inputs]
        self.bases = {os.path.realpath(p) for p, kind in kinds if kind == "dir"}
        for base in sorted(self.bases, key=len, reverse=True):  # an input inside another is read by it
            if self._covered_by_other(base):
                self.bases.discard(base)
        for path, kind in kinds:
            real = os.path.realpath(path)
            if self._excluded(real):
                continue
            if kind == "dir":
                if real in self.bases:
                    yield from self._walk(real)
            elif kind == "file":
                yield from self._file(real)
            else:
                yield _report(os.path.abspath(path), kind)

    def _walk(self, base: str) -> Iterator[str | ViewRecord]:
        """Depth first, names sorted; `base` and every folder below it are real paths."""
        if base in self.walked:
            return
        self.walked.add(base)
        stack = [iter(self._listing(base))]
        while stack:
            item = next(stack[-1], None)
            if item is None:
                stack.pop()
            elif isinstance(item, _Folder):
                if item not in self.bases:  # a base is walked on its own
                    stack.append(iter(self._listing(item)))
            else:
                yield item

    def _listing(self, folder: str) -> Iterator[str | ViewRecord]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield fail(ViewRecord(path=folder), "unreadable_folder", f"cannot list: {exc.strerror}")
            return
        for entry in entries:
            if not candidate(entry.name):
                continue
            path = os.path.join(folder, entry.name)
            if path in self.excluded:  # `folder` is real and not excluded: one look is enough
                continue
            if entry.is_symlink():
                yield from self._link(folder, path)
            elif entry.is_dir(follow_symlinks=False):
                yield _Folder(path)
            elif entry.is_file(follow_symlinks=False):
                if path not in self.extra:
                    yield path
            else:
                yield _report(path, "special")

    def _link(self, folder: str, link: str) -> Iterator[str | ViewRecord]:
        kind = _kind(link)
        real = os.path.realpath(link)
        if self._excluded(real):
            return
        if kind == "file":
            yield from self._file(real)
        elif kind != "dir":
            yield _report(link, kind)
        elif any(_inside(f, real) for f in (folder, *self.chain)):  # back to where the walk came from
            yield skip(ViewRecord(path=link), "symlink_loop")
        elif self._covered(real):
            yield skip(ViewRecord(path=link), "symlink_seen")
        else:
            self.bases.add(real)
            self.chain.append(folder)
            yield from self._walk(real)
            self.chain.pop()

    def _file(self, real: str) -> Iterator[str]:
        if real not in self.extra and not self._covered(real):
            self.extra.add(real)
            yield real

    def _covered(self, real: str) -> bool:
        """Whether the walk of a base reads `real` (a base itself, or below one through candidates)."""
        path, names = real, []
        while True:
            if path in self.bases and all(candidate(n) for n in names):
                return True
            parent = os.path.dirname(path)
            if parent == path:
                return False
            names.append(os.path.basename(path))
            path = parent

    def _excluded(self, real: str) -> bool:
        """`real` is excluded, or lies in an excluded folder."""
        if not self.excluded:
            return False
        path = real
        while True:
            if path in self.excluded:
                return True
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent

    def _covered_by_other(self, base: str) -> bool:
        parent = os.path.dirname(base)
        return parent != base and self._covered(parent) and candidate(os.path.basename(base))


def walk(paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike] = ()) -> Iterator[str | ViewRecord]:
    """Real paths of the files to read, and records of what is not read, in a stable order;
    nothing at or below a path in `exclude` (module docstring)."""
    return iter(Walk(paths, exclude))


def _inside(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip(os.sep) + os.sep)


def _kind(path: str) -> str:
    """'dir', 'file', 'special', 'loop' (a link cycle) or 'broken' (a link to nothing); follows links."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return "loop" if exc.errno == errno.ELOOP else "broken"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "special"


def _report(path: str, kind: str) -> ViewRecord:
    if kind == "special":
        return skip(ViewRecord(path=path), "special_file")
    if kind == "loop":
        return skip(ViewRecord(path=path), "symlink_loop")
    return fail(ViewRecord(path=path), "broken_link")

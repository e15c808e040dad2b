"""Walk folders for candidate files and read their headers in parallel."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.policy import apply_policy
from mammo_batch.engine.dicom.record import ViewRecord

SKIPPED_DIRS = {"__MACOSX"}


def iter_candidate_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Every regular file under `paths` (files with or without .dcm), in a stable order.

    Hidden files and folders and macOS resource forks are not candidates.
    """
    for root in paths:
        root = Path(root)
        if root.is_file():
            yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not _hidden(d) and d not in SKIPPED_DIRS)
            for name in sorted(filenames):
                if not _hidden(name):
                    yield Path(dirpath) / name


def _hidden(name: str) -> bool:
    return name.startswith(".")


def discover(
    paths: Iterable[str | os.PathLike],
    views: Collection[str] | None = None,
    workers: int = 0,
    chunksize: int = 32,
) -> list[ViewRecord]:
    """Read the header of every candidate file and apply the view policy.

    `workers` 0 picks the CPU count; 1 reads in this process (no pool start-up cost).
    """
    files = [str(p) for p in iter_candidate_files(paths)]
    return [apply_policy(r, views) for r in _read_all(files, workers, chunksize)]


def _read_all(files: list[str], workers: int, chunksize: int) -> Iterator[ViewRecord]:
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(files) < 2 * chunksize:
        yield from map(read_view, files)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(read_view, files, chunksize=chunksize)

"""Walk folders for candidate files and read their headers in parallel, into a HeaderCatalog.

Streaming and bounded: the walk feeds a window of chunks to the worker pool and the records come
back in walk order straight into the catalog, so neither the list of paths nor the records of a
large backlog are ever held as Python objects.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from pathlib import Path

from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.policy import apply_policy
from mammo_batch.engine.dicom.quiet import WARNINGS_MARK
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.dicom.walk import walk

log = logging.getLogger("mammo_batch.discover")

Item = str | ViewRecord  # a real path to read, or a record the walk already decided


def iter_candidate_files(paths: Iterable[str | os.PathLike],
                         exclude: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """The real path of every file discovery would read, in walk order."""
    return (Path(item) for item in walk(paths, exclude) if isinstance(item, str))


def discover(
    paths: Iterable[str | os.PathLike],
    views: Collection[str] | None = None,
    workers: int = 0,
    chunksize: int = 32,
    spill_dir: str | os.PathLike | None = None,
    exclude: Iterable[str | os.PathLike] = (),
) -> HeaderCatalog:
    """Read the header of every candidate file and apply the view policy.

    Returns a HeaderCatalog: iterate it for ViewRecords, `len()` for the file count, and pass it
    to `studies.plan_studies` (or `group_studies`). `workers` 0 picks the CPU count; 1 reads in
    this process. Third-party warnings become at most one log line per file, in our words.
    `exclude`: paths (files or folders, compared by real path) never read nor reported, e.g. the
    run's own outputs inside an input folder (engine/dicom/walk.py).
    """
    catalog = HeaderCatalog(spill_dir)
    for record in _read_all(walk(paths, exclude), workers or os.cpu_count() or 1, chunksize):
        record = apply_policy(record, views)
        if WARNINGS_MARK in record.detail:
            log.warning("%s: %s", record.path, record.detail)
        catalog.append(record)
    return catalog.finish()


def read_items(items: list[Item]) -> list[ViewRecord]:
    """A worker's task: read the paths, pass the walk's records through."""
    return [read_view(item) if isinstance(item, str) else item for item in items]


def _read_all(items: Iterator[Item], workers: int, chunksize: int) -> Iterator[ViewRecord]:
    head = list(islice(items, 2 * chunksize))
    if workers == 1 or len(head) < 2 * chunksize:
        yield from read_items(head)
        for item in items:
            yield from read_items([item])
        return
    chunks = _chunks(head, items, chunksize)
    with header_pool(workers) as pool:
        window = deque(pool.submit(read_items, c) for c in islice(chunks, 2 * workers))
        while window:
            done = window.popleft().result()
            window.extend(pool.submit(read_items, c) for c in islice(chunks, 1))
            yield from done


def header_pool(workers: int) -> ProcessPoolExecutor:
    """The header readers: spawned, never forked. A fork copies the whole parent, loaded models and
    runtime threads included (`score` may have loaded the ensemble already), and forking a process
    with threads can deadlock in a lock some thread held at that instant."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _chunks(head: list[Item], rest: Iterator[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(head), size):
        yield head[start:start + size]
    while chunk := list(islice(rest, size)):
        yield chunk

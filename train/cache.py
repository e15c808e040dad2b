"""A disk cache of preprocessed views, so training decodes each view once, not once per epoch.

Entries are `.npy` files named by a sha256 of everything the array depends on (the file's
absolute path, size and mtime_ns, the preprocessing settings, the model size, a cache
version): a changed file or setting gives another key, so a stale entry is never read.
The arrays come from the engine's own pixel path (`prepare_file`): no train/inference skew.
Writes are atomic (temp file in the same folder + os.replace), so an interrupted run or two
processes filling the same entry never leave a torn file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
import uuid
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mammo_batch import __version__
from mammo_batch.engine.dicom.decode import DecodeError
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file

log = logging.getLogger(__name__)

# Bump when the entry format or the meaning of a key changes; the engine version is in the
# key too, so a pixel-path change in a new release never reads an old array.
# 2: the pixel path's mirror-exact geometry (mask and box found on the image as rendered).
CACHE_VERSION = 2
NUMPY_DTYPES = {"uint8": np.uint8, "uint16": np.uint16, "float32": np.float32}


class PreprocessCache:
    """Model inputs of one (settings, size) for many view files, cached under `root`."""

    def __init__(self, root: str | os.PathLike, settings: PreprocessSettings, size: tuple[int, int]):
        self.root = Path(root)
        self.settings = settings
        self.size = (int(size[0]), int(size[1]))
        self.hits = 0  # get() calls answered from disk
        self.misses = 0  # get() calls that decoded and preprocessed the file
        self.warm_failures: dict[str, str] = {}  # path -> error, from the last warm()

    def key(self, path: str | os.PathLike) -> str:
        """sha256 (hex) of the file's identity and everything its model input depends on."""
        absolute = os.path.abspath(path)
        stat = os.stat(absolute)
        parts = {
            "path": absolute,
            "bytes": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "settings": dataclasses.asdict(self.settings),
            "height": self.size[0],
            "width": self.size[1],
            "cache_version": CACHE_VERSION,
            "engine_version": __version__,
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def entry_path(self, path: str | os.PathLike) -> Path:
        """Where the entry for `path` lives (two-character shards keep folders small)."""
        key = self.key(path)
        return self.root / key[:2] / f"{key}.npy"

    def get(self, path: str | os.PathLike) -> np.ndarray:
        """The model input for `path`. Raises DecodeError / ValueError naming the file."""
        entry = self.entry_path(path)
        cached = self._load(entry)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        array = self._compute(path)
        _save_atomic(entry, array)
        return array

    def warm(self, paths: Iterable[str | os.PathLike], workers: int = 0) -> int:
        """Fill the cache for `paths` in a process pool; return how many were computed.

        Files that fail are not cached and are listed in `warm_failures`: the training
        loop's own get() raises for them again and decides to skip the view.
        """
        todo = sorted({str(p) for p in paths if not self._cached(p)})
        workers = min(workers or os.cpu_count() or 1, max(len(todo), 1))
        jobs = [(self.root, self.settings, self.size, p) for p in todo]
        if workers <= 1:
            results = list(map(_warm_one, jobs))
        else:  # spawn: no fork of a parent that may hold threads (torch, a data loader)
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                results = list(pool.map(_warm_one, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
        self.warm_failures = {p: error for p, error in zip(todo, results, strict=True) if error}
        if self.warm_failures:
            log.warning("cache warm-up: %d of %d files could not be prepared",
                        len(self.warm_failures), len(todo))
        return len(todo) - len(self.warm_failures)

    def _cached(self, path: str | os.PathLike) -> bool:
        try:
            return self.entry_path(path).is_file()
        except OSError:  # a missing source file: let the worker report it
            return False

    def _compute(self, path: str | os.PathLike) -> np.ndarray:
        try:
            prepared = prepare_file(path, [self.size], self.settings)
        except DecodeError as exc:
            raise DecodeError(f"{path}: {exc}") from exc
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return prepared.inputs[self.size]

    def _load(self, entry: Path) -> np.ndarray | None:
        """The cached array, or None when absent or unusable (then it is recomputed)."""
        try:
            array = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # e.g. a disk error; atomic writes rule out torn files
            log.warning("ignoring unreadable cache entry %s: %s", entry.name, exc)
            return None
        if array.shape != self.size or array.dtype != NUMPY_DTYPES[self.settings.dtype]:
            log.warning("ignoring cache entry %s: shape %s %s", entry.name, array.shape, array.dtype)
            return None
        return array


def _warm_one(job: tuple[Path, PreprocessSettings, tuple[int, int], str]) -> str:
    """Compute one entry in a worker; return "" or the error (the pool must not stop)."""
    root, settings, size, path = job
    try:
        PreprocessCache(root, settings, size).get(path)
    except (DecodeError, ValueError, OSError) as exc:
        return safe_error(exc, 300)
    return ""


def _save_atomic(entry: Path, array: np.ndarray) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer, opened with "x" (not mkstemp, whose 0600 would hide a shared cache).
    temp = entry.with_name(f".{entry.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "xb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(temp, entry)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise

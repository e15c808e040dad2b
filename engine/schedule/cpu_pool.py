"""CpuPoolPreparer: decode + pixel path in a pool of spawned worker processes.

Faults stay with their file:
- an exception in a worker fails that view (decode_error);
- a worker process that dies (a decoder crash, the OOM killer) breaks the pool: its views are
  retried once in a fresh pool, then failed (worker_crash);
- a view that runs past the per-file time limit has its pool killed and is failed (timeout); the
  other views of that pool are retried.
Workers never outlive the run: they ask the kernel for SIGKILL when their parent dies (Linux) and
watch their parent's pid, so a killed `score` leaves no orphans holding its stdout.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cv2
import numpy as np

from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.schedule.preparer import (
    REASON_DECODE_ERROR,
    REASON_TIMEOUT,
    REASON_WORKER_CRASH,
    PreparedView,
    Size,
)

log = logging.getLogger("mammo_batch.score")

ATTEMPTS = 2  # a view lost to a dying worker is tried this many times in all
PARENT_POLL_S = 1.0


@dataclass
class _Task:
    view_id: int
    path: str
    attempts: int = 1
    running_since: float | None = None  # first seen running (the time limit counts from here)


Task = Callable[[str, list[Size], PreprocessSettings], dict[Size, np.ndarray]]


def prepare_inputs(path: str, sizes: list[Size], settings: PreprocessSettings) -> dict[Size, np.ndarray]:
    """The default task: decode + pixel path (engine/prepare.py)."""
    return prepare_file(path, sizes, settings).inputs


class CpuPoolPreparer:
    def __init__(self, sizes: list[Size], settings: PreprocessSettings, workers: int = 0,
                 capacity: int = 0, time_limit_s: float = 300.0, task: Task = prepare_inputs) -> None:
        """`task` runs in the workers: a module-level function (spawned processes import it by name)."""
        self.task = task
        self.sizes = list(sizes)
        self.settings = settings
        self.workers = workers or os.cpu_count() or 1
        self.capacity = capacity or 2 * self.workers
        self.time_limit_s = time_limit_s
        self._tasks: dict[Future, _Task] = {}
        self._pool = self._new_pool()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def submit(self, view_id: int, path: str) -> None:
        self._submit(_Task(view_id, path))

    def collect(self, timeout: float) -> list[PreparedView]:
        if not self._tasks:
            return []
        done, _ = wait(list(self._tasks), timeout=timeout, return_when=FIRST_COMPLETED)
        results, lost = [], []
        for future in done:
            task = self._tasks.pop(future)
            try:
                inputs, seconds = future.result()
            except BrokenProcessPool:
                lost.append(task)
            except Exception as exc:  # a bad file: this view only
                results.append(PreparedView(task.view_id, None, _describe(exc), REASON_DECODE_ERROR))
            else:
                results.append(PreparedView(task.view_id, inputs, seconds=seconds))
        results += self._enforce_time_limit(lost)
        if lost:
            results += self._restart(lost)
        return results

    def close(self) -> None:
        _kill_workers(self._pool)
        # wait=True: the pool's manager thread ends now, not in an exit handler whose pipes are gone
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._tasks.clear()

    def _submit(self, task: _Task) -> None:
        future = self._pool.submit(_timed, self.task, task.path, self.sizes, self.settings)
        self._tasks[future] = task

    def _enforce_time_limit(self, lost: list[_Task]) -> list[PreparedView]:
        """Kill the pool when a view runs too long: fail that view, the others join `lost`."""
        now = time.monotonic()
        overdue = []
        for future, task in self._tasks.items():
            if task.running_since is None and future.running():
                task.running_since = now
            if task.running_since is not None and now - task.running_since > self.time_limit_s:
                overdue.append(future)
        if not overdue:
            return []
        log.warning("a view took longer than %.0f s to prepare; restarting the workers", self.time_limit_s)
        failed = [self._tasks.pop(f) for f in overdue]
        lost += self._tasks.values()
        self._tasks.clear()
        _kill_workers(self._pool)
        message = f"preparing the view took longer than the time limit of {self.time_limit_s:.0f} s"
        return [PreparedView(t.view_id, None, message, REASON_TIMEOUT) for t in failed]

    def _restart(self, lost: list[_Task]) -> list[PreparedView]:
        """A worker died: a fresh pool; each lost view is retried once, then failed."""
        log.warning("a decode worker process died; retrying its views (%d in flight)", len(lost))
        self._pool.shutdown(wait=False, cancel_futures=True)
        for future, task in list(self._tasks.items()):  # futures of the dead pool that were not done yet
            del self._tasks[future]
            lost.append(task)
        self._pool = self._new_pool()
        failed = []
        for task in lost:
            if task.attempts >= ATTEMPTS:
                failed.append(PreparedView(task.view_id, None, "the decode worker process died on this file "
                                           f"{ATTEMPTS} times", REASON_WORKER_CRASH))
            else:
                self._submit(_Task(task.view_id, task.path, task.attempts + 1))
        return failed

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds ONNX Runtime thread pools
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(os.getpid(),))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _init_worker(parent_pid: int) -> None:
    cv2.setNumThreads(1)  # one view per process; threads would fight the other workers
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # failures come back as our one-line errors
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:  # other systems, and a belt to the braces above
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


def _timed(task: Task, path: str, sizes: list[Size], settings: PreprocessSettings) -> tuple[dict, float]:
    started = time.perf_counter()
    inputs = task(path, sizes, settings)
    return inputs, time.perf_counter() - started

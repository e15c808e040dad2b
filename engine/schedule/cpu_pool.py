"""CpuPoolPreparer: decode + pixel path in a pool of spawned worker processes.

Faults stay with their file:
- an exception in a worker fails that view (decode_error);
- a worker process that dies (a decoder crash, the OOM killer) breaks the pool: its views are
  retried once in a fresh pool; a view lost twice is retried alone in a one-process quarantine
  pool, and failed (worker_crash) only if it kills that worker twice: neighbours are never blamed;
- a view that runs past the per-file time limit has its pool killed and is failed (timeout); the
  other views of that pool are retried. The limit counts from the moment a worker STARTS the view
  (each worker reports it), so a worker's start-up and the wait in the pool's queue, both long on a
  loaded machine, never count against a file.
Workers never outlive the run: they ask the kernel for SIGKILL when their parent dies (Linux) and
watch their parent's pid, so a killed `score` leaves no orphans holding its stdout.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cv2
import numpy as np

from mammo_batch.engine.dicom.quiet import safe_error
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

ATTEMPTS = 2  # a view lost to a dying worker is tried this many times in the pool, then as often alone
PARENT_POLL_S = 1.0


@dataclass
class _Task:
    view_id: int
    path: str
    attempts: int = 1
    running_since: float | None = None  # when a worker started it (the time limit counts from here)
    token: int = 0  # names the task in the workers' start reports; unique within a lane's pool


_started: multiprocessing.queues.SimpleQueue | None = None  # in a worker: where starts are reported


Task = Callable[[str, list[Size], PreprocessSettings], dict[Size, np.ndarray]]


def prepare_inputs(path: str, sizes: list[Size], settings: PreprocessSettings) -> dict[Size, np.ndarray]:
    """The default task: decode + pixel path (engine/prepare.py)."""
    return prepare_file(path, sizes, settings).inputs


class _Lane:
    """One process pool and the tasks in it; killed and replaced as a whole when a worker dies."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.tasks: dict[Future, _Task] = {}
        self._tokens = itertools.count(1)
        self.pool = self._new_pool()

    def submit(self, task: _Task, call: Callable, *args) -> None:
        task.token, task.running_since = next(self._tokens), None
        self.tasks[self.pool.submit(_reporting, task.token, call, *args)] = task

    def overdue(self, limit_s: float) -> list[Future]:
        """The tasks a worker started more than `limit_s` ago (by the workers' own start reports:
        `future.running()` is true already while a task waits in the pool's call queue)."""
        self._read_starts()
        now = time.monotonic()
        return [f for f, task in self.tasks.items()
                if task.running_since is not None and now - task.running_since > limit_s]

    def _read_starts(self) -> None:
        by_token = {task.token: task for task in self.tasks.values()}
        while not self.started.empty():
            token, when = self.started.get()
            if token in by_token:  # else it finished and was collected already
                by_token[token].running_since = when

    def restart(self) -> list[_Task]:
        """Kill the workers, start fresh ones; returns the tasks that were still in the old pool."""
        _kill_workers(self.pool)
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.started.close()
        pending, self.tasks = list(self.tasks.values()), {}
        self.pool = self._new_pool()
        return pending

    def close(self) -> None:
        _kill_workers(self.pool)
        # wait=True: the pool's manager thread ends now, not in an exit handler whose pipes are gone
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.started.close()
        self.tasks.clear()

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent holds ONNX Runtime thread pools
        context = multiprocessing.get_context("spawn")
        # A new queue per pool: a worker killed mid-report cannot leave a lock held for the next pool.
        # SimpleQueue's put writes to the pipe at once (no feeder thread), so the report is out before
        # the task runs, even one that then hangs holding the GIL.
        self.started = context.SimpleQueue()
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker,
                                   initargs=(os.getpid(), self.started))


class CpuPoolPreparer:
    """Views in a pool of `workers` processes. A view whose worker died twice (with other views in
    flight, so the culprit is unknown) is retried ALONE in a one-process quarantine pool: only the
    file that kills a worker on its own is failed; its neighbours in the pool are not."""

    def __init__(self, sizes: list[Size], settings: PreprocessSettings, workers: int = 0,
                 capacity: int = 0, time_limit_s: float = 300.0, task: Task = prepare_inputs) -> None:
        """`task` runs in the workers: a module-level function (spawned processes import it by name)."""
        self.task = task
        self.sizes = list(sizes)
        self.settings = settings
        self.workers = workers or os.cpu_count() or 1
        self.capacity = capacity or 2 * self.workers
        self.time_limit_s = time_limit_s
        self._main = _Lane(self.workers)
        self._solo: _Lane | None = None  # started on the first quarantined view
        self._quarantine: deque[_Task] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._main.tasks) + len(self._quarantine) + (len(self._solo.tasks) if self._solo else 0)

    def submit(self, view_id: int, path: str) -> None:
        self._run(self._main, _Task(view_id, path))

    def collect(self, timeout: float) -> list[PreparedView]:
        lanes = [lane for lane in (self._main, self._solo) if lane is not None and lane.tasks]
        if not lanes:
            return []
        done, _ = wait([f for lane in lanes for f in lane.tasks], timeout=timeout, return_when=FIRST_COMPLETED)
        results: list[PreparedView] = []
        broken: set[int] = set()
        for lane in lanes:
            for future in [f for f in lane.tasks if f in done]:
                task = lane.tasks.pop(future)
                try:
                    inputs, seconds = future.result()
                except BrokenProcessPool:
                    broken.add(id(lane))
                    lane.tasks[future] = task  # still pending: restart() hands it back
                except Exception as exc:  # a bad file: this view only
                    results.append(PreparedView(task.view_id, None, safe_error(exc, 300), REASON_DECODE_ERROR))
                else:
                    results.append(PreparedView(task.view_id, inputs, seconds=seconds))
        for lane in lanes:
            results += self._enforce_time_limit(lane)
            if id(lane) in broken:
                results += self._after_crash(lane)
        self._feed_quarantine()
        return results

    def close(self) -> None:
        for lane in (self._main, self._solo):
            if lane is not None:
                lane.close()
        self._quarantine.clear()

    def _run(self, lane: _Lane, task: _Task) -> None:
        lane.submit(task, _timed, self.task, task.path, self.sizes, self.settings)

    def _enforce_time_limit(self, lane: _Lane) -> list[PreparedView]:
        """Kill a lane when one of its views runs too long: fail that view, rerun the others."""
        overdue = lane.overdue(self.time_limit_s)
        if not overdue:
            return []
        log.warning("a view took longer than %.0f s to prepare; restarting the workers", self.time_limit_s)
        late = {id(lane.tasks[f]) for f in overdue}
        failed = []
        for task in lane.restart():
            if id(task) in late:
                failed.append(task)
            else:  # killed with the late one, through no fault of its own
                self._run(lane, _Task(task.view_id, task.path, task.attempts))
        message = f"preparing the view took longer than the time limit of {self.time_limit_s:.0f} s"
        return [PreparedView(t.view_id, None, message, REASON_TIMEOUT) for t in failed]

    def _after_crash(self, lane: _Lane) -> list[PreparedView]:
        """A worker died. Main lane: retry its views once, then quarantine them; quarantine lane: the
        one view in it killed the worker on its own, and fails."""
        lost = lane.restart()
        if lane is self._solo:  # it crashed alone: once more alone (a transient cause), then it fails
            failed = []
            for task in lost:
                if task.attempts >= 2 * ATTEMPTS:
                    failed.append(PreparedView(task.view_id, None, "the decode worker process died on this file, "
                                               f"alone, {ATTEMPTS} times", REASON_WORKER_CRASH))
                else:
                    self._quarantine.appendleft(_Task(task.view_id, task.path, task.attempts + 1))
            return failed
        log.warning("a decode worker process died; retrying its views (%d in flight)", len(lost))
        for task in lost:
            retry = _Task(task.view_id, task.path, task.attempts + 1)
            if retry.attempts > ATTEMPTS:
                self._quarantine.append(retry)
            else:
                self._run(self._main, retry)
        return []

    def _feed_quarantine(self) -> None:
        if not self._quarantine:
            return
        if self._solo is None:
            self._solo = _Lane(1)
        if not self._solo.tasks:
            self._run(self._solo, self._quarantine.popleft())



def _kill_workers(pool: ProcessPoolExecutor) -> None:
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.kill()


def _init_worker(parent_pid: int, started: multiprocessing.queues.SimpleQueue) -> None:
    global _started
    _started = started
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


def _reporting(token: int, call: Callable, *args):
    """Runs in a worker: say when this task starts (time.monotonic is system-wide on Linux and
    macOS, so the parent compares it with its own clock), then run it."""
    if _started is not None:
        _started.put((token, time.monotonic()))
    return call(*args)


def _timed(task: Task, path: str, sizes: list[Size], settings: PreprocessSettings) -> tuple[dict, float]:
    started = time.perf_counter()
    inputs = task(path, sizes, settings)
    return inputs, time.perf_counter() - started

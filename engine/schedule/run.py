"""The streaming scheduler.

    studies -> decode + pixel path (worker processes) -> batches per input size, across
    studies -> members (this process) -> collector -> completed studies to the sink

Memory is bounded: at most `max_in_flight` views are being prepared or waiting for a
batch, whatever the number of studies. Decoding overlaps inference because the workers
keep preparing the views in flight while this process runs a batch. A bad file fails
its view, never the run; a crashed worker process is replaced and its views retried once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import cv2

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.schedule.batcher import Batch, SizeBatcher
from mammo_batch.engine.schedule.collector import StudyCollector, StudyResult
from mammo_batch.engine.studies import Study

log = logging.getLogger("mammo_batch.score")

Size = tuple[int, int]


@dataclass(frozen=True)
class StudyJob:
    study: Study
    fingerprint: str


@dataclass(frozen=True)
class SchedulerOptions:
    workers: int = 0  # decode processes; 0 = one per core
    batch_size: int = 8
    max_in_flight: int = 0  # views being prepared or batched; 0 = 2 x workers + 2 x batch size
    idle_flush_s: float = 0.5  # run a partial batch after it waited this long


class Scheduler:
    def __init__(self, runners: dict[Size, list], settings: PreprocessSettings,
                 options: SchedulerOptions = SchedulerOptions()) -> None:
        """`runners`: model input size -> the member runners of that size."""
        self.runners = runners
        self.settings = settings
        self.options = options
        self.workers = options.workers or os.cpu_count() or 1
        self.max_in_flight = options.max_in_flight or 2 * self.workers + 2 * options.batch_size
        members = [r.name for rs in runners.values() for r in rs]
        self.collector = StudyCollector(members)
        self.batcher = SizeBatcher(options.batch_size)

    def run(self, jobs: Iterable[StudyJob], sink: Callable[[list[StudyResult]], None]) -> None:
        """Score every job; completed studies go to `sink` as soon as all their views are back."""
        queue: deque[tuple[int, ViewRecord]] = deque()
        in_flight: dict[Future, tuple[int, ViewRecord]] = {}
        attempts: dict[int, int] = {}
        jobs_left = iter(jobs)
        pool = self._new_pool()
        try:
            while True:
                self._fill(pool, jobs_left, queue, in_flight, attempts)
                if not in_flight:
                    self._run_batches(self.batcher.drain())
                    sink(self.collector.take_completed())
                    if not queue and self.collector.open_studies == 0:
                        return
                    continue
                done, _ = wait(in_flight, timeout=self.options.idle_flush_s,
                               return_when=FIRST_COMPLETED)
                broken = self._collect(done, in_flight)
                if broken:
                    pool = self._replace_pool(pool, broken, queue, attempts)
                self._run_batches(self.batcher.drain(older_than=self.options.idle_flush_s))
                sink(self.collector.take_completed())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, pool, jobs_left: Iterator[StudyJob], queue, in_flight, attempts) -> None:
        """Submit views until max_in_flight, opening studies as needed."""
        while len(in_flight) + self.batcher.waiting < self.max_in_flight:
            if not queue:
                job = next(jobs_left, None)
                if job is None:
                    return
                queue.extend(self.collector.open_study(job.study, job.fingerprint))
                continue
            view_id, record = queue.popleft()
            attempts[view_id] = attempts.get(view_id, 0) + 1
            future = pool.submit(_prepare, record.path, list(self.runners), self.settings)
            in_flight[future] = (view_id, record)

    def _collect(self, done, in_flight) -> list[tuple[int, ViewRecord]]:
        """Batch the prepared views, fail the bad ones; returns views lost to a broken pool."""
        broken = []
        for future in done:
            view_id, record = in_flight.pop(future)
            try:
                inputs = future.result()
            except BrokenProcessPool:
                broken.append((view_id, record))
                continue
            except Exception as exc:  # a bad file: fail this view only
                self.collector.fail_view(view_id, f"{type(exc).__name__}: {exc}"[:300])
                continue
            for size, image in inputs.items():
                batch = self.batcher.add(size, view_id, image)
                if batch is not None:
                    self._run_batches([batch])
        return broken

    def _replace_pool(self, pool, broken, queue, attempts) -> ProcessPoolExecutor:
        """A worker died (a decoder crash): retry its views once in a fresh pool."""
        log.warning("a decode worker process died; retrying %d views", len(broken))
        pool.shutdown(wait=False, cancel_futures=True)
        for view_id, record in broken:
            if attempts[view_id] >= 2:
                self.collector.fail_view(view_id, "the decode worker process crashed on this file")
            else:
                queue.appendleft((view_id, record))
        return self._new_pool()

    def _run_batches(self, batches: list[Batch]) -> None:
        for batch in batches:
            for runner in self.runners[batch.size]:
                probabilities = runner.predict(batch.images)
                for view_id, p in zip(batch.view_ids, probabilities, strict=True):
                    self.collector.add_probability(view_id, runner.name, float(p))

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: this process holds ONNX Runtime thread pools
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one view per process; threads would fight the other workers
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def _prepare(path: str, sizes: list[Size], settings: PreprocessSettings) -> dict:
    return prepare_file(path, sizes, settings).inputs

"""The streaming scheduler.

    studies -> Preparer (decode + pixel path) -> batches per input size, across studies
    -> members (this process) -> collector -> completed studies to the sink

Memory is bounded: at most the preparer's capacity plus the views waiting for a batch are in
flight, whatever the number of studies. Preparing overlaps inference because the preparer keeps
working on the views in flight while this process runs a batch. A bad file fails its view, never
the run (the Preparer turns every per-file fault into that view's error).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.results.outcome import StudyResult
from mammo_batch.engine.schedule.batcher import Batch, SizeBatcher
from mammo_batch.engine.schedule.collector import StudyCollector
from mammo_batch.engine.schedule.preparer import PreparedView, Preparer
from mammo_batch.engine.studies import Study

Size = tuple[int, int]


@dataclass(frozen=True)
class SchedulerOptions:
    batch_size: int = 8
    idle_flush_s: float = 0.5  # run a partial batch after it waited this long


@dataclass
class StageTimes:
    """Seconds spent per stage (prepare is summed over the preparer's workers)."""

    prepare_s: float = 0.0
    model_s: float = 0.0
    views: int = 0
    batches: dict[str, int] = field(default_factory=dict)  # member -> batches run


class Scheduler:
    def __init__(self, runners: dict[Size, list], preparer: Preparer,
                 options: SchedulerOptions = SchedulerOptions()) -> None:
        """`runners`: model input size -> the member runners of that size (Ensemble.by_size)."""
        self.runners = runners
        self.preparer = preparer
        self.options = options
        self.collector = StudyCollector([r.name for rs in runners.values() for r in rs])
        self.batcher = SizeBatcher(options.batch_size)
        self.times = StageTimes()

    def run(self, jobs: Iterable[Study], sink: Callable[[list[StudyResult]], None],
            should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Score every job; completed studies go to `sink` as soon as all their views are back.

        Returns False when `should_stop()` turned true: no new study was opened after that, the
        studies in flight were finished and handed to the sink.
        """
        queue: deque[tuple[int, ViewRecord]] = deque()
        jobs_left: Iterator[Study] = iter(jobs)
        stopped = False
        while True:
            stopped = stopped or should_stop()
            if not stopped:
                self._fill(jobs_left, queue)
            elif queue:  # views of open studies still go out: a study is never half written
                self._fill(iter(()), queue)
            if not self.preparer.in_flight:
                self._run_batches(self.batcher.drain())
                sink(self.collector.take_completed())
                if not queue and self.collector.open_studies == 0:
                    return not stopped
                continue
            for prepared in self.preparer.collect(self.options.idle_flush_s):
                self._accept(prepared)
            self._run_batches(self.batcher.drain(older_than=self.options.idle_flush_s))
            sink(self.collector.take_completed())

    def _fill(self, jobs_left: Iterator[Study], queue: deque) -> None:
        """Submit views up to the preparer's capacity, opening studies as needed."""
        while self.preparer.in_flight + self.batcher.waiting < self.preparer.capacity + self.options.batch_size:
            if not queue:
                job = next(jobs_left, None)
                if job is None:
                    return
                queue.extend(self.collector.open_study(job))
                continue
            view_id, record = queue.popleft()
            self.preparer.submit(view_id, record.path)

    def _accept(self, prepared: PreparedView) -> None:
        self.times.prepare_s += prepared.seconds
        if prepared.failed:
            self.collector.fail_view(prepared.view_id, prepared.reason, prepared.error, prepared.seconds)
            return
        self.times.views += 1
        self.collector.prepared(prepared.view_id, prepared.seconds)
        for size, image in prepared.inputs.items():
            batch = self.batcher.add(size, prepared.view_id, image)
            if batch is not None:
                self._run_batches([batch])

    def _run_batches(self, batches: list[Batch]) -> None:
        for batch in batches:
            for runner in self.runners[batch.size]:
                started = time.perf_counter()
                probabilities = runner.predict(batch.images)
                self.times.model_s += time.perf_counter() - started
                self.times.batches[runner.name] = self.times.batches.get(runner.name, 0) + 1
                for view_id, p in zip(batch.view_ids, probabilities, strict=True):
                    self.collector.add_probability(view_id, runner.name, float(p))

"""`--engine local`: this machine's header pool, preparer and streaming scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.dicom.decoders import DecoderUnavailableError, choose_decoder
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.executors.base import Sink
from mammo_batch.engine.schedule.choose import make_preparer
from mammo_batch.engine.schedule.cpu_pool import Task, prepare_inputs
from mammo_batch.engine.schedule.run import Scheduler, SchedulerOptions, StageTimes
from mammo_batch.engine.studies import Study

log = logging.getLogger("mammo_batch.score")

# Worker processes start by importing the caller's main module again: a script that calls score() at
# its top level would call it again in every worker, which then dies.
SPAWN_GUARD = ("a worker process died while starting. If you call mammo_batch.score() from a script, put the "
               "call under `if __name__ == \"__main__\":` (worker processes import the script again)")


class LocalExecutor:
    """`task` is the per-view work of the CPU worker pool (module level: spawned workers import it)."""

    name = "local"

    def __init__(self, task: Task = prepare_inputs) -> None:
        self.task = task

    def refusal(self, options: Any) -> str | None:
        try:
            choose_decoder(options.decoder, "cuda")  # an unavailable decoder is refused before discovery
        except DecoderUnavailableError as exc:
            return str(exc)
        return None

    def session(self, options: Any) -> AbstractContextManager:
        return nullcontext()

    def discover(self, paths: list[Path], options: Any) -> HeaderCatalog:
        try:
            return discover(paths, views=options.view_filter, workers=options.workers, exclude=options.own_files)
        except BrokenProcessPool:
            raise RuntimeError(SPAWN_GUARD) from None

    def score(self, jobs: Iterable[Study], ensemble: Ensemble, options: Any, sink: Sink,
              should_stop: Callable[[], bool]) -> tuple[StageTimes, dict[str, Any]]:
        preparer, decoder_reason = make_preparer(options.decoder, ensemble.sizes, ensemble.settings,
                                                 ensemble.runtime.accepts_device_arrays, options.workers,
                                                 options.batch_size, options.time_limit_s, task=self.task)
        log.info("decoder: %s", decoder_reason)
        scheduler = Scheduler(ensemble.by_size, preparer, SchedulerOptions(batch_size=options.batch_size))
        try:
            scheduler.run(jobs, sink, should_stop=should_stop)
        finally:
            preparer.close()
        return scheduler.times, {}


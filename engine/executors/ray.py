"""`--engine ray`: discovery, decoding and the ensemble on a Ray cluster (engine/distributed)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.executors.base import Sink
from mammo_batch.engine.schedule.cpu_pool import Task, prepare_inputs
from mammo_batch.engine.schedule.run import StageTimes
from mammo_batch.engine.studies import Study


class RayExecutor:
    """`task` is the per-view work of the prepare actors (module level: their worker processes import it)."""

    name = "ray"

    def __init__(self, task: Task = prepare_inputs) -> None:
        self.task = task

    def refusal(self, options: Any) -> str | None:
        """What the Ray pipeline does not do is refused, never silently ignored."""
        if importlib.util.find_spec("ray") is None:
            return "--engine ray needs Ray: pip install 'mammo-batch[ray]'"
        if options.decoder not in ("auto", "cpu"):
            return f"--engine ray decodes on the CPU of each node: --decoder {options.decoder} is not supported there"
        return None

    def session(self, options: Any) -> AbstractContextManager:
        from mammo_batch.engine.distributed import ray_session

        return ray_session(options.ray_address, quiet=not options.progress)

    def discover(self, paths: list[Path], options: Any) -> HeaderCatalog:
        from mammo_batch.engine.distributed import discover_on_ray

        records = discover_on_ray(paths, views=options.view_filter, workers=options.workers, exclude=options.own_files)
        return HeaderCatalog.from_records(records)

    def score(self, jobs: Iterable[Study], ensemble: Ensemble, options: Any, sink: Sink,
              should_stop: Callable[[], bool]) -> tuple[StageTimes, dict[str, Any]]:
        from mammo_batch.engine.distributed import RayRun, score_on_ray

        run = RayRun(batch_size=options.batch_size, workers=options.workers, runtime=options.runtime,
                     threads=options.threads, time_limit_s=options.time_limit_s, progress=options.progress,
                     task=self.task)
        return score_on_ray(jobs, ensemble, run, sink, should_stop)

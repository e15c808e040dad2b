"""`--engine ray`: the jobs of a run scored by a Ray Data pipeline, results handed to the same sink.

    view rows (driver) -> PrepareStage (actors, each the local engine's CpuPoolPreparer) ->
    EnsembleScorer (actor pool, GPU per actor where there are GPUs) -> per-view rows streamed back
    to the driver -> the local engine's StudyCollector -> StudyResults -> sink

The driver owns the results: the StudyCollector (engine/schedule/collector.py) hands a study back
once all its views are in, and the run's sink (engine/api.py) journals it like the local engine's.
So per-file faults, reruns, resume after a killed driver, finalize and exit codes are the local
engine's. Ray Data's own checkpointing is not used (beta, and it would write a second copy of the
results).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.data import DataContext

from mammo_batch.engine.distributed.cluster import cluster_resources
from mammo_batch.engine.distributed.options import prepare_actors, scorer_actors
from mammo_batch.engine.distributed.prepare import PrepareStage
from mammo_batch.engine.distributed.scorer import EnsembleScorer, prob_column
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.results.outcome import StudyResult
from mammo_batch.engine.schedule.collector import StudyCollector
from mammo_batch.engine.schedule.cpu_pool import Task, prepare_inputs
from mammo_batch.engine.schedule.run import StageTimes
from mammo_batch.engine.studies import Study

log = logging.getLogger("mammo_batch.score")

VIEWS_PER_PREPARE_CALL = 4  # a few views per actor call: many calls in flight, little per-call overhead


@dataclass
class _Used:
    """Where the work ran, from the view rows themselves."""

    nodes: set[str] = field(default_factory=set)
    actors: set[str] = field(default_factory=set)
    gpus: set[str] = field(default_factory=set)
    runtimes: set[str] = field(default_factory=set)

    def add(self, batch: dict[str, np.ndarray]) -> None:
        self.nodes.update(batch["node"].tolist(), batch["actor_node"].tolist())
        self.actors.update(batch["actor"].tolist())
        self.runtimes.update(batch["runtime"].tolist())
        self.gpus.update(f"{node}:{gpu}" for node, gpus in zip(batch["actor_node"], batch["gpus"], strict=True)
                         for gpu in gpus.split(",") if gpu)


@dataclass(frozen=True)
class RayRun:
    """How the pipeline runs: the run's options that reach the stages."""

    batch_size: int = 8
    workers: int = 0  # prepare actors (0: as many as the cluster's CPUs allow)
    runtime: str = "auto"
    threads: int | None = None
    time_limit_s: float = 300.0  # per file, as locally
    progress: bool = False
    task: Task = prepare_inputs  # the per-view work of the prepare stage (tests script it)


def score_on_ray(jobs: Iterable[Study], ensemble: Ensemble, run: RayRun,
                 sink: Callable[[list[StudyResult]], None], should_stop: Callable[[], bool] = lambda: False,
                 ) -> tuple[StageTimes, dict[str, Any]]:
    """Score `jobs` on the connected cluster (cluster.ray_session); completed studies go to `sink`.

    Returns the stage times (prepare summed over actors, model summed over actors) and what the run
    used: {"nodes", "cpus", "gpus" (the cluster's), "nodes_used", "actors", "gpus_used", "runtimes"}.
    When `should_stop()` turns true the pipeline is stopped; studies not complete by then are not
    written (a rerun scores them), so no study is ever half written.
    """
    times, used = StageTimes(), _Used()
    collector = StudyCollector(list(ensemble.member_names))
    rows = [{"view_id": view_id, "path": record.path}
            for job in jobs for view_id, record in collector.open_study(job)]
    sink(collector.take_completed())  # studies with nothing to prepare
    cluster = cluster_resources()
    if rows:
        context = DataContext.get_current()
        bars = context.enable_progress_bars
        context.enable_progress_bars = run.progress  # Ray's bars beside ours; restored: a library leaves no trace
        try:
            batches = _dataset(rows, ensemble, run).iter_batches(batch_size=None, batch_format="numpy")
            _drain(batches, collector, ensemble.member_names, times, used, sink, should_stop)
        finally:
            context.enable_progress_bars = bars
    cluster.update(nodes_used=len(used.nodes), actors=len(used.actors), gpus_used=len(used.gpus),
                   runtimes=sorted(used.runtimes))
    log.info("ray: %d of %d nodes, %d scorer actors, %d GPUs used", cluster["nodes_used"], cluster["nodes"],
             cluster["actors"], cluster["gpus_used"])
    return times, cluster


def _dataset(rows: list[dict], ensemble: Ensemble, run: RayRun) -> ray.data.Dataset:
    dtypes = {runner.input_size: member.input.dtype
              for runner, member in zip(ensemble.runners, ensemble.bundle.members, strict=True)}
    actor_args, actor_threads = scorer_actors(run.threads)
    blocks = max(1, min(len(rows) // VIEWS_PER_PREPARE_CALL + 1, 10_000))
    return (ray.data.from_items(rows, override_num_blocks=blocks)
            .map_batches(PrepareStage, batch_size=VIEWS_PER_PREPARE_CALL, batch_format="pyarrow",
                         fn_constructor_args=(dtypes, ensemble.settings, run.time_limit_s, run.task),
                         **prepare_actors(run.workers, actor_args))
            .map_batches(EnsembleScorer, batch_size=run.batch_size, batch_format="numpy",
                         fn_constructor_args=(str(ensemble.bundle.path), run.runtime, actor_threads), **actor_args))


def _drain(batches: Iterable[dict[str, np.ndarray]], collector: StudyCollector, members: tuple[str, ...],
           times: StageTimes, used: _Used, sink: Callable[[list[StudyResult]], None],
           should_stop: Callable[[], bool]) -> None:
    seen: set[int] = set()
    iterator: Iterator = iter(batches)
    try:
        for batch in iterator:
            used.add(batch)
            times.model_s += float(batch["model_s"].sum())
            times.prepare_s += float(batch["seconds"].sum())
            for i, view_id in enumerate(batch["view_id"].tolist()):
                if view_id in seen:  # a row seen twice (Ray retried a task): keep the first
                    continue
                seen.add(view_id)
                times.views += _file(collector, batch, i, members)
            sink(collector.take_completed())
            if should_stop():
                log.warning("stopping the Ray pipeline: %d studies in flight are left for the next run",
                            collector.open_studies)
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stops the streaming executor when we leave early


def _file(collector: StudyCollector, batch: dict[str, np.ndarray], i: int, members: tuple[str, ...]) -> int:
    """Hand row `i` of `batch` to the collector; 1 when the view was scored."""
    view_id, seconds = int(batch["view_id"][i]), float(batch["seconds"][i])
    if batch["reason"][i]:
        collector.fail_view(view_id, str(batch["reason"][i]), str(batch["error"][i]), seconds)
        return 0
    collector.prepared(view_id, seconds)
    for index, member in enumerate(members):
        collector.add_probability(view_id, member, float(batch[prob_column(index)][i]))
    return 1

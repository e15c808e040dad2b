"""`--engine ray`: the jobs of a run scored by a Ray Data pipeline, results handed to the same sink.

    study rows (driver) -> decode + pixel path (CPU tasks) -> EnsembleScorer (actor pool, GPU per actor
    where there are GPUs) -> per-view rows streamed back to the driver -> StudyResults -> sink

The driver owns the results: it turns view rows into StudyResults as each study's last view arrives
and hands them to the run's sink (engine/api.py), which journals them like the local engine's. So
reruns, resume after a killed driver, finalize and exit codes are the local engine's, unchanged.
Ray Data's own checkpointing is not used (beta, and it would write a second copy of the results).
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
from mammo_batch.engine.distributed.decode import decode_studies
from mammo_batch.engine.distributed.options import cpu_tasks, scorer_actors
from mammo_batch.engine.distributed.scorer import EnsembleScorer, prob_column
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.results.outcome import StudyResult, ViewResult
from mammo_batch.engine.schedule.run import StageTimes
from mammo_batch.engine.studies import Study

log = logging.getLogger("mammo_batch.score")

STUDIES_PER_DECODE_TASK = 2  # a few views per task: many tasks in flight, little per-task overhead


@dataclass
class _Open:
    job: Study
    views: dict[int, ViewResult]
    outstanding: int


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


def score_on_ray(jobs: Iterable[Study], ensemble: Ensemble, *, batch_size: int, workers: int,
                 runtime: str, threads: int | None, progress: bool,
                 sink: Callable[[list[StudyResult]], None], should_stop: Callable[[], bool] = lambda: False,
                 ) -> tuple[StageTimes, dict[str, Any]]:
    """Score `jobs` on the connected cluster (cluster.ray_session); completed studies go to `sink`.

    Returns the stage times (prepare summed over tasks, model summed over actors) and what the run
    used: {"nodes", "cpus", "gpus" (the cluster's), "nodes_used", "actors", "gpus_used", "runtimes"}.
    When `should_stop()` turns true the pipeline is stopped; studies not complete by then are not
    written (a rerun scores them), so no study is ever half written.
    """
    times, used = StageTimes(), _Used()
    open_studies: dict[int, _Open] = {}
    rows = []
    for index, job in enumerate(jobs):
        scorable = [(position, v.path) for position, v in enumerate(job.views) if v.scorable]
        if not scorable:
            sink([StudyResult(job, {})])
            continue
        open_studies[index] = _Open(job, {}, len(scorable))
        rows.append({"job": index, "positions": [p for p, _ in scorable], "paths": [p for _, p in scorable]})
    cluster = cluster_resources()
    if rows:
        context = DataContext.get_current()
        bars = context.enable_progress_bars
        context.enable_progress_bars = progress  # Ray's bars beside ours; restored: a library leaves no trace
        try:
            batches = _dataset(rows, ensemble, batch_size, workers, runtime, threads).iter_batches(
                batch_size=None, batch_format="numpy")
            _drain(batches, open_studies, ensemble, times, used, sink, should_stop)
        finally:
            context.enable_progress_bars = bars
    cluster.update(nodes_used=len(used.nodes), actors=len(used.actors), gpus_used=len(used.gpus),
                   runtimes=sorted(used.runtimes))
    log.info("ray: %d of %d nodes, %d scorer actors, %d GPUs used", cluster["nodes_used"], cluster["nodes"],
             cluster["actors"], cluster["gpus_used"])
    return times, cluster


def _dataset(rows: list[dict], ensemble: Ensemble, batch_size: int, workers: int, runtime: str,
             threads: int | None) -> ray.data.Dataset:
    dtypes = {runner.input_size: member.input.dtype
              for runner, member in zip(ensemble.runners, ensemble.bundle.members, strict=True)}
    actor_args, actor_threads = scorer_actors(threads)
    blocks = max(1, min(len(rows) // STUDIES_PER_DECODE_TASK + 1, 10_000))
    return (ray.data.from_items(rows, override_num_blocks=blocks)
            .map_batches(decode_studies, batch_size=STUDIES_PER_DECODE_TASK, batch_format="pyarrow",
                         fn_kwargs={"dtypes": dtypes, "settings": ensemble.settings}, **cpu_tasks(workers))
            .map_batches(EnsembleScorer, batch_size=batch_size, batch_format="numpy",
                         fn_constructor_args=(str(ensemble.bundle.path), runtime, actor_threads), **actor_args))


def _drain(batches: Iterable[dict[str, np.ndarray]], open_studies: dict[int, _Open], ensemble: Ensemble,
           times: StageTimes, used: _Used, sink: Callable[[list[StudyResult]], None],
           should_stop: Callable[[], bool]) -> None:
    members = ensemble.member_names
    iterator: Iterator = iter(batches)
    try:
        for batch in iterator:
            used.add(batch)
            times.model_s += float(batch["model_s"].sum())
            times.prepare_s += float(batch["seconds"].sum())
            done = [_accept(open_studies, members, times, row) for row in _rows(batch, len(members))]
            sink([result for result in done if result is not None])
            if should_stop():
                log.warning("stopping the Ray pipeline: %d studies in flight are left for the next run",
                            len(open_studies))
                return
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # stops the streaming executor when we leave early


def _rows(batch: dict[str, np.ndarray], n_members: int) -> Iterator[tuple]:
    probs = [batch[prob_column(i)] for i in range(n_members)]
    for i in range(len(batch["job"])):
        yield (int(batch["job"][i]), int(batch["position"][i]), str(batch["reason"][i]), str(batch["error"][i]),
               float(batch["seconds"][i]), [float(p[i]) for p in probs])


def _accept(open_studies: dict[int, _Open], members: tuple[str, ...], times: StageTimes, row: tuple
            ) -> StudyResult | None:
    """File one view row; the study's StudyResult once its last view is in."""
    job, position, reason, error, seconds, probs = row
    entry = open_studies.get(job)
    if entry is None or position in entry.views:  # a row seen twice (a retried task): keep the first
        return None
    result = ViewResult(entry.job.views[position], seconds=seconds)
    if reason:
        result.reason, result.error = reason, error
    else:
        times.views += 1
        result.member_probs = dict(zip(members, probs, strict=True))
    entry.views[position] = result
    entry.outstanding -= 1
    if entry.outstanding:
        return None
    del open_studies[job]
    return StudyResult(entry.job, dict(sorted(entry.views.items())))

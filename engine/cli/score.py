"""`mammo-batch score PATH... --out scores.parquet --models BUNDLE`: the main job."""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from mammo_batch import __version__
from mammo_batch.engine.bundle import BundleError, load_bundle
from mammo_batch.engine.cli.options import (
    parse_views,
    study_key_option,
    view_filter_option,
    workers_option,
)
from mammo_batch.engine.dicom import discover
from mammo_batch.engine.results.aggregate import BREAST_AGGS, STUDY_AGGS
from mammo_batch.engine.results.fingerprint import study_fingerprint
from mammo_batch.engine.results.lock import OutputLock, OutputLocked
from mammo_batch.engine.results.schema import views_schema
from mammo_batch.engine.results.store import ResultStore
from mammo_batch.engine.runtimes import RuntimeUnavailableError, select_runtime
from mammo_batch.engine.schedule.progress import Progress
from mammo_batch.engine.schedule.run import Scheduler, SchedulerOptions, StudyJob
from mammo_batch.engine.schedule.tables import RunInfo, scores_table, views_table
from mammo_batch.engine.studies import group_studies

log = logging.getLogger("mammo_batch.score")

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
MODELS_ENV = "MAMMO_BATCH_MODELS"
RETRIED_STATUSES = {"failed", "partial"}  # rescored on every run, whatever their fingerprint


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="scores.parquet: one row per study (rerun with the same file to resume).")
@click.option("--models", "models", envvar=MODELS_ENV, required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help=f"The model bundle directory (or ${MODELS_ENV}).")
@click.option("--views", "views_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write views.parquet: one row per file seen, with per-member probabilities.")
@click.option("--runtime", type=click.Choice(["auto", "onnx", "torch"]), default="auto",
              show_default=True, help="Inference runtime; auto says which one it picked.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (default: one per core).")
@click.option("--breast-agg", type=click.Choice(BREAST_AGGS), default=None,
              help="Views -> breast (default: the bundle's rule).")
@click.option("--study-agg", type=click.Choice(STUDY_AGGS), default=None,
              help="Breasts -> study; max-image = max over all views (default: the bundle's rule).")
@click.option("--threshold", type=float, default=None, help="recall = score >= threshold "
              "(default: the bundle's).")
@click.option("--rescore", is_flag=True, help="Score every study, even unchanged ones.")
@click.option("--flush-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Write a journal part after this many completed studies.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@study_key_option
@view_filter_option
@workers_option
def score(paths, out: Path, models: Path, views_out: Path | None, runtime: str, batch_size: int,
          threads: int | None, breast_agg: str | None, study_agg: str | None,
          threshold: float | None, rescore: bool, flush_every: int, quiet: bool, study_key: str,
          view_filter: str | None, workers: int) -> None:
    """Score every study under PATHS with the ensemble in --models and write --out.

    Exit status: 0 all studies ok, 3 finished with failed or partial studies,
    2 usage or configuration error, 1 run-level crash.
    """
    try:
        bundle = load_bundle(models)
    except BundleError as exc:
        _usage_error(str(exc))
    try:
        with OutputLock(out):
            code = _run(paths, out, bundle, views_out, runtime, batch_size, threads,
                        breast_agg or bundle.aggregation["breast"],
                        study_agg or bundle.aggregation["study"],
                        bundle.threshold if threshold is None else threshold,
                        rescore, flush_every, quiet, study_key, parse_views(view_filter), workers)
    except (OutputLocked, BundleError, RuntimeUnavailableError) as exc:
        _usage_error(str(exc))
    sys.exit(code)


def _usage_error(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _run(paths, out, bundle, views_out, runtime_name, batch_size, threads, breast_agg, study_agg,
         threshold, rescore, flush_every, quiet, study_key, views_filter, workers) -> int:
    started = time.monotonic()
    records = discover(paths, views=views_filter, workers=workers)
    studies, orphans = group_studies(records, study_key)
    discovery_s = time.monotonic() - started

    runtime, reason = select_runtime(runtime_name, bundle, threads=threads)  # logs its choice
    members = [runtime.load(member, bundle.path) for member in bundle.members]
    runners: dict = {}
    for runner in members:
        runners.setdefault(runner.input_size, []).append(runner)

    info = RunInfo(tuple(m.name for m in bundle.members), bundle.id, __version__, threshold,
                   breast_agg, study_agg, _now_ms())
    metadata = {"bundle_id": bundle.id, "engine_version": __version__, "runtime": reason,
                "arguments": {"paths": [str(p) for p in paths], "breast_agg": breast_agg,
                              "study_agg": study_agg, "threshold": threshold,
                              "study_key": study_key, "rescore": rescore}}
    store = ResultStore(out, views_out, views_schema(list(info.members)), metadata)
    jobs, unchanged = _plan(studies, store.previous(), bundle.id, rescore)
    click.echo(f"{len(studies)} studies ({len(unchanged)} unchanged since the last run, "
               f"{len(jobs)} to score) in {len(records)} files, found in {discovery_s:.1f} s",
               err=True)

    progress = Progress(len(jobs), quiet)
    statuses: dict[str, int] = {}
    pending: list = []

    def sink(results) -> None:
        pending.extend(results)
        progress.update(len(results), sum(len(r.views) for r in results))
        if len(pending) >= flush_every:
            _write(store, pending, [], info, statuses)

    scheduler = Scheduler(runners, bundle.settings,
                          SchedulerOptions(workers=workers, batch_size=batch_size))
    scheduler.run(jobs, sink)
    _write(store, pending, orphans, info, statuses)
    progress.close()
    store.finalize(metadata={
        "timings": {"discovery_s": round(discovery_s, 3), "scoring_s": round(progress.elapsed, 3)},
        "counts": {"studies": len(studies), "scored": len(jobs), "unchanged": len(unchanged),
                   "files": len(records), **statuses},
    })
    click.echo(f"scored {len(jobs)} studies ({progress.views} views) in {progress.elapsed:.1f} s "
               f"({progress.views_per_second:.2f} views/s): "
               + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
               + f"; wrote {out}" + (f" and {views_out}" if views_out else ""), err=True)
    return EXIT_INCOMPLETE if statuses.get("failed") or statuses.get("partial") else EXIT_OK


def _plan(studies, previous, bundle_id: str, rescore: bool):
    jobs, unchanged = [], []
    for study in studies:
        fingerprint = study_fingerprint(v.path for v in study.views)
        before = previous.get(study.key)
        if (not rescore and before is not None and before.fingerprint == fingerprint
                and before.bundle_id == bundle_id and before.status not in RETRIED_STATUSES):
            unchanged.append(study.key)
        else:
            jobs.append(StudyJob(study, fingerprint))
    return jobs, unchanged


def _write(store, pending: list, orphans: list, info: RunInfo, statuses: dict) -> None:
    if not pending and not orphans:
        return
    views = views_table(pending, orphans, info)
    scores = scores_table(pending, views, info)
    for status in scores["status"].to_pylist():
        statuses[status] = statuses.get(status, 0) + 1
    store.append(scores, views)
    store.flush()
    pending.clear()



def _now_ms() -> datetime:
    """UTC now at the scores schema's millisecond resolution."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)

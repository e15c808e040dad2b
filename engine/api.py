"""The scoring API: everything `mammo-batch score` does, as one library call.

    import mammo_batch
    summary = mammo_batch.score(["/studies"], out="scores.parquet", models="bundle/")
    print(summary.counts, summary.views_per_second, summary.exit_code)

Every option is checked before any work starts (a ScoreUsageError says which one and why); a bad
file fails one view, never the run; SIGTERM or Ctrl-C stop opening studies, finish and write the
ones in flight, release the lock and return an `interrupted` summary.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from mammo_batch import __version__
from mammo_batch.engine.bundle import BundleError
from mammo_batch.engine.dicom.decoders import DECODERS
from mammo_batch.engine.dicom.vocabulary import MODIFIER_SUFFIX_BY_CODE, VIEW_BY_CODE
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.executors import EXECUTORS, Executor, make_executor
from mammo_batch.engine.executors.local import SPAWN_GUARD
from mammo_batch.engine.results.aggregate import BREAST_AGGS, STUDY_AGGS
from mammo_batch.engine.results.lock import OutputLock, OutputLocked, lock_path
from mammo_batch.engine.results.night import NightPlan, close_night, plan_night
from mammo_batch.engine.results.schema import STUDY_FAILED, STUDY_PARTIAL
from mammo_batch.engine.results.store import ResultStore, journal_dir, state_path, views_store_path
from mammo_batch.engine.results.tables import Rules, scored_rows
from mammo_batch.engine.runtimes import CHOICES as RUNTIMES
from mammo_batch.engine.runtimes import RuntimeUnavailableError
from mammo_batch.engine.schedule.progress import Progress
from mammo_batch.engine.schedule.run import StageTimes
from mammo_batch.engine.studies import STUDY_KEYS

log = logging.getLogger("mammo_batch.score")

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3
ENGINES = tuple(EXECUTORS)  # ray: engine/distributed (the `ray` extra), imported only when chosen
# View names a view filter may hold: the CID 4014 views, alone or with a modifier suffix (e.g. MLOID).
VIEW_CODES = frozenset(VIEW_BY_CODE.values()) | {
    view + suffix for view in VIEW_BY_CODE.values() for suffix in MODIFIER_SUFFIX_BY_CODE.values()}


class ScoreUsageError(ValueError):
    """An option, path or bundle that cannot work; raised before any study is scored."""


@dataclass(frozen=True)
class ScoreOptions:
    """Every option of a scoring run but the inputs, the output and the models."""

    views_out: Path | None = None  # also export views.parquet (one row per file seen)
    report_out: Path | None = None  # also write the nightly report (one HTML page)
    sr_out: Path | None = None  # also write a DICOM SR per changed scored study into this folder (docs/pacs.md)
    runtime: str = "auto"  # auto | onnx | torch ... (ignored when `models` is a loaded Ensemble)
    threads: int | None = None  # inference threads of a CPU runtime (default: one per core)
    workers: int = 0  # decode processes (0 = one per core)
    batch_size: int = 8
    breast_agg: str | None = None  # None = the bundle's rule
    study_agg: str | None = None
    threshold: float | None = None  # None = the bundle's
    study_key: str = "auto"
    view_filter: frozenset[str] | None = None  # e.g. {"CC", "MLO"}; None = every view the policy allows
    rescore: bool = False  # score every study, even unchanged ones
    flush_every: int = 50  # journal part every N completed studies (what a crash can lose)
    time_limit_s: float = 300.0  # per file, decode + pixel path
    max_studies: int | None = None  # stop opening studies after this many (a time-boxed night); None = all
    own_files: tuple[Path, ...] = ()  # set by score(): this run's outputs, never read as inputs
    progress: bool = True
    decoder: str = "auto"  # auto | cpu | nvimgcodec | dali (auto: nvimgcodec where a GPU and it exist)
    engine: str = "local"  # local | ray (a Ray cluster: engine/distributed)
    ray_address: str | None = None  # engine ray: None = RAY_ADDRESS, else a local Ray started for the run


@dataclass
class ScoreSummary:
    out: Path
    views_out: Path | None
    runtime: str  # the runtime chosen and why
    report_out: Path | None = None
    studies: int = 0  # studies with a file under tonight's roots
    files: int = 0  # files found under tonight's roots
    scored: int = 0  # studies whose files this run scored, completely
    kept: int = 0  # studies of tonight's roots with nothing to score (unchanged files)
    counts: dict[str, int] = field(default_factory=dict)  # status -> studies of tonight's roots
    file_counts: dict[str, int] = field(default_factory=dict)  # new, changed, unchanged, gone, outside
    merged: dict[str, str] = field(default_factory=dict)  # retired study key -> the study with its files
    output_counts: dict[str, Any] = field(default_factory=dict)  # the whole output file
    views: int = 0  # views prepared and scored by this run
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: str | None = None  # the signal's name when stopped early
    stopped: str | None = None  # what the stop left: after how many studies, and that a rerun resumes
    engine: str = "local"
    cluster: dict[str, Any] = field(default_factory=dict)  # engine ray: nodes, actors, GPUs (had and used)

    @property
    def views_per_second(self) -> float:
        scoring = self.timings.get("scoring_s", 0.0)
        return self.views / scoring if scoring > 0 else 0.0

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + signal.Signals[self.interrupted].value
        return EXIT_INCOMPLETE if self.counts.get(STUDY_FAILED) or self.counts.get(STUDY_PARTIAL) else EXIT_OK


def score(paths: str | os.PathLike | Iterable[str | os.PathLike], *, out: str | os.PathLike,
          models: str | os.PathLike | Ensemble, options: ScoreOptions | None = None,
          **option_values: Any) -> ScoreSummary:
    """Score every study under `paths` (one path or several) and write `out` (scores.parquet); see
    ScoreOptions for the options, given either as `options=` or as keywords (`views_out=`, `threshold=` ...).

    Raises ScoreUsageError before any work when an option, a path or the bundle cannot work. Call it
    under `if __name__ == "__main__":` in a script: worker processes import the script again.
    """
    if multiprocessing.parent_process() is not None and getattr(sys.modules.get("__main__"), "__name__", "") \
            == "__mp_main__":  # a worker importing the caller's script, which calls score() unguarded
        raise RuntimeError(SPAWN_GUARD)
    options, paths, out = _arguments(paths, out, models, options, option_values)
    _check_paths(paths, out, options.views_out, options.report_out)
    options = replace(options, own_files=_own_files(out, options))
    _check_sr_out(options.sr_out)
    _check_options(options)
    lock = OutputLock(out)
    try:
        lock.acquire()  # before loading models: a second run on the same output stops at once
    except OutputLocked as exc:
        raise ScoreUsageError(str(exc)) from None
    try:
        ensemble = _ensemble(models, options)
        executor = make_executor(options.engine)
        with executor.session(options):
            return _run(executor, paths, out, ensemble, _rules(ensemble, options), options)
    finally:
        lock.release()


def _run(executor: Executor, paths: list[Path], out: Path, ensemble: Ensemble, rules: Rules,
         options: ScoreOptions) -> ScoreSummary:
    summary = ScoreSummary(out, options.views_out, ensemble.runtime_reason, options.report_out,
                           engine=options.engine)
    started = time.monotonic()
    catalog = executor.discover(paths, options)
    summary.files = len(catalog)
    summary.timings["discovery_s"] = round(time.monotonic() - started, 3)

    seen_at = _now_ms()
    members = tuple(ensemble.member_names)
    store = ResultStore(out, _metadata(paths, ensemble, rules, options), views_out=options.views_out,
                        flush_every=options.flush_every)
    stored = store.load()
    bundles = {**stored.bundles, ensemble.bundle.id: rules}
    _warn_other_bundles(stored, ensemble.bundle.id, options)
    plan = plan_night(catalog, stored, [str(p) for p in paths], ensemble.bundle.id, options.study_key, seen_at,
                      options.rescore, options.view_filter)
    summary.file_counts = {k: v for k, v in plan.counts.items() if not k.startswith("studies")}
    summary.studies = plan.counts["studies_in_scope"]
    to_score = plan.counts["studies_to_score"]
    summary.kept = summary.studies - to_score
    log.info("%d files (%s); %d studies, %d to score", summary.files,
             ", ".join(f"{n} {what}" for what, n in summary.file_counts.items()), summary.studies, to_score)

    progress = Progress(to_score, quiet=not options.progress)

    def sink(results) -> None:
        if not results:
            return
        store.append(scored_rows(results, members, ensemble.bundle.id, seen_at))
        summary.scored += len(results)
        progress.update(len(results), sum(len(r.views) for r in results))

    # Signals stop the scheduling (no new study opened); one that arrives later, while the results are
    # written, waits for the write: the handler stays installed until the outputs are complete.
    with _stop_on_signals() as stop:
        try:
            jobs = islice(plan.jobs(), options.max_studies)
            times, summary.cluster = executor.score(jobs, ensemble, options, sink, stop.is_set)
            summary.interrupted = stop.signal_name
        finally:
            progress.close()
        summary.timings["scoring_s"] = round(progress.elapsed, 3)
        summary.views = times.views
        if summary.interrupted or summary.scored < to_score:
            cause = f"by {summary.interrupted}" if summary.interrupted else "at --max-studies"
            summary.stopped = (f"stopped {cause} after {summary.scored} of {to_score} studies to score; "
                               "the next run with the same --out scores the rest")
            log.warning("%s", summary.stopped)
        _write_outputs(store, plan, bundles, options, summary, times)
    summary.timings["wall_s"] = round(time.monotonic() - started, 3)
    if options.report_out is not None:
        from mammo_batch.engine.report import write_report  # plots need the report extra: loaded on demand

        write_report(out, options.report_out, views_path=store.views_store)
    if options.sr_out is not None:
        from mammo_batch.engine.pacs.sr import write_srs  # highdicom: the pacs extra, loaded on demand

        write_srs(out, store.views_store, options.sr_out, workers=options.workers)
    return summary


def _write_outputs(store: ResultStore, plan: NightPlan, bundles: dict[str, Rules], options: ScoreOptions,
                   summary: ScoreSummary, times: StageTimes) -> None:
    """Merge tonight's rows into the state, derive views and studies, write everything."""
    write_started = time.monotonic()
    config = scoring_config(options.study_key, options.view_filter)
    closed = close_night(plan, store.written, bundles, config, __version__)
    summary.merged = closed.merged
    for old, new in sorted(closed.merged.items()):
        log.info("study %s merged into %s (its files now belong there)", old, new)
    in_scope = pc.is_in(closed.scores["study_key"], value_set=plan.rows.filter(plan.rows["found"])["study_key"])
    summary.counts = _value_counts(closed.scores.filter(in_scope)["status"])
    summary.output_counts = {"studies": closed.scores.num_rows, "status": _value_counts(closed.scores["status"]),
                             "views": closed.views.num_rows, "not_seen": closed.not_seen,
                             "merged": len(closed.merged)}
    summary.timings.update(prepare_s=round(times.prepare_s, 3), model_s=round(times.model_s, 3))
    store.finalize(closed.rows, closed.views, closed.scores, bundles, metadata={
        "timings": summary.timings,
        "counts": {"studies": summary.studies, "scored": summary.scored, "unchanged": summary.kept,
                   "files": summary.files, "views_scored": summary.views, **summary.file_counts,
                   **summary.counts},
        "output_counts": summary.output_counts,
        "interrupted": summary.interrupted, "stopped": summary.stopped, "finished_at": _now_ms().isoformat(),
        "merged": summary.merged, "engine": {"name": summary.engine, **summary.cluster},
    })
    summary.timings["write_s"] = round(time.monotonic() - write_started, 3)


def _warn_other_bundles(stored, bundle_id: str, options: ScoreOptions) -> None:
    """An explicit threshold applies to tonight's bundle only: say how many studies keep another's."""
    if options.threshold is None or stored.scores.num_rows == 0:
        return
    others = int(pc.sum(pc.not_equal(stored.scores["bundle_id"], bundle_id)).as_py() or 0)
    if others:
        log.warning("--threshold applies to studies scored by this bundle; %d studies scored by other bundles "
                    "keep their own bundle's threshold", others)


def _value_counts(column) -> dict[str, int]:
    return {str(item["values"]): item["counts"] for item in pc.value_counts(column).to_pylist()}


def scoring_config(study_key: str, view_filter: Iterable[str] | None) -> str:
    """The grouping and view options of the run, recorded on each study row."""
    views = ",".join(sorted(view_filter)) if view_filter else "*"
    return f"study_key={study_key};view_filter={views}"


def _arguments(paths, out, models, options, option_values: dict[str, Any]) -> tuple[ScoreOptions, list[Path], Path]:
    """The arguments as the run uses them: paths as a list of Paths, every path option a Path; anything
    else is a ScoreUsageError (before the lock file is made)."""
    if options is not None and not isinstance(options, ScoreOptions):
        raise ScoreUsageError(f"options must be a ScoreOptions, not {type(options).__name__}")
    names = {f.name for f in fields(ScoreOptions)}
    unknown = sorted(set(option_values) - names)
    if unknown:
        raise ScoreUsageError(f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(names))}")
    options = replace(options or ScoreOptions(), **option_values)
    for name in ("views_out", "report_out"):
        value = getattr(options, name)
        if value is not None:
            options = replace(options, **{name: _path(value, name)})
    if options.view_filter is not None and not isinstance(options.view_filter, frozenset):
        if isinstance(options.view_filter, str):
            raise ScoreUsageError("view_filter must be a collection of view names, e.g. {'CC', 'MLO'}")
        options = replace(options, view_filter=frozenset(options.view_filter))
    if isinstance(paths, str | os.PathLike):
        paths = [paths]  # one path, not its characters
    elif not isinstance(paths, Iterable):
        raise ScoreUsageError(f"paths must be a path or a list of paths, not {type(paths).__name__}")
    if not isinstance(models, Ensemble):
        _path(models, "models")
    return options, [_path(p, "paths") for p in paths], _path(out, "out")


def _own_files(out: Path, options: ScoreOptions) -> tuple[Path, ...]:
    """Everything this run writes: skipped by discovery when an output sits inside an input folder."""
    own = [out, lock_path(out), journal_dir(out), Path(f"{journal_dir(out)}.removing"), views_store_path(out),
           state_path(out)]
    own += [p for p in (options.views_out, options.report_out, options.sr_out) if p is not None]
    return tuple(own)


def _path(value: object, name: str) -> Path:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ScoreUsageError(f"{name} must be a path (str or os.PathLike), not {value!r}")
    return Path(value)


def _check_paths(paths: list[Path], out: Path, views_out: Path | None, report_out: Path | None = None) -> None:
    if not paths:
        raise ScoreUsageError("no input paths given")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ScoreUsageError(f"input path(s) do not exist: {', '.join(missing)}")
    outputs = [("--out", out)] + [(option, path) for option, path in (("--views", views_out),
                                                                     ("--report", report_out)) if path is not None]
    for option, path in outputs:
        if path.is_dir():
            raise ScoreUsageError(f"{option} {path} is a directory; give a file name such as scores.parquet")
        parent = path.resolve().parent
        if not parent.is_dir():
            raise ScoreUsageError(f"{option} {path}: the directory {parent} does not exist")
        if not os.access(parent, os.W_OK):
            raise ScoreUsageError(f"{option} {path}: the directory {parent} is not writable")
    if views_out is not None and views_out.resolve() in (out.resolve(), views_store_path(out).resolve(),
                                                         state_path(out).resolve()):
        raise ScoreUsageError(f"--views {views_out} would overwrite the scores output or its store; "
                              "choose another file")


def _check_sr_out(sr_out: Path | None) -> None:
    if sr_out is None:
        return
    from mammo_batch.engine.pacs.extra import PacsExtraMissing, require_pacs_extra

    try:
        require_pacs_extra("--sr-out")
    except PacsExtraMissing as exc:
        raise ScoreUsageError(str(exc)) from None
    if sr_out.exists() and not sr_out.is_dir():
        raise ScoreUsageError(f"--sr-out {sr_out} is a file; give a folder for the SR files")
    parent = (sr_out if sr_out.is_dir() else sr_out.resolve().parent)
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ScoreUsageError(f"--sr-out {sr_out}: {parent} is not a writable folder")


def _check_options(options: ScoreOptions) -> None:
    if options.decoder not in DECODERS:
        raise ScoreUsageError(f"unknown decoder {options.decoder!r}: choose one of {', '.join(DECODERS)}")
    if options.runtime not in RUNTIMES:
        raise ScoreUsageError(f"unknown runtime {options.runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if options.breast_agg is not None and options.breast_agg not in BREAST_AGGS:
        raise ScoreUsageError(f"unknown breast aggregation {options.breast_agg!r}: one of {', '.join(BREAST_AGGS)}")
    if options.study_agg is not None and options.study_agg not in STUDY_AGGS:
        raise ScoreUsageError(f"unknown study aggregation {options.study_agg!r}: one of {', '.join(STUDY_AGGS)}")
    if options.threshold is not None and not _is_probability(options.threshold):
        raise ScoreUsageError(f"threshold must be a number from 0 to 1, got {options.threshold!r}")
    if options.study_key not in STUDY_KEYS:
        raise ScoreUsageError(f"unknown study key {options.study_key!r}: one of {', '.join(STUDY_KEYS)}")
    unknown = sorted(set(options.view_filter or ()) - VIEW_CODES)
    if unknown:
        raise ScoreUsageError(f"unknown view(s) in the view filter: {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(VIEW_CODES))}")
    if options.view_filter is not None and not options.view_filter:
        raise ScoreUsageError("the view filter is empty")
    for name in ("workers", "batch_size", "flush_every", "threads", "max_studies"):
        value = getattr(options, name)
        minimum = 0 if name == "workers" else 1
        if value is not None and (not isinstance(value, int) or value < minimum):
            raise ScoreUsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not options.time_limit_s > 0:
        raise ScoreUsageError(f"time_limit_s must be positive, got {options.time_limit_s!r}")
    _check_engine(options)


def _check_engine(options: ScoreOptions) -> None:
    if options.engine not in EXECUTORS:
        raise ScoreUsageError(f"unknown engine {options.engine!r}: choose one of {', '.join(EXECUTORS)}")
    refusal = make_executor(options.engine).refusal(options)
    if refusal:
        raise ScoreUsageError(refusal)


def _is_probability(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and 0.0 <= value <= 1.0


def _ensemble(models: str | os.PathLike | Ensemble, options: ScoreOptions) -> Ensemble:
    if isinstance(models, Ensemble):
        return models
    try:
        return Ensemble.load(models, options.runtime, options.threads)
    except (BundleError, RuntimeUnavailableError) as exc:
        raise ScoreUsageError(str(exc)) from None


def _rules(ensemble: Ensemble, options: ScoreOptions) -> Rules:
    bundle = ensemble.bundle
    return Rules(options.breast_agg or bundle.aggregation["breast"], options.study_agg or bundle.aggregation["study"],
                 bundle.threshold if options.threshold is None else float(options.threshold))


def _metadata(paths: list[Path], ensemble: Ensemble, rules: Rules, options: ScoreOptions) -> dict[str, Any]:
    return {"bundle_id": ensemble.bundle.id, "engine_version": __version__, "runtime": ensemble.runtime_reason,
            "started_at": _now_ms().isoformat(),
            "arguments": {"paths": [str(p) for p in paths], "breast_agg": rules.breast_agg,
                          "study_agg": rules.study_agg, "threshold": rules.threshold,
                          "study_key": options.study_key,
                          "view_filter": sorted(options.view_filter) if options.view_filter else None,
                          "rescore": options.rescore}}


class _Stop(threading.Event):
    signal_name: str | None = None


@contextmanager
def _stop_on_signals() -> Iterator[_Stop]:
    """SIGTERM and SIGINT set the event instead of killing the run (main thread only)."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, _frame) -> None:
        stop.signal_name = signal.Signals(signum).name
        log.warning("%s: finishing the studies in flight, then writing the results", stop.signal_name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _now_ms() -> datetime:
    """UTC now at the scores schema's millisecond resolution."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)

"""The numbers of the nightly report, read from the result files (never patient identifiers)."""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mammo_batch.engine.results.files import ResultsFileError, read_run_metadata, read_scores

# views.parquet columns the report uses when present (today's files have no vendor or timing column).
MANUFACTURER_COLUMN = "manufacturer"
VIEW_TIME_COLUMNS = ("seconds", "elapsed_s", "prepare_s")  # per-view wall time, first one found
UNKNOWN = "unknown"
THROUGHPUT_BINS = 30
SCORE_BINS = 20
MAX_LISTED = 200  # failed / slowest files listed in the page; the counts cover all
_PATH = re.compile(r"/[^\s;,()]+")  # an absolute path inside a detail text


class ReportError(ValueError):
    """The input files cannot be read as mammo-batch results."""


@dataclass
class ReportData:
    source: str
    run: dict[str, Any]  # when, how long, views/s, bundle, runtime, ...
    study_status: dict[str, int]
    view_status: dict[str, int] = field(default_factory=dict)  # empty without views.parquet
    reasons: dict[tuple[str, str], int] = field(default_factory=dict)  # (status, reason) -> files
    recall: dict[str, dict[str, float]] = field(default_factory=dict)  # vendor -> studies, recalled, rate
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # vendor -> study scores ("all" too)
    throughput: list[tuple[datetime, int, int]] = field(default_factory=list)  # bin start, studies, views
    throughput_note: str = ""
    failed_files: list[dict[str, str]] = field(default_factory=list)
    failed_total: int = 0
    failed_studies: list[dict[str, str]] = field(default_factory=list)
    slowest: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    drift: Any = None  # report.drift.Drift: tonight against the reference period (docs/pacs.md)


def load_report_data(scores_path: str | os.PathLike, views_path: str | os.PathLike | None = None,
                     redact: bool = False) -> ReportData:
    """Read the result files into the report's numbers; ReportError when they are not results.

    `redact`: study keys and paths are replaced by short hashes (a page to share outside the site)."""
    try:
        scores = read_scores(scores_path)
        metadata = read_run_metadata(scores_path)
    except (ResultsFileError, OSError) as error:
        raise ReportError(str(error)) from None
    views = _read_views(Path(views_path)) if views_path is not None else None
    data = ReportData(source=str(scores_path), run=_run_summary(scores, metadata),
                      study_status=_counts(scores["status"]))
    vendors = _study_vendors(scores, views, data.notes)
    _recall_and_scores(data, scores, vendors)
    _throughput(data, scores, metadata)
    _failed_studies(data, scores)
    if views is None:
        data.notes.append("No views.parquet given: file counts, reasons and failed files are not shown "
                          "(pass --views).")
    else:
        _view_counts(data, views)
    if redact:
        _redact(data)
    return data


def _redact(data: ReportData) -> None:
    """Replace study keys and paths (which may carry accession numbers or names) with short hashes."""
    for study in data.failed_studies:
        study["study_key"], study["error"] = pseudonym(study["study_key"]), _without_paths(study["error"])
    for row in [*data.failed_files, *data.slowest]:
        row["path"] = pseudonym(row["path"])
        if "detail" in row:
            row["detail"] = _without_paths(row["detail"])
    data.source = pseudonym(data.source)
    data.notes.append("Redacted: study keys and paths are shown as hashes (the same value, the same hash).")


def pseudonym(value: str) -> str:
    return "#" + hashlib.sha256(f"mammo-batch report:{value}".encode()).hexdigest()[:10]


def _without_paths(text: str) -> str:
    return _PATH.sub(lambda match: pseudonym(match.group(0)), text)


def _read_views(path: Path) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        raise ReportError(f"cannot read {path} as a Parquet file: {error}") from None
    missing = {"path", "study_key", "status", "reason", "detail"} - set(table.column_names)
    if missing:
        raise ReportError(f"{path} is not a views.parquet file: no column(s) {', '.join(sorted(missing))}")
    return table


def _counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = {str(item["values"]): item["counts"] for item in pc.value_counts(column).to_pylist()}
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _run_summary(scores: pa.Table, metadata: dict) -> dict[str, Any]:
    timings = metadata.get("timings", {})
    counts = metadata.get("counts", {})
    seconds = sum(float(timings.get(k, 0.0)) for k in ("discovery_s", "scoring_s")) or None
    scored_views = counts.get("views_scored")
    if scored_views is None:  # results written before the count was recorded
        scored_views = int(pc.sum(this_run(scores, metadata)["n_views"]).as_py() or 0)
    scoring_s = timings.get("scoring_s")
    return {
        "finished": metadata.get("finished_at"),
        "started": metadata.get("started_at"),
        "latest_scored_at": _latest(scores),
        "duration_s": seconds,
        "discovery_s": timings.get("discovery_s"),
        "scoring_s": scoring_s,
        "views_scored_this_run": scored_views,
        "views_per_s": scored_views / scoring_s if scoring_s else None,
        "stopped": metadata.get("stopped"),
        "studies_in_file": scores.num_rows,
        "studies_scored_this_run": counts.get("scored"),
        "studies_unchanged": counts.get("unchanged"),
        "files_seen": counts.get("files"),
        "bundle": metadata.get("bundle_id"),
        "runtime": metadata.get("runtime"),
        "engine_version": metadata.get("engine_version"),
        "threshold": metadata.get("arguments", {}).get("threshold"),
        "aggregation": _aggregation(metadata.get("arguments", {})),
    }


def _aggregation(arguments: dict) -> str | None:
    if "breast_agg" not in arguments:
        return None
    return f"breast {arguments['breast_agg']}, study {arguments.get('study_agg')}"


def _latest(scores: pa.Table) -> str | None:
    latest = pc.max(scores["scored_at"]).as_py() if scores.num_rows else None
    return latest.isoformat(timespec="seconds") if latest else None


def this_run(scores: pa.Table, metadata: dict) -> pa.Table:
    """The rows the last run wrote: scored_at within its duration before the latest scored_at.

    (A rerun keeps older rows of unchanged studies, with their older scored_at.)
    """
    if not scores.num_rows:
        return scores
    end = pc.max(scores["scored_at"]).as_py()
    timings = metadata.get("timings", {})
    seconds = sum(float(timings.get(k, 0.0)) for k in ("discovery_s", "scoring_s"))
    start = pa.scalar(end - timedelta(seconds=seconds + 1.0), scores.schema.field("scored_at").type)
    return scores.filter(pc.greater_equal(scores["scored_at"], start))


def _study_vendors(scores: pa.Table, views: pa.Table | None, notes: list[str]) -> list[str]:
    """Per scores row: the most common manufacturer among its files, or "unknown"."""
    if views is None or MANUFACTURER_COLUMN not in views.column_names:
        notes.append("Vendor unknown: views.parquet has no 'manufacturer' column; scores are shown "
                     "overall only.")
        return [UNKNOWN] * scores.num_rows
    per_study: dict[str, Counter] = {}
    for key, vendor in zip(views["study_key"].to_pylist(), views[MANUFACTURER_COLUMN].to_pylist(),
                           strict=True):
        per_study.setdefault(key, Counter())[(vendor or "").strip() or UNKNOWN] += 1
    return [per_study[key].most_common(1)[0][0] if key in per_study else UNKNOWN
            for key in scores["study_key"].to_pylist()]


def _recall_and_scores(data: ReportData, scores: pa.Table, vendors: list[str]) -> None:
    values = scores["score"].to_numpy(zero_copy_only=False).astype(float)
    recalled = np.array([bool(r) for r in scores["recall"].to_pylist()])
    has_score = ~np.isnan(values)
    vendor_array = np.array(vendors, dtype=object)
    groups = ["all", *sorted(set(vendors))] if len(set(vendors)) > 1 else ["all"]
    for group in groups:
        chosen = has_score & ((vendor_array == group) if group != "all" else True)
        n = int(chosen.sum())
        n_recalled = int((recalled & chosen).sum())
        data.recall[group] = {"studies": n, "recalled": n_recalled,
                              "rate": n_recalled / n if n else float("nan")}
        data.scores[group] = values[chosen]


def _throughput(data: ReportData, scores: pa.Table, metadata: dict) -> None:
    """Studies and views per time bin, from the scored_at of the rows the last run wrote."""
    if not scores.num_rows:
        data.throughput_note = "No studies in the file."
        return
    rows = this_run(scores, metadata)
    run = list(zip(rows["scored_at"].to_pylist(), rows["n_views"].to_pylist(), strict=True))
    distinct = {t for t, _ in run}
    if len(distinct) < 2:
        data.throughput_note = ("The rows of this run carry one scored_at time, so there is no curve; "
                                f"{sum(n or 0 for _, n in run)} views in {len(run)} studies.")
        return
    first, end = min(distinct), max(distinct)
    width = max((end - first).total_seconds() / THROUGHPUT_BINS, 1.0)
    bins: dict[int, list[int]] = {}
    for t, n in run:
        index = min(int((t - first).total_seconds() // width), THROUGHPUT_BINS - 1)
        counts = bins.setdefault(index, [0, 0])
        counts[0] += 1
        counts[1] += n or 0
    data.throughput = [(first + timedelta(seconds=i * width), *bins.get(i, [0, 0]))
                       for i in range(max(bins) + 1)]
    data.run["throughput_bin_s"] = width


def _failed_studies(data: ReportData, scores: pa.Table) -> None:
    bad = scores.filter(pc.is_in(scores["status"], value_set=pa.array(["failed", "partial"])))
    data.failed_studies = [{"study_key": r["study_key"], "status": r["status"], "error": r["error"] or ""}
                           for r in bad.select(["study_key", "status", "error"]).to_pylist()[:MAX_LISTED]]


def _view_counts(data: ReportData, views: pa.Table) -> None:
    data.view_status = _counts(views["status"])
    not_ok = views.filter(pc.not_equal(views["status"], "ok"))
    grouped = not_ok.group_by(["status", "reason"]).aggregate([("path", "count")])
    data.reasons = dict(sorted(
        (((s, r or ""), n) for s, r, n in zip(grouped["status"].to_pylist(), grouped["reason"].to_pylist(),
                                               grouped["path_count"].to_pylist(), strict=True)),
        key=lambda kv: (kv[0][0], -kv[1])))
    failed = views.filter(pc.equal(views["status"], "failed")).select(["path", "reason", "detail"])
    data.failed_total = failed.num_rows
    data.failed_files = [{k: v or "" for k, v in row.items()}
                         for row in failed.slice(0, MAX_LISTED).to_pylist()]
    _slowest(data, views)


def _slowest(data: ReportData, views: pa.Table) -> None:
    column = next((c for c in VIEW_TIME_COLUMNS if c in views.column_names), None)
    if column is None:
        data.notes.append("Slowest files: not shown, views.parquet has no per-view time column "
                          f"(one of {', '.join(VIEW_TIME_COLUMNS)}).")
        return
    timed = views.filter(pc.is_valid(views[column])).sort_by([(column, "descending")])
    data.slowest = [{"path": r["path"], "seconds": float(r[column]), "status": r["status"]}
                    for r in timed.select(["path", column, "status"]).slice(0, 20).to_pylist()]

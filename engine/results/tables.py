"""Completed studies -> the Arrow tables of views.parquet and scores.parquet, and re-derivation.

Rows are assembled per view (metadata only); the numbers (ensemble mean, breast and study scores,
recall) are computed with pyarrow.compute over many studies at once. `rederive` recomputes every
study's numbers from stored view probabilities, which is how a rerun with other aggregation rules
or another threshold updates rows without running a model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.record import STATUS_FAILED, STATUS_OK, ViewRecord
from mammo_batch.engine.results.aggregate import aggregate_studies, ensemble_mean, recall
from mammo_batch.engine.results.outcome import StudyResult, ViewResult
from mammo_batch.engine.results.schema import (
    LAST_SEEN,
    LEFT_SCORE,
    PROB,
    RECALL,
    RIGHT_SCORE,
    SCORE,
    SCORES_SCHEMA,
    STATUS,
    STUDY_FAILED,
    STUDY_KEY,
    STUDY_OK,
    STUDY_PARTIAL,
    STUDY_SKIPPED,
    views_schema,
)

UNASSIGNED = ""  # the study_key of view rows for files that belong to no study


@dataclass(frozen=True)
class Rules:
    """How view probabilities become study rows: re-derivable without running a model."""

    breast_agg: str
    study_agg: str
    threshold: float


@dataclass(frozen=True)
class RunInfo:
    """What every row of one run shares."""

    members: tuple[str, ...]
    bundle_id: str
    engine_version: str
    rules: Rules
    config: str  # what besides the bundle decides the views and their probabilities
    scored_at: datetime


def views_table(results: list[StudyResult], orphans: list[ViewRecord], info: RunInfo) -> pa.Table:
    """One row per file: every file of each study, plus files that belong to no study."""
    rows = []
    for result in results:
        for position, record in enumerate(result.study.views):
            rows.append(_view_row(record, result.study.key, result.views.get(position), info))
    rows += [_view_row(record, UNASSIGNED, None, info) for record in orphans]
    table = pa.Table.from_pylist(rows, schema=views_schema(list(info.members)))
    if table.num_rows == 0:
        return table
    member_columns = {m: table[f"prob_{m}"] for m in info.members}
    prob = pc.cast(ensemble_mean(member_columns), pa.float32())
    return table.set_column(table.schema.get_field_index(PROB), PROB, prob)


def scores_table(results: list[StudyResult], views: pa.Table, info: RunInfo) -> pa.Table:
    """One row per study, aggregated from the scored views of `views`."""
    if not results:
        return SCORES_SCHEMA.empty_table()
    meta = pa.Table.from_pylist([_study_row(r, info) for r in results], schema=SCORES_SCHEMA)
    return rederive(meta, views, info.rules)


def rederive(scores: pa.Table, views: pa.Table, rules: Rules) -> pa.Table:
    """`scores` with score, left/right score and recall recomputed from the ok rows of `views`."""
    scored = views.filter(pc.and_(pc.equal(views[STATUS], STATUS_OK), pc.not_equal(views[STUDY_KEY], UNASSIGNED)))
    aggregated = aggregate_studies(scored.select([STUDY_KEY, "laterality", PROB]), rules.breast_agg, rules.study_agg)
    numbers = aggregated.select([STUDY_KEY, SCORE, LEFT_SCORE, RIGHT_SCORE])
    kept = scores.drop_columns([SCORE, LEFT_SCORE, RIGHT_SCORE, RECALL])
    joined = kept.join(numbers, STUDY_KEY, join_type="left outer")
    # Only ok and partial studies carry numbers (a failed study's stale views must not score it).
    carries = pc.is_in(joined[STATUS], value_set=pa.array([STUDY_OK, STUDY_PARTIAL]))
    for column in (SCORE, LEFT_SCORE, RIGHT_SCORE):
        joined = joined.set_column(joined.schema.get_field_index(column), column,
                                   pc.if_else(carries, joined[column], pa.scalar(None, pa.float64())))
    joined = joined.append_column(RECALL, recall(joined[SCORE], rules.threshold))
    return joined.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA).sort_by(STUDY_KEY)


def _view_row(record: ViewRecord, study_key: str, outcome: ViewResult | None, info: RunInfo) -> dict:
    row = {
        "path": record.path, "study_key": study_key, "sop_instance_uid": record.sop_instance_uid,
        "patient_id": record.patient_id, "accession_number": record.accession_number,
        "study_instance_uid": record.study_instance_uid, "laterality": record.laterality,
        "view": record.view, "manufacturer": record.manufacturer, "status": record.status,
        "reason": record.reason, "detail": record.detail,
        "prepare_s": outcome.seconds if outcome is not None else None,
    }
    if outcome is not None and outcome.failed:
        row.update(status=STATUS_FAILED, reason=outcome.reason, detail=outcome.error)
    for member in info.members:
        ok = outcome is not None and not outcome.failed
        row[f"prob_{member}"] = outcome.member_probs[member] if ok else None
    return row


def _study_row(result: StudyResult, info: RunInfo) -> dict:
    """A study's identifiers, counts and status; its numbers come from `rederive`.

    Every file whose header names the study belongs to it: one that failed at discovery (e.g. a
    truncated file) counts against it like one that failed to decode.
    """
    study = result.study
    failed = _failures(result)
    scored = sum(1 for v in result.views.values() if not v.failed)
    return {
        "study_key": study.key,
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "study_instance_uid": study.study_instance_uid,
        "study_date": study.study_date,
        "n_views": scored,
        "n_views_skipped": len(study.views) - scored,
        "status": study_status(scored, len(failed)),
        "error": _error(result, scored, failed),
        "bundle_id": info.bundle_id,
        "engine_version": info.engine_version,
        "scored_at": info.scored_at,
        "fingerprint": result.fingerprint,
        "config": info.config,
        LAST_SEEN: info.scored_at,
    }


def study_status(scored: int, failed: int) -> str:
    """ok: every view that should score did; partial: some failed; failed: none scored; skipped: none to score."""
    if scored == 0:
        return STUDY_FAILED if failed else STUDY_SKIPPED
    return STUDY_PARTIAL if failed else STUDY_OK


def _failures(result: StudyResult) -> list[tuple[str, str]]:
    """(reason, detail) of each file of the study that should have scored and did not."""
    failed = [(r.reason, r.detail) for r in result.study.views if r.status == STATUS_FAILED]
    return failed + [(v.reason, v.error) for v in result.views.values() if v.failed]


def _error(result: StudyResult, scored: int, failed: list[tuple[str, str]]) -> str:
    if failed:
        reason, detail = failed[0]
        return f"{len(failed)} of {scored + len(failed)} views failed; first: {reason}: {detail}"[:500]
    if not scored:
        reasons = Counter(v.reason for v in result.study.views)
        return "no view to score: " + ", ".join(f"{r} x{n}" for r, n in reasons.most_common())
    return result.study.detail or result.study.reason  # e.g. split from another patient's files

"""Completed studies -> the Arrow tables written to views.parquet and scores.parquet.

Rows are assembled per view (metadata only); the numbers (ensemble mean, breast and study
scores, recall) are computed with pyarrow.compute over many studies at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.record import STATUS_FAILED, STATUS_OK, ViewRecord
from mammo_batch.engine.results.aggregate import aggregate_studies, ensemble_mean, recall
from mammo_batch.engine.results.schema import SCORES_SCHEMA, views_schema
from mammo_batch.engine.schedule.collector import StudyResult


@dataclass(frozen=True)
class RunInfo:
    """What every row of one run shares."""

    members: tuple[str, ...]
    bundle_id: str
    engine_version: str
    threshold: float
    breast_agg: str
    study_agg: str
    scored_at: datetime


def views_table(results: list[StudyResult], orphans: list[ViewRecord], info: RunInfo) -> pa.Table:
    """One row per file: every file of each study, plus files that belong to no study."""
    rows = []
    for result in results:
        outcome = {id(v.record): v for v in result.views}
        for record in result.study.views:
            rows.append(_view_row(record, result.study.key, outcome.get(id(record)), info))
    rows += [_view_row(record, "", None, info) for record in orphans]
    table = pa.Table.from_pylist(rows, schema=views_schema(list(info.members)))
    if table.num_rows == 0:
        return table
    member_columns = {m: table[f"prob_{m}"] for m in info.members}
    prob = pc.cast(ensemble_mean(member_columns), pa.float32())
    return table.set_column(table.schema.get_field_index("prob"), "prob", prob)


def scores_table(results: list[StudyResult], views: pa.Table, info: RunInfo) -> pa.Table:
    """One row per study, aggregated from the scored views of `views`."""
    if not results:
        return SCORES_SCHEMA.empty_table()
    scored = views.filter(pc.equal(views["status"], STATUS_OK))
    scored = scored.filter(pc.not_equal(scored["study_key"], ""))
    aggregated = aggregate_studies(scored.select(["study_key", "laterality", "prob"]),
                                   info.breast_agg, info.study_agg)
    meta = pa.Table.from_pylist([_study_row(r, info) for r in results])
    joined = meta.join(aggregated, "study_key", join_type="left outer")
    joined = joined.append_column("recall", recall(joined["score"], info.threshold))
    joined = joined.drop_columns(["n_views_scored"])
    return joined.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA)


def _view_row(record: ViewRecord, study_key: str, outcome, info: RunInfo) -> dict:
    row = {
        "path": record.path, "study_key": study_key, "sop_instance_uid": record.sop_instance_uid,
        "patient_id": record.patient_id, "accession_number": record.accession_number,
        "study_instance_uid": record.study_instance_uid, "laterality": record.laterality,
        "view": record.view, "status": record.status, "reason": record.reason,
        "detail": record.detail,
    }
    if outcome is not None and outcome.failed:
        row.update(status=STATUS_FAILED, reason="decode_error", detail=outcome.error)
    for member in info.members:
        ok = outcome is not None and not outcome.failed
        row[f"prob_{member}"] = outcome.member_probs[member] if ok else None
    return row


def _study_row(result: StudyResult, info: RunInfo) -> dict:
    study = result.study
    failed = [v for v in result.views if v.failed]
    scored = len(result.views) - len(failed)
    return {
        "study_key": study.key,
        "patient_id": study.patient_id,
        "accession_number": study.accession_number,
        "study_instance_uid": study.study_instance_uid,
        "study_date": study.study_date,
        "n_views": scored,
        "n_views_skipped": len(study.views) - scored,
        "status": _status(len(result.views), scored),
        "error": _error(result, failed),
        "bundle_id": info.bundle_id,
        "engine_version": info.engine_version,
        "scored_at": info.scored_at,
        "fingerprint": result.fingerprint,
    }


def _status(scorable: int, scored: int) -> str:
    if scorable == 0:
        return "skipped"
    if scored == 0:
        return "failed"
    return "partial" if scored < scorable else "ok"


def _error(result: StudyResult, failed) -> str:
    if failed:
        return f"{len(failed)} of {len(result.views)} views failed; first: {failed[0].error}"[:500]
    if not result.views:
        reasons = Counter(v.reason for v in result.study.views)
        return "no view to score: " + ", ".join(f"{r} x{n}" for r, n in reasons.most_common())
    return ""

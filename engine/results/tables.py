"""Scored studies -> file rows (results/state.py), and the rules that turn rows into study scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.record import STATUS_FAILED, STATUS_OK
from mammo_batch.engine.results.aggregate import ensemble_mean
from mammo_batch.engine.results.outcome import StudyResult, ViewResult
from mammo_batch.engine.results.schema import BUNDLE_ID, LAST_SEEN, PREPARE_S, PROB, SCORED_AT, STUDY_KEY
from mammo_batch.engine.results.state import SCORABLE, state_schema


@dataclass(frozen=True)
class Rules:
    """How view probabilities become study rows: re-derivable without running a model."""

    breast_agg: str
    study_agg: str
    threshold: float

    def to_list(self) -> list:
        return [self.breast_agg, self.study_agg, self.threshold]


def scored_rows(results: list[StudyResult], members: tuple[str, ...], bundle_id: str, when: datetime) -> pa.Table:
    """The file rows of scored studies: each view's record with its probabilities or its failure."""
    schema = state_schema([f"prob_{m}" for m in members])
    rows = [_row(result.study.views[position], outcome, result.study.key, members, bundle_id, when)
            for result in results for position, outcome in sorted(result.views.items())]
    table = pa.Table.from_pylist(rows, schema=schema)
    if table.num_rows == 0:
        return table
    prob = ensemble_mean({m: table[f"prob_{m}"] for m in members})
    prob = pc.if_else(pc.equal(table["status"], STATUS_OK), prob, pa.scalar(None, pa.float32()))
    return table.set_column(table.schema.get_field_index(PROB), PROB, prob)


def _row(record, outcome: ViewResult, study_key: str, members: tuple[str, ...], bundle_id: str,
         when: datetime) -> dict:
    row = record.to_dict()
    row.update({STUDY_KEY: study_key, SCORABLE: True, BUNDLE_ID: bundle_id, SCORED_AT: when, LAST_SEEN: when,
                PREPARE_S: outcome.seconds, "status": STATUS_OK, "reason": record.reason, "detail": record.detail})
    if outcome.failed:
        row.update(status=STATUS_FAILED, reason=outcome.reason, detail=outcome.error)
    for member in members:
        row[f"prob_{member}"] = None if outcome.failed else outcome.member_probs[member]
    return row

"""One night of the backlog: tonight's catalog + the stored state -> files to score -> the new state.

    plan_night   reconcile (results/state.py), derive every file's study with the grouping rules,
                 apply the bundle rule, and yield the files to score lazily, one study at a time
    close_night  merge the rows scored tonight, derive views and studies, and decide what happens to
                 study rows of earlier runs. A stopped run applies only what it completed: a planned
                 file it did not score keeps its earlier row (or stays out of the state if it had
                 none), so the next run finds it new or changed and scores it.

The bundle rule: a study is scored by one bundle. When any of its files is in tonight's scope and
another bundle scored some of them, all of its files that still exist are rescored by tonight's.
Studies wholly outside tonight's roots keep their bundle and that bundle's rules.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.catalog import SCHEMA as RECORD_SCHEMA
from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.policy import apply_policy
from mammo_batch.engine.dicom.record import STATUS_OK, ViewRecord
from mammo_batch.engine.results.derive import derived_scores, derived_views
from mammo_batch.engine.results.schema import BUNDLE_ID, LAST_SEEN, PATH, PROB, SCORED_AT, STATUS, STUDY_KEY
from mammo_batch.engine.results.state import (
    FOUND,
    SCORABLE,
    TO_SCORE,
    Night,
    align,
    catalog_rows,
    reconcile,
    union_schema,
)
from mammo_batch.engine.results.store import Stored, latest_per_path
from mammo_batch.engine.results.tables import Rules
from mammo_batch.engine.studies import Study, plan_studies

_HELPERS = [TO_SCORE, FOUND]


@dataclass
class NightPlan:
    rows: pa.Table  # every current file row, with its study_key and the helper columns
    counts: dict[str, int]  # files: new, changed, unchanged, gone, outside; studies: in_scope, to_score
    stored: Stored
    mode: str  # --study-key

    def jobs(self) -> Iterator[Study]:
        """The files to score, one Study (its key, only those files) at a time, by study key."""
        planned = self.rows.filter(self.rows[TO_SCORE]).sort_by([(STUDY_KEY, "ascending"), (PATH, "ascending")])
        for batch in _study_batches(planned):
            views = [_job_record(row) for row in batch.select(RECORD_SCHEMA.names).to_pylist()]
            yield Study(batch[STUDY_KEY][0].as_py(), views)


def plan_night(catalog: HeaderCatalog, stored: Stored, roots: Sequence[str], bundle_id: str, study_key_mode: str,
               seen_at: datetime, rescore: bool = False, views: Collection[str] | None = None) -> NightPlan:
    found = pa.Table.from_batches(list(catalog.batches()), schema=RECORD_SCHEMA)
    found = found.append_column(SCORABLE, pc.equal(found[STATUS], STATUS_OK))
    night: Night = reconcile(found, stored.rows, roots, bundle_id, seen_at, rescore)
    rows = with_study_keys(night.rows, study_key_mode)
    rows, gone = _rescore_other_bundles(rows, bundle_id, views, seen_at, study_key_mode)
    counts = dict(night.counts)
    counts["gone"] += gone
    touched = rows.filter(rows[FOUND])[STUDY_KEY]
    counts["studies_in_scope"] = len(pc.unique(touched.filter(pc.not_equal(touched, ""))))
    counts["studies_to_score"] = len(pc.unique(rows.filter(rows[TO_SCORE])[STUDY_KEY]))
    return NightPlan(rows, counts, stored, study_key_mode)


def with_study_keys(rows: pa.Table, mode: str) -> pa.Table:
    """`rows` with the study key of each file, derived with the grouping rules over all of them."""
    keys = plan_studies(HeaderCatalog.from_table(rows), mode).row_keys()
    return rows.set_column(rows.schema.get_field_index(STUDY_KEY), STUDY_KEY, keys)


@dataclass
class Closed:
    rows: pa.Table  # the new state
    views: pa.Table
    scores: pa.Table
    merged: dict[str, str] = field(default_factory=dict)  # retired study key -> the study that took its files
    not_seen: int = 0  # study rows kept from earlier runs with no file left


def close_night(plan: NightPlan, scored: list[pa.Table], bundles: dict[str, Rules], config: str,
                engine_version: str) -> Closed:
    """The new state and outputs after tonight's scoring (`scored`: the file rows it produced)."""
    done = latest_per_path(scored)
    rows = plan.rows.filter(pc.invert(pc.is_in(plan.rows[PATH], value_set=done[PATH])))
    left = pc.fill_null(rows[TO_SCORE], False)
    earlier = _earlier_rows(plan.stored.rows, rows.filter(left)[PATH])
    rows = rows.filter(pc.invert(left)).drop_columns(_HELPERS)
    schema = union_schema(rows, done, earlier)
    rows = pa.concat_tables([align(rows, schema), align(earlier, schema), align(done, schema)]).sort_by(PATH)
    if earlier.num_rows or pc.any(left).as_py():  # rows of other nights came back: group again
        rows = with_study_keys(rows, plan.mode)
    views = derived_views(rows)
    scores = derived_scores(views, rows, bundles, config, engine_version)
    scores, merged, not_seen = _with_earlier_studies(scores, plan.stored, rows)
    return Closed(rows, views, scores, merged, not_seen)


def _rescore_other_bundles(rows: pa.Table, bundle_id: str, views: Collection[str] | None, seen_at: datetime,
                           mode: str) -> tuple[pa.Table, int]:
    """Mark every scorable file of a study touched tonight that another bundle scored (the bundle rule).
    Files outside the scope are read again by their stored path, header and view policy included (the
    file may have changed since it was stored); those that no longer exist are gone."""
    other = pc.and_(pc.is_valid(rows[PROB]), pc.not_equal(rows[BUNDLE_ID], bundle_id))
    touched = pc.unique(rows.filter(rows[FOUND])[STUDY_KEY])
    mixed = pc.unique(rows.filter(pc.fill_null(other, False))[STUDY_KEY])
    studies = pc.filter(touched, pc.is_in(touched, value_set=mixed))
    if len(studies) == 0:
        return rows, 0
    hit = pc.and_(pc.is_in(rows[STUDY_KEY], value_set=studies), pc.not_equal(rows[STUDY_KEY], ""))
    outside = rows.filter(pc.and_(hit, pc.invert(rows[FOUND])))[PATH].to_pylist()
    reread = [apply_policy(read_view(path), views) for path in outside if os.path.exists(path)]
    rows = rows.filter(pc.invert(pc.is_in(rows[PATH], value_set=pa.array(outside, pa.string()))))
    if reread:
        fresh = pa.Table.from_pylist([r.to_dict() for r in reread], schema=RECORD_SCHEMA)
        fresh = catalog_rows(fresh)
        fresh = _set(fresh, BUNDLE_ID, pa.array([bundle_id] * fresh.num_rows, pa.string()))
        for name in (SCORED_AT, LAST_SEEN):
            fresh = _set(fresh, name, pa.array([seen_at] * fresh.num_rows, fresh.schema.field(name).type))
        fresh = fresh.append_column(TO_SCORE, fresh[SCORABLE]).append_column(
            FOUND, pa.array([False] * fresh.num_rows))
        schema = union_schema(rows)
        rows = pa.concat_tables([rows, align(fresh, pa.schema([*schema, pa.field(TO_SCORE, pa.bool_()),
                                                                 pa.field(FOUND, pa.bool_())]))])
    rows = with_study_keys(rows, mode)  # a file read again may have another header now
    hit = pc.and_(pc.is_in(rows[STUDY_KEY], value_set=studies), pc.not_equal(rows[STUDY_KEY], ""))
    rescore = pc.or_(rows[TO_SCORE], pc.and_(hit, rows[SCORABLE]))
    return rows.set_column(rows.schema.get_field_index(TO_SCORE), TO_SCORE, rescore), len(outside) - len(reread)


def _set(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _earlier_rows(stored: pa.Table, paths: pa.ChunkedArray) -> pa.Table:
    """The stored rows of `paths` (files a stop left unscored); paths never stored have none."""
    return stored.filter(pc.is_in(stored[PATH], value_set=paths.combine_chunks()))


def _with_earlier_studies(scores: pa.Table, stored: Stored, rows: pa.Table) -> tuple[pa.Table, dict[str, str], int]:
    """Study rows of earlier runs whose key is not derived tonight: retired when their files now belong
    to another study ("merged into"), else kept as they were (no file left: `last_seen` says when)."""
    earlier = stored.scores.filter(pc.invert(pc.is_in(stored.scores[STUDY_KEY], value_set=scores[STUDY_KEY])))
    if earlier.num_rows == 0:
        return scores, {}, 0
    moved = stored.rows.select([PATH, STUDY_KEY]).rename_columns([PATH, "_old"]).join(
        rows.select([PATH, STUDY_KEY]), PATH, join_type="inner")
    moved = moved.filter(pc.and_(pc.is_in(moved["_old"], value_set=earlier[STUDY_KEY]),
                                 pc.not_equal(moved[STUDY_KEY], "")))
    pairs = zip(moved["_old"].to_pylist(), moved[STUDY_KEY].to_pylist(), strict=True)
    merged = dict(sorted(pairs, reverse=True))  # the smallest new key names where a key went
    kept = earlier.filter(pc.invert(pc.is_in(earlier[STUDY_KEY], value_set=pa.array(list(merged), pa.string()))))
    table = pa.concat_tables([scores, kept.select(scores.column_names).cast(scores.schema)]).sort_by(STUDY_KEY)
    return table, merged, kept.num_rows


def _study_batches(planned: pa.Table) -> Iterator[pa.Table]:
    """Consecutive rows of one study key (the table is sorted by key)."""
    if planned.num_rows == 0:
        return
    keys = planned[STUDY_KEY].combine_chunks().to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    for start, end in zip(starts, ends, strict=True):
        yield planned.slice(int(start), int(end - start))


def _job_record(row: dict) -> ViewRecord:
    """A file to score as the preparer takes it: scorable, its earlier outcome forgotten."""
    record = ViewRecord(**row)
    if record.reason != "header_warnings":
        record.reason, record.detail = "", ""
    record.status = STATUS_OK
    return record

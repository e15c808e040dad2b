"""The nightly state: one row per file (real path), the unit of truth across nights.

A file row is what discovery read of the file (its ViewRecord: identifiers, the view policy's
verdict, size and mtime_ns from the one stat taken at header read) and, once scored, its per-member
probabilities with the bundle that made them. Studies are never stored as truth: they are derived
from the file rows on every run (results/derive.py).

`reconcile` compares tonight's catalog with the stored rows. The scope of a run is its input roots:

    found tonight, no stored row ............................. new: score it
    found, size/mtime or bundle differ, or not scored before .. changed: score it
    found, same size, mtime and bundle, scored before ........ unchanged: keep its probabilities
    stored under tonight's roots, not found ................... gone: the row leaves the state
    stored outside tonight's roots ............................ outside: untouched, still in its study

Everything is Arrow joins and filters over whole tables: no Python object per stored file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.catalog import SCHEMA as RECORD_SCHEMA
from mammo_batch.engine.dicom.record import STATUS_OK
from mammo_batch.engine.results.schema import (
    BUNDLE_ID,
    LAST_SEEN,
    PATH,
    PREPARE_S,
    PROB,
    SCORED_AT,
    STATUS,
    STUDY_KEY,
    member_columns,
)

SCORABLE = "scorable"  # the file passed discovery and the view policy: a view to score
TO_SCORE = "to_score"  # helper column while planning: this run runs the models on the file
FOUND = "found"  # helper column while planning: tonight's discovery found the file
_TIMESTAMP = pa.timestamp("ms", tz="UTC")
# A file row: the ViewRecord as discovery read it (status/reason/detail are the file's own outcome,
# updated by scoring), then what the scoring of it left.
STATE_FIELDS = (
    *RECORD_SCHEMA,
    pa.field(STUDY_KEY, pa.string()),  # derived by the last run that wrote the row
    pa.field(SCORABLE, pa.bool_()),
    pa.field(BUNDLE_ID, pa.string()),
    pa.field(SCORED_AT, _TIMESTAMP),  # when this row's outcome was decided
    pa.field(LAST_SEEN, _TIMESTAMP),  # when a run last found the file
    pa.field(PREPARE_S, pa.float32()),
    pa.field(PROB, pa.float32()),  # the ensemble mean of the row's own bundle; null unless scored
)


def state_schema(member_columns_: Sequence[str] = ()) -> pa.Schema:
    """The file-row schema with these `prob_<member>` columns (the union over every bundle seen)."""
    return pa.schema([*STATE_FIELDS, *(pa.field(name, pa.float32()) for name in member_columns_)])


def align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: missing ones as nulls (e.g. another bundle's members)."""
    columns = []
    for field_ in schema:
        if field_.name in table.column_names:
            columns.append(table[field_.name].cast(field_.type))
        else:
            columns.append(pa.nulls(table.num_rows, field_.type))
    return pa.Table.from_arrays(columns, schema=schema)


def union_schema(*tables: pa.Table) -> pa.Schema:
    """The state schema holding every member column of `tables`, in first-seen order."""
    names: list[str] = []
    for table in tables:
        names += [name for name in member_columns(table.schema) if name not in names]
    return state_schema(names)


def catalog_rows(records: pa.Table) -> pa.Table:
    """Tonight's catalog (ViewRecord columns) as file rows, before anything is scored."""
    return align(records.append_column(SCORABLE, pc.equal(records[STATUS], STATUS_OK)), state_schema())


@dataclass
class Night:
    """What reconciliation decided: the current file rows (TO_SCORE marks those to run) and counts."""

    rows: pa.Table
    counts: dict[str, int] = field(default_factory=dict)  # new, changed, unchanged, gone, outside (files)


def reconcile(found: pa.Table, stored: pa.Table, roots: Sequence[str], bundle_id: str, seen_at: datetime,
              rescore: bool = False) -> Night:
    """Tonight's file rows (`found`, from `catalog_rows`) against the stored ones (see the module doc)."""
    schema = union_schema(stored)
    found, stored = align(found, schema), align(stored, schema)
    seen = pc.is_in(stored[PATH], value_set=found[PATH])
    in_scope = under_roots(stored[PATH], roots)
    outside = stored.filter(pc.and_(pc.invert(seen), pc.invert(in_scope)))
    gone = int(pc.sum(pc.and_(pc.invert(seen), in_scope)).as_py() or 0)

    previous = stored.filter(seen)
    joined = _with_previous(found, previous)
    same_file = pc.and_(pc.equal(joined["size"], joined["_size"]), pc.equal(joined["mtime_ns"], joined["_mtime_ns"]))
    keep = pc.fill_null(pc.and_(pc.and_(same_file, pc.equal(joined["_bundle_id"], bundle_id)),
                                pc.and_(pc.is_valid(joined["_prob"]), joined[SCORABLE])), False)
    if rescore:
        keep = pc.and_(keep, pa.scalar(False))
    current = _kept_scores(joined, keep, schema)
    current = _set(current, BUNDLE_ID, pc.if_else(keep, current[BUNDLE_ID], pa.scalar(bundle_id)))
    current = _set(current, LAST_SEEN, pa.array(np.full(len(current), seen_at), _TIMESTAMP) if len(current)
                   else pa.array([], _TIMESTAMP))
    current = _set(current, SCORED_AT, pc.if_else(keep, current[SCORED_AT], pa.scalar(seen_at, _TIMESTAMP)))
    current = current.append_column(TO_SCORE, pc.and_(current[SCORABLE], pc.invert(keep)))
    current = current.append_column(FOUND, pa.array(np.ones(current.num_rows, bool)))
    known = pc.is_valid(joined["_size"])
    unchanged = pc.fill_null(pc.or_(keep, pc.and_(same_file, pc.invert(joined[SCORABLE]))), False)
    counts = {"new": _count(pc.invert(known)), "changed": _count(pc.and_(known, pc.invert(unchanged))),
              "unchanged": _count(unchanged), "gone": gone, "outside": outside.num_rows}
    nothing = pa.array(np.zeros(outside.num_rows, bool))
    outside = outside.append_column(TO_SCORE, nothing).append_column(FOUND, nothing)
    return Night(pa.concat_tables([current, outside]), counts)


def under_roots(paths: pa.ChunkedArray | pa.Array, roots: Sequence[str]) -> pa.ChunkedArray | pa.Array:
    """Whether each path is one of `roots` (real paths) or below one."""
    inside = pa.array(np.zeros(len(paths), bool))
    for root in roots:
        real = os.path.realpath(root)
        below = pc.starts_with(paths, pattern=real.rstrip(os.sep) + os.sep)
        inside = pc.or_(inside, pc.or_(below, pc.equal(paths, real)))
    return inside


def _with_previous(found: pa.Table, previous: pa.Table) -> pa.Table:
    """`found` (in order) with the stored row's size, mtime, bundle, outcome and probabilities as `_x`."""
    carried = ["size", "mtime_ns", BUNDLE_ID, PROB, STATUS, "reason", "detail", SCORED_AT, PREPARE_S,
               *member_columns(previous.schema)]
    # index_in + take, not a join: joins cannot carry list columns (patient_orientation), and paths are unique
    prior = previous.select(carried).take(pc.index_in(found[PATH], value_set=previous[PATH]))
    for name in carried:
        found = found.append_column(f"_{name}", prior[name])
    return found


def _kept_scores(joined: pa.Table, keep: pa.ChunkedArray, schema: pa.Schema) -> pa.Table:
    """Tonight's records, with the stored outcome and probabilities where the file is unchanged."""
    for name in [BUNDLE_ID, PROB, SCORED_AT, PREPARE_S, STATUS, "reason", "detail", *member_columns(schema)]:
        joined = _set(joined, name, pc.if_else(keep, joined[f"_{name}"], joined[name]))
    return joined.select(schema.names)


def _set(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)


def _count(mask) -> int:
    return int(pc.sum(mask).as_py() or 0)

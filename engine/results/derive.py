"""File rows -> the rows users read: views.parquet (one per file) and scores.parquet (one per study).

Derived on every run from the current file rows (results/state.py), never stored as truth:
- duplicates: the copies of one SOPInstanceUID in a study are one view. The first copy by path that
  scored counts; the others are `skipped duplicate`. Only when every copy failed does the view fail
  (the first copy carries the failure).
- a study's numbers come from its own bundle's rules (`bundles`: bundle id -> Rules), so rows scored
  by an earlier bundle keep that bundle's aggregation and threshold.
Arrow group-bys and joins throughout; Python touches only the few studies that need an error text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.policy import STUDY_REASONS
from mammo_batch.engine.dicom.record import STATUS_FAILED, STATUS_OK, STATUS_SKIPPED
from mammo_batch.engine.results.aggregate import aggregate_studies, recall
from mammo_batch.engine.results.schema import (
    ACCESSION_NUMBER,
    BUNDLE_ID,
    CONFIG,
    DETAIL,
    ENGINE_VERSION,
    ERROR,
    FINGERPRINT,
    LAST_SEEN,
    LEFT_SCORE,
    N_VIEWS,
    N_VIEWS_SKIPPED,
    PATH,
    PATIENT_ID,
    PROB,
    REASON,
    RECALL,
    RIGHT_SCORE,
    SCORE,
    SCORED_AT,
    SCORES_SCHEMA,
    SOP_INSTANCE_UID,
    STATUS,
    STUDY_DATE,
    STUDY_FAILED,
    STUDY_INSTANCE_UID,
    STUDY_KEY,
    STUDY_OK,
    STUDY_PARTIAL,
    STUDY_SKIPPED,
    THRESHOLD,
    VIEWS_FIXED_FIELDS,
    member_columns,
)
from mammo_batch.engine.results.state import SCORABLE
from mammo_batch.engine.results.tables import Rules

UNASSIGNED = ""  # the study_key of files that belong to no study
CONFLICT_MARK = "|patient:"
_IDENTIFIERS = (PATIENT_ID, ACCESSION_NUMBER, STUDY_INSTANCE_UID, STUDY_DATE)


def derived_views(rows: pa.Table) -> pa.Table:
    """views.parquet: every file row with its study and its status in the study (duplicates resolved)."""
    rows = _resolve_duplicates(rows)
    members = member_columns(rows.schema)
    schema = pa.schema([*VIEWS_FIXED_FIELDS, *(pa.field(m, pa.float32()) for m in members),
                        pa.field(PROB, pa.float32())])
    return rows.select(schema.names).cast(schema).sort_by([(STUDY_KEY, "ascending"), (PATH, "ascending")])


def derived_scores(views: pa.Table, rows: pa.Table, bundles: Mapping[str, Rules], config: str,
                   engine_version: str) -> pa.Table:
    """scores.parquet: one row per study of `views` (from `derived_views`), each judged by its bundle."""
    views = views.filter(pc.not_equal(views[STUDY_KEY], UNASSIGNED))
    if views.num_rows == 0:
        return SCORES_SCHEMA.empty_table()
    times = rows.select([PATH, SCORED_AT, LAST_SEEN, "size", "mtime_ns", STUDY_DATE])
    views = views.join(times, PATH, join_type="left outer").sort_by([(STUDY_KEY, "ascending"), (PATH, "ascending")])
    scored = pc.and_(pc.equal(views[STATUS], STATUS_OK), pc.is_valid(views[PROB]))
    failed = pc.equal(views[STATUS], STATUS_FAILED)
    views = views.append_column("_scored", scored).append_column("_failed", failed)
    views = views.append_column("_scored_bundle", pc.if_else(scored, views[BUNDLE_ID], pa.scalar(None, pa.string())))
    for name in _IDENTIFIERS:  # blanks are no value: the smallest non-blank one names the study
        views = _replace(views, name, pc.if_else(pc.equal(views[name], ""), pa.scalar(None, pa.string()),
                                                 views[name]))
    studies = views.group_by(STUDY_KEY, use_threads=False).aggregate(
        [(PATH, "count"), ("_scored", "sum"), ("_failed", "sum"), ("_scored_bundle", "max"), (BUNDLE_ID, "max"),
         (SCORED_AT, "max"), (LAST_SEEN, "max"), *((name, "min") for name in _IDENTIFIERS)]
    ).sort_by(STUDY_KEY)
    n_files, n_scored = studies[f"{PATH}_count"], pc.cast(studies["_scored_sum"], pa.int32())
    n_failed = pc.cast(studies["_failed_sum"], pa.int32())
    status = _study_status(n_scored, n_failed)
    bundle = pc.coalesce(studies["_scored_bundle_max"], studies[f"{BUNDLE_ID}_max"])
    table = pa.table({
        STUDY_KEY: studies[STUDY_KEY],
        **{name: pc.fill_null(studies[f"{name}_min"], "") for name in _IDENTIFIERS},
        N_VIEWS: n_scored, N_VIEWS_SKIPPED: pc.cast(pc.subtract(n_files, n_scored), pa.int32()),
        STATUS: status, BUNDLE_ID: bundle,
        ENGINE_VERSION: pa.array([engine_version] * studies.num_rows, pa.string()),
        SCORED_AT: studies[f"{SCORED_AT}_max"], LAST_SEEN: studies[f"{LAST_SEEN}_max"],
        CONFIG: pa.array([config] * studies.num_rows, pa.string()),
    })
    table = table.append_column(ERROR, pa.array(_errors(views, table, n_failed), pa.string()))
    table = table.append_column(FINGERPRINT, pa.array(_fingerprints(views), pa.string()))
    return _with_numbers(table, views.filter(scored), bundles)


def study_status(scored: int, failed: int) -> str:
    """ok: every view that should score did; partial: some failed; failed: none scored; skipped: none to score."""
    if scored == 0:
        return STUDY_FAILED if failed else STUDY_SKIPPED
    return STUDY_PARTIAL if failed else STUDY_OK


def _study_status(scored: pa.Array, failed: pa.Array) -> pa.Array:
    none_scored = pc.equal(scored, 0)
    some_failed = pc.greater(failed, 0)
    when_none = pc.if_else(some_failed, STUDY_FAILED, STUDY_SKIPPED)
    when_some = pc.if_else(some_failed, STUDY_PARTIAL, STUDY_OK)
    return pc.if_else(none_scored, when_none, when_some)


def _resolve_duplicates(rows: pa.Table) -> pa.Table:
    """Copies of one SOPInstanceUID within a study: one is the view (see the module doc), the others
    are `skipped duplicate` with no probabilities."""
    candidate = pc.and_(pc.and_(rows[SCORABLE], pc.not_equal(rows[SOP_INSTANCE_UID], "")),
                        pc.not_equal(rows[STUDY_KEY], UNASSIGNED))
    scored = pc.and_(pc.equal(rows[STATUS], STATUS_OK), pc.is_valid(rows[PROB]))
    keys = rows.select([STUDY_KEY, SOP_INSTANCE_UID, PATH]).append_column(
        "_ok_path", pc.if_else(scored, rows[PATH], pa.scalar(None, pa.string())))
    groups = keys.filter(pc.fill_null(candidate, False)).group_by([STUDY_KEY, SOP_INSTANCE_UID], use_threads=False)
    chosen = groups.aggregate([(PATH, "min"), (PATH, "count"), ("_ok_path", "min")])
    chosen = chosen.filter(pc.greater(chosen[f"{PATH}_count"], 1))
    if chosen.num_rows == 0:
        return rows
    chosen = pa.table({STUDY_KEY: chosen[STUDY_KEY], SOP_INSTANCE_UID: chosen[SOP_INSTANCE_UID],
                       "_chosen": pc.coalesce(chosen["_ok_path_min"], chosen[f"{PATH}_min"])})
    order = pa.array(range(rows.num_rows), pa.int64())
    narrow = rows.select([STUDY_KEY, SOP_INSTANCE_UID]).append_column("_row", order)
    narrow = narrow.join(chosen, [STUDY_KEY, SOP_INSTANCE_UID], join_type="left outer").sort_by("_row")
    joined = rows.append_column("_candidate", candidate).append_column("_chosen", narrow["_chosen"])
    copy = pc.fill_null(pc.and_(joined["_candidate"], pc.not_equal(joined[PATH], joined["_chosen"])), False)
    detail = pc.binary_join_element_wise("the same image (SOPInstanceUID) as ", joined["_chosen"], "")
    own_failure = pc.binary_join_element_wise("; this copy failed: ", joined[REASON], "")
    detail = pc.if_else(pc.equal(joined[STATUS], STATUS_FAILED), pc.binary_join_element_wise(detail, own_failure, ""),
                        detail)
    joined = _replace(joined, STATUS, pc.if_else(copy, STATUS_SKIPPED, joined[STATUS]))
    joined = _replace(joined, REASON, pc.if_else(copy, "duplicate", joined[REASON]))
    joined = _replace(joined, DETAIL, pc.if_else(copy, detail, joined[DETAIL]))
    for name in [*member_columns(rows.schema), PROB]:
        joined = _replace(joined, name, pc.if_else(copy, pa.scalar(None, pa.float32()), joined[name]))
    return joined.select(rows.column_names)


def _errors(views: pa.Table, studies: pa.Table, n_failed: pa.Array) -> list[str]:
    """The `error` text of each study (in study order): the first failure, or why nothing scored."""
    failures = views.filter(views["_failed"]).group_by(STUDY_KEY, use_threads=False).aggregate(
        [(REASON, "first"), (DETAIL, "first")])
    first = dict(zip(failures[STUDY_KEY].to_pylist(), zip(failures[f"{REASON}_first"].to_pylist(),
                     failures[f"{DETAIL}_first"].to_pylist(), strict=True), strict=True))
    skipped = set(studies.filter(pc.equal(studies[STATUS], STUDY_SKIPPED))[STUDY_KEY].to_pylist())
    reasons = _reason_counts(views.filter(pc.is_in(views[STUDY_KEY], value_set=pa.array(sorted(skipped),
                                                                                         pa.string()))))
    errors = []
    for key, scored, failed in zip(studies[STUDY_KEY].to_pylist(), studies[N_VIEWS].to_pylist(),
                                   n_failed.to_pylist(), strict=True):
        if failed:
            reason, detail = first[key]
            errors.append(f"{failed} of {scored + failed} views failed; first: {reason}: {detail}"[:500])
        elif key in skipped:
            errors.append("no view to score: " + ", ".join(f"{r or 'none'} x{n}" for r, n in reasons[key]))
        else:
            errors.append(STUDY_REASONS["patient_conflict"] if CONFLICT_MARK in key else "")
    return errors


def _reason_counts(views: pa.Table) -> dict[str, list[tuple[str, int]]]:
    """study_key -> (reason, files) of its files, most frequent first (ties by reason)."""
    counts = views.group_by([STUDY_KEY, REASON], use_threads=False).aggregate([(PATH, "count")])
    out: dict[str, list[tuple[str, int]]] = {}
    for key, reason, n in zip(counts[STUDY_KEY].to_pylist(), counts[REASON].to_pylist(),
                              counts[f"{PATH}_count"].to_pylist(), strict=True):
        out.setdefault(key, []).append((reason, n))
    return {key: sorted(pairs, key=lambda pair: (-pair[1], pair[0])) for key, pairs in out.items()}


def _fingerprints(views: pa.Table) -> list[str]:
    """sha256 over each study's sorted (path, size, mtime_ns): `views` is sorted by study, then path."""
    out: list[str] = []
    current, entries = None, []
    columns = zip(views[STUDY_KEY].to_pylist(), views[PATH].to_pylist(), views["size"].to_pylist(),
                  views["mtime_ns"].to_pylist(), strict=True)
    for key, path, size, mtime in columns:
        if key != current and current is not None:
            out.append(_digest(entries))
            entries = []
        current = key
        entries.append([path, size, mtime])
    if current is not None:
        out.append(_digest(entries))
    return out


def _digest(entries: list) -> str:
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode("utf-8")).hexdigest()


def _with_numbers(studies: pa.Table, scored: pa.Table, bundles: Mapping[str, Rules]) -> pa.Table:
    """score, left/right, threshold and recall of each study, with its own bundle's rules."""
    parts = []
    for bundle in pc.unique(pc.fill_null(studies[BUNDLE_ID], "")).to_pylist():
        these = studies.filter(pc.equal(pc.fill_null(studies[BUNDLE_ID], ""), bundle))
        rules = bundles.get(bundle)
        parts.append(_numbers(these, scored, rules))
    table = pa.concat_tables(parts)
    return table.select(SCORES_SCHEMA.names).cast(SCORES_SCHEMA).sort_by(STUDY_KEY)


def _numbers(studies: pa.Table, scored: pa.Table, rules: Rules | None) -> pa.Table:
    nulls = pa.nulls(studies.num_rows, pa.float64())
    if rules is None:  # no rules known for the bundle (a damaged store): numbers stay null, never guessed
        return studies.append_column(SCORE, nulls).append_column(LEFT_SCORE, nulls).append_column(
            RIGHT_SCORE, nulls).append_column(THRESHOLD, nulls).append_column(RECALL, pa.nulls(len(nulls), pa.bool_()))
    mine = scored.filter(pc.is_in(scored[STUDY_KEY], value_set=studies[STUDY_KEY].combine_chunks()))
    numbers = aggregate_studies(mine.select([STUDY_KEY, "laterality", PROB]), rules.breast_agg, rules.study_agg)
    joined = studies.join(numbers.select([STUDY_KEY, SCORE, LEFT_SCORE, RIGHT_SCORE]), STUDY_KEY,
                          join_type="left outer")
    carries = pc.is_in(joined[STATUS], value_set=pa.array([STUDY_OK, STUDY_PARTIAL]))
    for column in (SCORE, LEFT_SCORE, RIGHT_SCORE):
        joined = _replace(joined, column, pc.if_else(carries, joined[column], pa.scalar(None, pa.float64())))
    joined = joined.append_column(THRESHOLD, pa.array([rules.threshold] * joined.num_rows, pa.float64()))
    return joined.append_column(RECALL, recall(joined[SCORE], rules.threshold))


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, values)

"""The results of a run on disk: journal parts while it runs, one final file at the end.

Layout for `--out scores.parquet` (docs/scoring.md, "Journal, resume, lock"):

    scores.parquet                              final output, one row per study (previous runs)
    scores.parquet.views.parquet                the store's own per-view rows of every study it holds
    scores.parquet.journal/part-000001.scores.parquet   studies completed since the previous flush
    scores.parquet.journal/part-000001.views.parquet    their files

The per-view rows are always kept, whatever the options of the run that scored a study: they are
what `--views` exports and what a rerun with other aggregation rules re-derives study rows from.

Every file is written atomically, so a kill at any moment leaves only whole files. Rows are versioned
by where they come from: the final file is version 0, journal part N is version N, and the latest
version of a study wins everywhere (its scores row, and all its view rows together). The caller holds
`OutputLock(out)` for the whole life of a ResultStore: the store itself does not lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.results.files import (
    conform,
    fsync_dir,
    read_scores,
    read_views,
    stale_temp_files,
    with_run_metadata,
    write_parquet_atomic,
)
from mammo_batch.engine.results.schema import (
    ADDED_COLUMNS,
    BUNDLE_ID,
    CONFIG,
    FINGERPRINT,
    LAST_SEEN,
    PATH,
    SCORES_SCHEMA,
    STATUS,
    STUDY_KEY,
    STUDY_STATUSES,
    VIEW_STATUSES,
)
from mammo_batch.engine.results.tables import UNASSIGNED, Rules, rederive

PART_PATTERN = re.compile(r"^part-(\d{6,})\.(scores|views)\.parquet$")
# Helper columns while merging versions; never written.
_VERSION = "__version"
_SEQ = "__seq"


class PreviousStudy(NamedTuple):
    """What a rerun needs to know about a study already in the results."""

    fingerprint: str | None
    bundle_id: str | None
    status: str | None
    config: str | None
    has_views: bool  # its view rows are in the store (else it cannot be re-derived: rescore it)


def views_store_path(out: str | os.PathLike[str]) -> Path:
    """The store's own views file beside `out` (what `--views` copies)."""
    return Path(f"{os.fspath(out)}.views.parquet")


def journal_dir(out: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(out)}.journal")


def part_path(journal: Path, number: int, kind: str) -> Path:
    """`part-NNNNNN.<kind>.parquet`, kind "scores" or "views"."""
    return journal / f"part-{number:06d}.{kind}.parquet"


class ResultStore:
    """Buffers completed studies, journals them on flush(), writes the final files on finalize()."""

    def __init__(
        self,
        out: Path,
        views_schema: pa.Schema,
        metadata: dict[str, Any],
        views_out: Path | None = None,
        flush_every: int = 50,
    ) -> None:
        """`flush_every`: write a journal part once this many studies are buffered (the crash-loss bound)."""
        self.out = Path(out)
        self.views_store = views_store_path(self.out)
        self.views_out = Path(views_out) if views_out is not None else None
        if self.views_out is not None and self.views_out.resolve() == self.out.resolve():
            raise ValueError(f"the views output and the scores output are the same file: {self.out}")
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self.flush_every = flush_every
        self.views_schema = views_schema
        json.dumps(metadata, sort_keys=True)  # fail now, not after hours of scoring, if it cannot be saved
        self.metadata = dict(metadata)
        self.journal = journal_dir(self.out)
        self._scores: list[pa.Table] = []
        self._views: list[pa.Table] = []
        self._buffered_keys: set[str] = set()  # to replace rows cheaply when a study comes back

    # -- reading -------------------------------------------------------------------------------------

    def previous(self) -> dict[str, PreviousStudy]:
        """study_key -> its latest row in the final output and journal parts (a crashed run's too)."""
        sources = self._scores_sources()
        latest = _latest_rows(_read_scores(sources))
        with_views = set(self._latest_views(latest, [v for v, _ in sources])[STUDY_KEY].to_pylist())
        columns = (latest[name].to_pylist() for name in (STUDY_KEY, FINGERPRINT, BUNDLE_ID, STATUS, CONFIG))
        return {
            key: PreviousStudy(fingerprint, bundle, status, config, key in with_views)
            for key, fingerprint, bundle, status, config in zip(*columns, strict=True)
        }

    def _scores_sources(self) -> list[tuple[int, Path]]:
        """(version, path) of every scores file, oldest first: the final output, then journal parts."""
        sources = [(0, self.out)] if self.out.exists() else []
        return sources + [(number, part_path(self.journal, number, "scores")) for number in self._parts()]

    def _parts(self) -> list[int]:
        """Numbers of the journal parts with a scores file (a views file alone is an unfinished flush)."""
        if not self.journal.is_dir():
            return []
        numbers = []
        for entry in os.listdir(self.journal):
            match = PART_PATTERN.match(entry)
            if match and match.group(2) == "scores":
                numbers.append(int(match.group(1)))
        return sorted(numbers)

    # -- writing -------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Studies buffered since the last flush (for the caller's flush-every-N policy)."""
        return len(self._buffered_keys)

    def append(self, scores: pa.Table, views: pa.Table | None = None) -> None:
        """Buffer the rows of completed studies (one scores row each, plus their view rows); a journal
        part is written once `flush_every` studies are buffered. A study already buffered is replaced.
        """
        # Check everything before touching the buffer: a rejected append leaves no trace.
        scores = _checked_scores(scores)
        keys = scores[STUDY_KEY]
        views = _checked_views(self.views_schema.empty_table() if views is None else views, self.views_schema, keys)
        if scores.num_rows == 0 and views.num_rows == 0:
            return
        new_keys = set(keys.to_pylist())
        if new_keys & self._buffered_keys:
            # Same study appended twice before a flush: the new rows replace the old ones.
            self._scores = [_without_studies(table, keys) for table in self._scores]
            self._views = [_without_studies(table, keys) for table in self._views]
        self._buffered_keys |= new_keys
        self._scores.append(scores)
        self._views.append(views)
        if self.pending >= self.flush_every:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered rows as the next journal part; returns its scores file (None: nothing to do)."""
        if not self._scores and not self._views:
            return None
        self.journal.mkdir(exist_ok=True)
        number = self._next_part_number()
        # Views first: the scores file is what marks the part (and its studies) as complete.
        write_parquet_atomic(_concat(self._views, self.views_schema), part_path(self.journal, number, "views"))
        scores_path = part_path(self.journal, number, "scores")
        write_parquet_atomic(_concat(self._scores, SCORES_SCHEMA), scores_path)  # may be empty
        self._scores, self._views, self._buffered_keys = [], [], set()
        return scores_path

    def _next_part_number(self) -> int:
        numbers = [int(m.group(1)) for m in map(PART_PATTERN.match, os.listdir(self.journal)) if m]
        return max(numbers, default=0) + 1

    def finalize(self, rules: Rules | None = None, seen: Collection[str] = (), seen_at: datetime | None = None,
                 metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Flush, rewrite the final output(s) from previous rows + journal (latest row per study wins),
        then remove the journal. Safe to repeat after a crash at any point; returns the output counts.

        Every study row is re-derived from its stored view rows with `rules`, so the file's rows always
        follow the metadata (`rules` None: rows are kept as they are). Studies in `seen` (found by this
        run) get `last_seen = seen_at`; the others keep theirs and are counted as `not_seen`.
        `metadata` is merged over the constructor's.
        """
        if metadata:
            json.dumps(metadata, sort_keys=True)  # check before anything is written
            self.metadata.update(metadata)
        self.flush()
        self._remove_leftovers()
        sources = self._scores_sources()
        latest = _latest_rows(_read_scores(sources))
        views = self._latest_views(latest, [version for version, _ in sources])
        scores = _mark_seen(latest.select(SCORES_SCHEMA.names), seen, seen_at)
        if rules is not None:
            scores = rederive(scores, views, rules)
        counts = {"studies": scores.num_rows, "status": _value_counts(scores[STATUS]), "views": views.num_rows,
                  "not_seen": scores.num_rows - len(set(seen) & set(scores[STUDY_KEY].to_pylist()))}
        views = self._final(views, counts)
        write_parquet_atomic(views, self.views_store)
        if self.views_out is not None:
            write_parquet_atomic(views, self.views_out)
        write_parquet_atomic(self._final(scores, counts), self.out)
        self._retire_journal()
        return counts

    def _latest_views(self, latest_scores: pa.Table, versions: list[int]) -> pa.Table:
        """The view rows of each study's latest version, in study_key order."""
        tables = []
        for version in versions:
            path = self.views_store if version == 0 else part_path(self.journal, version, "views")
            if path.exists():
                tables.append((version, read_views(path, self.views_schema)))
        views = _stack(tables, self.views_schema)
        winners = latest_scores.select([STUDY_KEY, _VERSION])
        unassigned = views.filter(pc.equal(views[STUDY_KEY], UNASSIGNED))
        if unassigned.num_rows:  # files of no study: the latest run that listed any wins
            newest = pa.array([pc.max(unassigned[_VERSION]).as_py()], winners.schema.field(_VERSION).type)
            latest_unassigned = pa.table({STUDY_KEY: [UNASSIGNED], _VERSION: newest})
            winners = pa.concat_tables([winners, latest_unassigned])
        # A left semi join keeps the view rows whose (study_key, version) is a winner; it may reorder.
        kept = views.join(winners, keys=[STUDY_KEY, _VERSION], join_type="left semi")
        kept = kept.sort_by([(STUDY_KEY, "ascending"), (_SEQ, "ascending")])
        return kept.select(self.views_schema.names)

    def _final(self, table: pa.Table, counts: dict[str, Any]) -> pa.Table:
        return with_run_metadata(table, {**self.metadata, "output_counts": counts})

    def _remove_leftovers(self) -> None:
        """Temp files and a half-removed journal left by a killed run (we hold the lock: they are ours)."""
        outputs = [self.out, self.views_store] + ([self.views_out] if self.views_out is not None else [])
        for stale in [path for output in outputs for path in stale_temp_files(output)]:
            stale.unlink(missing_ok=True)
        shutil.rmtree(_retired(self.journal), ignore_errors=True)

    def _retire_journal(self) -> None:
        """Remove the journal in one atomic step (a rename), so that no subset of old parts survives a
        kill and outvotes the final file."""
        if not self.journal.exists():
            return
        retired = _retired(self.journal)
        os.replace(self.journal, retired)
        fsync_dir(self.journal.parent)
        shutil.rmtree(retired, ignore_errors=True)


def _mark_seen(scores: pa.Table, seen: Collection[str], seen_at: datetime | None) -> pa.Table:
    if not seen or seen_at is None:
        return scores
    found = pc.is_in(scores[STUDY_KEY], value_set=pa.array(list(seen), pa.string()))
    when = pa.scalar(seen_at, SCORES_SCHEMA.field(LAST_SEEN).type)
    return scores.set_column(scores.schema.get_field_index(LAST_SEEN), LAST_SEEN,
                             pc.if_else(found, when, scores[LAST_SEEN]))


def _retired(journal: Path) -> Path:
    return journal.with_name(journal.name + ".removing")


def _checked_scores(scores: pa.Table) -> pa.Table:
    """Scores rows as SCORES_SCHEMA; a ValueError for what would corrupt the results."""
    try:
        scores = conform(scores, SCORES_SCHEMA, flexible=lambda name: name in ADDED_COLUMNS)
    except ValueError as error:
        raise ValueError(f"scores rows do not fit the scores schema: {error}") from None
    keys = scores[STUDY_KEY]
    if keys.null_count:
        raise ValueError("scores rows with a null study_key")
    if pc.count_distinct(keys).as_py() != scores.num_rows:
        raise ValueError("scores rows repeat a study_key: append one row per study")
    _check_values(scores[STATUS], STUDY_STATUSES, "study status")
    return scores


def _checked_views(views: pa.Table, schema: pa.Schema, study_keys: pa.ChunkedArray) -> pa.Table:
    try:
        views = conform(views, schema, flexible=lambda name: name in ADDED_COLUMNS)
    except ValueError as error:
        raise ValueError(f"views rows do not fit the views schema: {error}") from None
    if views[PATH].null_count:
        raise ValueError("views rows with a null path")
    allowed = pa.concat_arrays([study_keys.combine_chunks().cast(pa.string()), pa.array([UNASSIGNED])])
    if not pc.all(pc.is_in(views[STUDY_KEY], value_set=allowed), min_count=0).as_py():
        raise ValueError("views rows of studies that are not in the scores rows appended with them")
    _check_values(views[STATUS], VIEW_STATUSES, "view status")
    return views


def _check_values(column: pa.ChunkedArray, allowed: tuple[str, ...], what: str) -> None:
    valid = pc.is_in(column, value_set=pa.array(allowed))  # null -> false
    if not pc.all(valid, min_count=0).as_py():  # min_count=0: an empty column is valid
        bad = pc.unique(column.filter(pc.invert(valid), null_selection_behavior="emit_null")).to_pylist()
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {bad}")


def _without_studies(table: pa.Table, keys: pa.ChunkedArray) -> pa.Table:
    return table.filter(pc.invert(pc.is_in(table[STUDY_KEY], value_set=keys.combine_chunks())))


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _read_scores(sources: list[tuple[int, Path]]) -> pa.Table:
    return _stack([(version, read_scores(path)) for version, path in sources])


def _stack(tables: list[tuple[int, pa.Table]], schema: pa.Schema = SCORES_SCHEMA) -> pa.Table:
    """Concatenate (version, table) pairs, oldest first, adding the version and a running row number."""
    tagged = [
        table.append_column(_VERSION, pa.array(np.full(table.num_rows, version, dtype=np.int64)))
        for version, table in tables
    ]
    if not tagged:
        tagged = [schema.empty_table().append_column(_VERSION, pa.array([], pa.int64()))]
    stacked = pa.concat_tables(tagged)
    return stacked.append_column(_SEQ, pa.array(np.arange(stacked.num_rows, dtype=np.int64)))


def _latest_rows(stacked: pa.Table) -> pa.Table:
    """The last row of each study_key in a stacked table (highest running number), by study_key."""
    last = stacked.group_by(STUDY_KEY).aggregate([(_SEQ, "max")])
    keep = pc.is_in(stacked[_SEQ], value_set=last[f"{_SEQ}_max"].combine_chunks())
    return stacked.filter(keep).sort_by(STUDY_KEY)


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column).to_pylist()
    return {str(item["values"]): item["counts"] for item in counts}

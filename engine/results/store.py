"""The results on disk: the file-row state, journal parts while a run scores, the outputs at the end.

Layout for `--out scores.parquet` (docs/scoring.md, "Journal, resume, lock"):

    scores.parquet                         one row per study (derived: results/derive.py)
    scores.parquet.views.parquet           one row per file, as users read it (what `--views` copies)
    scores.parquet.files.parquet           the state: one row per file (results/state.py), the truth
    scores.parquet.journal/part-000001.files.parquet   file rows scored since the previous flush

Every file is written atomically, so a kill at any moment leaves only whole files. File rows are
versioned by where they come from (the state file is version 0, journal part N is version N) and the
latest row of a path wins. The state's metadata also holds each bundle's rules (aggregation and
threshold), so rows scored by an earlier bundle are judged by it. The caller holds `OutputLock(out)`
for the whole life of a ResultStore: the store itself does not lock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mammo_batch.engine.results.files import (
    ResultsFileError,
    fsync_dir,
    read_run_metadata,
    read_scores,
    stale_temp_files,
    with_run_metadata,
    write_parquet_atomic,
)
from mammo_batch.engine.results.schema import PATH, SCORES_SCHEMA, STUDY_KEY
from mammo_batch.engine.results.state import align, state_schema, union_schema
from mammo_batch.engine.results.tables import Rules

PART_PATTERN = re.compile(r"^part-(\d{6,})\.files\.parquet$")
_SEQ = "__seq"  # helper column while merging versions; never written


class Stored(NamedTuple):
    """What earlier runs left: file rows, the rules of each bundle seen, the last study rows."""

    rows: pa.Table
    bundles: dict[str, Rules]
    scores: pa.Table


def views_store_path(out: str | os.PathLike[str]) -> Path:
    """The views file beside `out` (what `--views` copies, what the report reads)."""
    return Path(f"{os.fspath(out)}.views.parquet")


def state_path(out: str | os.PathLike[str]) -> Path:
    """The file-row state beside `out`."""
    return Path(f"{os.fspath(out)}.files.parquet")


def journal_dir(out: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(out)}.journal")


def part_path(journal: Path, number: int) -> Path:
    return journal / f"part-{number:06d}.files.parquet"


class ResultStore:
    """Buffers scored file rows, journals them on flush(), writes the state and outputs on finalize()."""

    def __init__(self, out: Path, metadata: dict[str, Any], views_out: Path | None = None,
                 flush_every: int = 50) -> None:
        """`flush_every`: write a journal part once this many studies are buffered (the crash-loss bound)."""
        self.out = Path(out)
        self.views_store = views_store_path(self.out)
        self.state = state_path(self.out)
        self.views_out = Path(views_out) if views_out is not None else None
        if self.views_out is not None and self.views_out.resolve() == self.out.resolve():
            raise ValueError(f"the views output and the scores output are the same file: {self.out}")
        if flush_every < 1:
            raise ValueError("flush_every must be at least 1")
        self.flush_every = flush_every
        json.dumps(metadata, sort_keys=True)  # fail now, not after hours of scoring, if it cannot be saved
        self.metadata = dict(metadata)
        self.journal = journal_dir(self.out)
        self._buffer: list[pa.Table] = []
        self._pending = 0
        self.written: list[pa.Table] = []  # every row appended by this run (finalize merges them)

    # -- reading -------------------------------------------------------------------------------------

    def load(self) -> Stored:
        """The state file and the journal parts (a crashed run's too), the latest row per path."""
        tables = [read_rows(self.state)] if self.state.exists() else []
        tables += [read_rows(part_path(self.journal, n)) for n in self._parts()]
        rows = latest_per_path(tables)
        bundles = _bundles(read_run_metadata(self.state)) if self.state.exists() else {}
        scores = read_scores(self.out) if self.out.exists() else SCORES_SCHEMA.empty_table()
        return Stored(rows, bundles, scores)

    def _parts(self) -> list[int]:
        if not self.journal.is_dir():
            return []
        return sorted(int(m.group(1)) for m in map(PART_PATTERN.match, os.listdir(self.journal)) if m)

    # -- writing -------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Studies buffered since the last flush."""
        return self._pending

    def append(self, rows: pa.Table) -> None:
        """Buffer the file rows of completed studies; a journal part is written every `flush_every`."""
        if rows.num_rows == 0:
            return
        if rows[PATH].null_count:
            raise ValueError("file rows with a null path")
        self._buffer.append(rows)
        self.written.append(rows)
        self._pending += len(pc.unique(rows[STUDY_KEY]))
        if self._pending >= self.flush_every:
            self.flush()

    def flush(self) -> Path | None:
        """Write the buffered rows as the next journal part; returns its path (None: nothing to do)."""
        if not self._buffer:
            return None
        self.journal.mkdir(exist_ok=True)
        path = part_path(self.journal, self._next_part_number())
        write_parquet_atomic(latest_per_path(self._buffer), path)
        self._buffer, self._pending = [], 0
        return path

    def _next_part_number(self) -> int:
        return max(self._parts(), default=0) + 1

    def finalize(self, rows: pa.Table, views: pa.Table, scores: pa.Table, bundles: dict[str, Rules],
                 metadata: dict[str, Any]) -> None:
        """Write the state, the views and the scores (in that order), then remove the journal. Safe to
        repeat after a crash at any point: the journal is removed last, in one rename."""
        json.dumps(metadata, sort_keys=True)  # check before anything is written
        self.metadata.update(metadata)
        self._buffer, self._pending = [], 0
        self._remove_leftovers()
        rules = {bundle: rule.to_list() for bundle, rule in bundles.items()}
        write_parquet_atomic(with_run_metadata(rows.sort_by(PATH), {**self.metadata, "bundles": rules}), self.state)
        views = with_run_metadata(views, self.metadata)
        write_parquet_atomic(views, self.views_store)
        if self.views_out is not None:
            write_parquet_atomic(views, self.views_out)
        write_parquet_atomic(with_run_metadata(scores, self.metadata), self.out)
        self._retire_journal()

    def _remove_leftovers(self) -> None:
        """Temp files and a half-removed journal left by a killed run (we hold the lock: they are ours)."""
        outputs = [self.out, self.views_store, self.state] + ([self.views_out] if self.views_out else [])
        for stale in [path for output in outputs for path in stale_temp_files(output)]:
            stale.unlink(missing_ok=True)
        shutil.rmtree(_retired(self.journal), ignore_errors=True)

    def _retire_journal(self) -> None:
        """Remove the journal in one atomic step (a rename)."""
        if not self.journal.exists():
            return
        retired = _retired(self.journal)
        os.replace(self.journal, retired)
        fsync_dir(self.journal.parent)
        shutil.rmtree(retired, ignore_errors=True)


def read_rows(path: Path) -> pa.Table:
    """A state file or journal part, as file rows with every member column it has."""
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException) as error:
        raise ResultsFileError(f"cannot read {path} as a Parquet file: {error}") from error
    missing = [name for name in state_schema().names if name not in table.column_names]
    if missing:
        raise ResultsFileError(f"{path} is not a mammo-batch state file (missing {missing}); move it away "
                               "or choose another output path")
    return align(table, union_schema(table))


def latest_per_path(tables: list[pa.Table]) -> pa.Table:
    """Concatenate oldest first; the last row of each path wins."""
    schema = union_schema(*tables) if tables else state_schema()
    if not tables:
        return schema.empty_table()
    stacked = pa.concat_tables([align(table, schema) for table in tables])
    stacked = stacked.append_column(_SEQ, pa.array(np.arange(stacked.num_rows, dtype=np.int64)))
    last = stacked.group_by(PATH, use_threads=False).aggregate([(_SEQ, "max")])
    keep = pc.is_in(stacked[_SEQ], value_set=last[f"{_SEQ}_max"].combine_chunks())
    return stacked.filter(keep).drop_columns([_SEQ])


def _bundles(metadata: dict[str, Any]) -> dict[str, Rules]:
    return {bundle: Rules(*rule) for bundle, rule in (metadata.get("bundles") or {}).items()}


def _retired(journal: Path) -> Path:
    return journal.with_name(journal.name + ".removing")

"""The header catalog: every discovered file's ViewRecord as Arrow record batches, not Python objects.

A million-file backlog would hold ~1 GB of ViewRecord objects; here the rows are packed into
Arrow batches, and past `spill_rows` they go to an Arrow IPC file in a private temporary folder
(removed with the catalog), so memory stays flat in the number of files. Rows keep the order in
which they were appended; reading them back is a sequential pass over the batches.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields

import pyarrow as pa

from mammo_batch.engine.dicom.record import ViewRecord

_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "list[str]": pa.list_(pa.string())}
SCHEMA = pa.schema([pa.field(f.name, _ARROW_TYPES[str(f.type)]) for f in fields(ViewRecord)])
BATCH_ROWS = 2048
SPILL_ROWS = 8192  # past this many rows the catalog lives on disk


class HeaderCatalog:
    """Append ViewRecords, `finish()`, then iterate (records or batches) as often as needed."""

    def __init__(self, spill_dir: str | os.PathLike | None = None, batch_rows: int = BATCH_ROWS,
                 spill_rows: int = SPILL_ROWS) -> None:
        self.spill_dir, self.batch_rows, self.spill_rows = spill_dir, batch_rows, spill_rows
        self._pending: list[dict] = []
        self._batches: list[pa.RecordBatch] = []  # in memory until spilled
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._file: str | None = None
        self._rows = 0
        self._cleanup: weakref.finalize | None = None

    @classmethod
    def from_records(cls, records: Iterable[ViewRecord], **options) -> HeaderCatalog:
        catalog = cls(**options)
        for record in records:
            catalog.append(record)
        return catalog.finish()

    @classmethod
    def from_table(cls, table: pa.Table) -> HeaderCatalog:
        """A finished catalog over the ViewRecord columns of `table` (e.g. stored file rows)."""
        catalog = cls()
        catalog._batches = table.select(SCHEMA.names).cast(SCHEMA).to_batches()
        catalog._rows = table.num_rows
        return catalog

    def append(self, record: ViewRecord) -> None:
        self._pending.append(record.to_dict())
        self._rows += 1
        if len(self._pending) >= self.batch_rows:
            self._seal()

    def finish(self) -> HeaderCatalog:
        """No more rows; flushes the last batch and closes the spill file."""
        self._seal()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self

    def __len__(self) -> int:
        return self._rows

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows in order, one batch at a time (only `columns`, when given)."""
        if self._writer is not None or self._pending:
            raise RuntimeError("call finish() before reading the catalog")
        if self._file is None:
            for batch in self._batches:
                yield batch.select(columns) if columns else batch
            return
        options = pa.ipc.IpcReadOptions(included_fields=[SCHEMA.get_field_index(c) for c in columns]
                                        if columns else None)
        with pa.OSFile(self._file) as source:
            reader = pa.ipc.open_file(source, options=options)
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)

    def __iter__(self) -> Iterator[ViewRecord]:
        for batch in self.batches():
            for row in batch.to_pylist():
                yield ViewRecord(**row)

    def _seal(self) -> None:
        if not self._pending:
            return
        batch = pa.RecordBatch.from_pylist(self._pending, schema=SCHEMA)
        self._pending = []
        if self._writer is None and self._rows > self.spill_rows:
            self._start_spill()
        if self._writer is not None:
            self._writer.write_batch(batch)
        else:
            self._batches.append(batch)

    def _start_spill(self) -> None:
        folder = tempfile.mkdtemp(prefix="mammo-batch-catalog-", dir=self.spill_dir)
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        self._file = os.path.join(folder, "headers.arrow")
        self._writer = pa.ipc.new_file(self._file, SCHEMA)
        for batch in self._batches:
            self._writer.write_batch(batch)
        self._batches = []

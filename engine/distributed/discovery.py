"""Discovery on the cluster: the listing split by top-level folder over Ray tasks, headers read in
parallel by Ray Data tasks; the records come back to the driver, which groups them into studies.

Only paths and header fields move (a few hundred bytes per file): no pixel data, no shuffle. The
records are in the local engine's order (iter_candidate_files), so grouping is identical.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable

import pyarrow as pa
import ray

from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.policy import apply_policy
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.dicom.walk import walk
from mammo_batch.engine.distributed.nodes import unreadable_here
from mammo_batch.engine.distributed.options import cpu_tasks

log = logging.getLogger("mammo_batch.score")

HEADERS_PER_TASK = 64  # a header read is ~ms: batches amortise Ray's per-task cost
INDEX = "__index"


def discover_on_ray(paths: Iterable[str | os.PathLike], views: Collection[str] | None = None,
                    workers: int = 0, exclude: Iterable[str | os.PathLike] = ()) -> list[ViewRecord]:
    """What `engine.dicom.discover` finds, the headers read on the cluster (`workers` 0: as many tasks
    as fit). The listing is the local engine's own walk (real paths, folder links followed once,
    what is not followed reported), on the driver; the header reads, the slow part, are Ray tasks."""
    walked = list(walk(paths, exclude))
    files = [(i, item) for i, item in enumerate(walked) if isinstance(item, str)]
    records: dict[int, ViewRecord] = {i: apply_policy(item, views) for i, item in enumerate(walked)
                                      if not isinstance(item, str)}
    if files:
        items = [{INDEX: i, "path": path} for i, path in files]
        parallel = workers or int(ray.cluster_resources().get("CPU", 1))
        blocks = min(len(files), max(-(-len(files) // HEADERS_PER_TASK), parallel), 10_000)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _read_headers, batch_size=HEADERS_PER_TASK, batch_format="pyarrow", fn_kwargs={"views": views},
            **cpu_tasks(workers))
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                index = row.pop(INDEX)
                records[index] = ViewRecord(**row)
    return [records[i] for i in sorted(records)]


def _read_headers(batch: pa.Table, views: Collection[str] | None) -> pa.Table:
    rows = []
    for index, path in zip(batch[INDEX].to_pylist(), batch["path"].to_pylist(), strict=True):
        record = apply_policy(read_view(path), views)
        if record.reason == "unreadable":
            record.detail = unreadable_here(path) or record.detail
        rows.append({INDEX: index, **record.to_dict()})
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)


def _record_schema() -> pa.Schema:
    """Explicit types, so that blocks agree (an all-empty list column would otherwise be list<null>)."""
    types = {str: pa.string(), int: pa.int64()}
    example = ViewRecord(path="")
    fields = [pa.field(INDEX, pa.int64())]
    for name in ViewRecord.field_names():
        value = getattr(example, name)
        fields.append(pa.field(name, pa.list_(pa.string()) if isinstance(value, list) else types[type(value)]))
    return pa.schema(fields)


RECORD_SCHEMA = _record_schema()

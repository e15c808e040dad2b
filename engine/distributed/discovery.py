"""Discovery on the cluster: the listing split by top-level folder over Ray tasks, headers read in
parallel by Ray Data tasks; the records come back to the driver, which groups them into studies.

Only paths and header fields move (a few hundred bytes per file): no pixel data, no shuffle. The
records are in the local engine's order (iter_candidate_files), so grouping is identical.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable
from pathlib import Path

import pyarrow as pa
import ray

from mammo_batch.engine.dicom.discover import iter_candidate_files
from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.policy import apply_policy
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.distributed.nodes import node_name, readable_dir_here, unreadable_here
from mammo_batch.engine.distributed.options import cpu_tasks

log = logging.getLogger("mammo_batch.score")

HEADERS_PER_TASK = 64  # a header read is ~ms: batches amortise Ray's per-task cost
INDEX = "__index"


def discover_on_ray(paths: Iterable[str | os.PathLike], views: Collection[str] | None = None,
                    workers: int = 0) -> list[ViewRecord]:
    """What `engine.dicom.discover` returns, computed on the cluster (`workers` 0: as many tasks as fit)."""
    files = list_files(paths)
    if not files:
        return []
    items = [{INDEX: i, "path": p} for i, p in enumerate(files)]
    parallel = workers or int(ray.cluster_resources().get("CPU", 1))
    blocks = min(len(files), max(-(-len(files) // HEADERS_PER_TASK), parallel), 10_000)
    dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        _read_headers, batch_size=HEADERS_PER_TASK, batch_format="pyarrow", fn_kwargs={"views": views},
        **cpu_tasks(workers))
    rows: list[dict] = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows += batch.to_pylist()
    rows.sort(key=lambda row: row.pop(INDEX))
    return [ViewRecord(**row) for row in rows]


def list_files(paths: Iterable[str | os.PathLike]) -> list[str]:
    """iter_candidate_files' listing, each top-level folder walked by its own Ray task."""
    units: list[tuple[str, bool]] = []  # (path, walk it remotely)
    for root in map(Path, paths):
        if root.is_file():
            units.append((str(root), False))
            continue
        top = next(os.walk(root), (str(root), [], []))
        units += [(str(root / name), False) for name in sorted(top[2]) if not name.startswith(".")]
        units += [(str(root / name), True) for name in sorted(top[1])  # os.walk does not follow links
                  if not name.startswith(".") and name != "__MACOSX" and not (root / name).is_symlink()]
    walk = ray.remote(num_cpus=1)(_walk)
    pending = {i: walk.remote(path) for i, (path, remote) in enumerate(units) if remote}
    listed = dict(zip(pending, ray.get(list(pending.values())), strict=True))
    files: list[str] = []
    for i, (path, remote) in enumerate(units):
        if not remote:
            files.append(path)
            continue
        found, error = listed[i]
        if error:  # that node cannot see the folder: list it here; its files get per-file statuses
            log.warning("%s; listing %s on the driver instead", error, path)
            found = [str(p) for p in iter_candidate_files([path])]
        files += found
    return files


def _walk(folder: str) -> tuple[list[str], str]:
    if not readable_dir_here(folder):
        return [], f"node {node_name()} cannot list a folder"
    return [str(p) for p in iter_candidate_files([folder])], ""


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

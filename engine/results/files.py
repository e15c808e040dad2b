"""Parquet files of results: atomic writes, and reads checked against the explicit schemas."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mammo_batch.engine.results.schema import ADDED_COLUMNS, MEMBER_PROB_PREFIX, METADATA_KEY, SCORES_SCHEMA

# Which columns may be missing (read as nulls) or unexpected (dropped); by default none.
Flexible = Callable[[str], bool]


def _strict(name: str) -> bool:
    return False


class ResultsFileError(RuntimeError):
    """A results file (final output or journal part) cannot be read as mammo-batch results."""


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write `table` to `path` so that `path` is never seen half-written.

    Temp file in the same folder (os.replace is atomic only within one file system), fsync, replace,
    then fsync the folder so that the rename itself survives a power cut.
    """
    tmp = path.with_name(temp_name(path))
    try:
        pq.write_table(table, tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def temp_name(path: Path) -> str:
    """A hidden, unique temp name next to `path`; `stale_temp_files` finds leftovers by this pattern."""
    return f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def stale_temp_files(path: Path) -> list[Path]:
    """Temp files of `path` left by a killed writer (only safe to remove while holding the lock)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def with_run_metadata(table: pa.Table, metadata: dict[str, Any]) -> pa.Table:
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata, sort_keys=True)})


def read_run_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The `mammo_batch` JSON document of a results file ({} when it has none)."""
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(METADATA_KEY.encode())
    return json.loads(raw) if raw else {}


def read_scores(path: str | os.PathLike[str]) -> pa.Table:
    """A scores file (final or journal part), checked and cast to SCORES_SCHEMA."""
    return read_checked(Path(path), SCORES_SCHEMA, flexible=_is_added_column)


def read_views(path: str | os.PathLike[str], schema: pa.Schema) -> pa.Table:
    """A views file, cast to `schema`. Member columns may differ (the bundle changed between runs):
    a missing `prob_<member>` column reads as nulls, one of another member is dropped."""
    return read_checked(Path(path), schema, flexible=_is_member_column)


def read_checked(path: Path, schema: pa.Schema, flexible: Flexible = _strict) -> pa.Table:
    """Read one Parquet file and conform it to `schema`; any mismatch raises ResultsFileError."""
    try:
        table = pq.ParquetFile(path).read()
    except (OSError, pa.ArrowException) as error:
        raise ResultsFileError(f"cannot read {path} as a Parquet file: {error}") from error
    try:
        return conform(table, schema, flexible)
    except ValueError as error:
        raise ResultsFileError(
            f"{path} is not a mammo-batch results file of the expected schema: {error}; "
            "move it away or choose another output path"
        ) from error


def conform(table: pa.Table, schema: pa.Schema, flexible: Flexible = _strict) -> pa.Table:
    """`table` with exactly the columns of `schema`, in order, cast to its types.

    A missing or unexpected column is a ValueError, except for columns `flexible` accepts: those are
    filled with nulls when missing and dropped when unexpected.
    """
    if table.schema.equals(schema):  # the common case, and the cheap one
        return table
    names = table.column_names
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate column names in {names}")
    missing = [name for name in schema.names if name not in names and not flexible(name)]
    extra = [name for name in names if name not in schema.names and not flexible(name)]
    if missing or extra:
        raise ValueError(f"missing column(s) {missing}, unexpected column(s) {extra}")
    columns = dict(zip(names, table.columns, strict=True))
    conformed = [_cast_column(columns.get(field.name), field, table.num_rows) for field in schema]
    return pa.Table.from_arrays(conformed, schema=schema)


def _cast_column(column: pa.ChunkedArray | None, field: pa.Field, num_rows: int) -> pa.ChunkedArray:
    if column is None:
        return pa.chunked_array([pa.nulls(num_rows, field.type)], field.type)
    if column.type == field.type:
        return column
    # Python datetimes carry microseconds; dropping them to reach timestamp[ms] is intended.
    options = pc.CastOptions(target_type=field.type, allow_time_truncate=True)
    try:
        return pc.cast(column, options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(f"column {field.name!r} of type {column.type} cannot be {field.type}") from error


def _is_member_column(name: str) -> bool:
    return name.startswith(MEMBER_PROB_PREFIX) or name in ADDED_COLUMNS


def _is_added_column(name: str) -> bool:
    return name in ADDED_COLUMNS


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        _fsync(folder)

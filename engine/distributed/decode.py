"""Study rows -> view rows with model inputs: decode + pixel path as Ray Data CPU tasks.

A study row holds the positions (in study.views) and paths of its scorable views; each comes out as
one view row carrying an image per model input size. Every fault stays with its view: a file this
node cannot read, or one that fails to decode, becomes that view's reason and error (zero images),
never an exception that would fail the whole block.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa

from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.distributed.nodes import node_name, unreadable_here
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.schedule.preparer import REASON_DECODE_ERROR

Size = tuple[int, int]
REASON_NOT_READABLE = "not_readable_on_node"  # the node running the task cannot open the file


def image_column(size: Size) -> str:
    return f"image_{size[0]}x{size[1]}"


def decode_studies(batch: pa.Table, dtypes: dict[Size, str], settings: PreprocessSettings) -> dict[str, np.ndarray]:
    """`batch`: study rows (job, positions, paths); returns one row per view (job, position, reason,
    error, seconds, node, and an image per size in `dtypes`, the model input size -> pixel dtype)."""
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)  # failures come back as our one-line errors
    jobs, positions, reasons, errors, seconds = [], [], [], [], []
    images: dict[Size, list[np.ndarray]] = {size: [] for size in dtypes}
    for job, view_positions, paths in zip(batch["job"].to_pylist(), batch["positions"].to_pylist(),
                                          batch["paths"].to_pylist(), strict=True):
        for position, path in zip(view_positions, paths, strict=True):
            inputs, reason, error, spent = _prepare(path, dtypes, settings)
            jobs.append(job)
            positions.append(position)
            reasons.append(reason)
            errors.append(error)
            seconds.append(spent)
            for size, dtype in dtypes.items():
                images[size].append(inputs[size] if inputs else np.zeros(size, dtype))
    out = {"job": np.array(jobs, np.int64), "position": np.array(positions, np.int64),
           "reason": np.array(reasons, object), "error": np.array(errors, object),
           "seconds": np.array(seconds, np.float64), "node": np.array([node_name()] * len(jobs), object)}
    for size, dtype in dtypes.items():
        out[image_column(size)] = np.stack(images[size]) if jobs else np.zeros((0, *size), dtype)
    return out


def _prepare(path: str, dtypes: dict[Size, str], settings: PreprocessSettings
             ) -> tuple[dict[Size, np.ndarray] | None, str, str, float]:
    """(inputs or None, reason, error, seconds) for one file; never raises for a bad file."""
    started = time.perf_counter()
    unreadable = unreadable_here(path)
    if unreadable:
        return None, REASON_NOT_READABLE, unreadable, time.perf_counter() - started
    try:
        inputs = prepare_file(path, list(dtypes), settings).inputs
    except Exception as exc:  # a bad file: this view only
        return None, REASON_DECODE_ERROR, safe_error(exc, 300), time.perf_counter() - started
    return inputs, "", "", time.perf_counter() - started

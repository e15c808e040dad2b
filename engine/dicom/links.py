"""Which files belong together: connected components of identifier links, within one patient.

Each row (file) has a patient and up to two link values (AccessionNumber and StudyInstanceUID,
or its folder). Two rows of the same patient that share a link value are in one study; rows of
different patients never are. A link value found under several patients is a conflict: the
studies holding it are flagged (they are split by patient, and say so).

Memory stays flat in the number of files: values are 64-bit hashes, and past `bucket_rows` rows
they are partitioned into files on disk, by patient (components never cross patients) and by
link value (conflicts are per value), so that one bucket at a time is in memory. What remains
per file is the result: an int32 study id (the component's first row) and one flag byte.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterable

import numpy as np

ROW_DTYPE = np.dtype([("row", "<i4"), ("patient", "<u8"), ("a", "<u8"), ("b", "<u8")])
VALUE_DTYPE = np.dtype([("value", "<u8"), ("patient", "<u8"), ("row", "<i4")])
BUCKET_ROWS = 65536
NO_STUDY = -1


def hash64(values: Iterable[str]) -> np.ndarray:
    """A stable 64-bit hash per string (blake2b); the empty string, a missing value, is 0."""
    out = [int.from_bytes(hashlib.blake2b(v.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little") or 1 if v else 0 for v in values]
    return np.array(out, dtype=np.uint64)


class LinkTable:
    """Add rows in order (`add`), then `components()` once."""

    def __init__(self, n_rows: int, bucket_rows: int = BUCKET_ROWS,
                 spill_dir: str | os.PathLike | None = None) -> None:
        self.n_rows = n_rows
        self.n_buckets = max(1, math.ceil(n_rows / bucket_rows))
        self.by_patient = _Buckets(self.n_buckets, ROW_DTYPE, spill_dir)
        self.by_value = _Buckets(self.n_buckets, VALUE_DTYPE, spill_dir)

    def add(self, first_row: int, patient: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
        rows = np.arange(first_row, first_row + len(patient), dtype=np.int32)
        table = np.empty(len(rows), ROW_DTYPE)
        table["row"], table["patient"], table["a"], table["b"] = rows, patient, a, b
        self.by_patient.add(patient, table)
        for link in (a, b):
            has = link != 0
            values = np.empty(int(has.sum()), VALUE_DTYPE)
            values["value"], values["patient"], values["row"] = link[has], patient[has], rows[has]
            self.by_value.add(link[has], values)

    def components(self) -> tuple[np.ndarray, np.ndarray]:
        """(study id per row: the first row of its component, NO_STUDY when it has no link value;
        conflicted per study id: True where a link value of the study is shared with another patient)."""
        study = np.full(self.n_rows, NO_STUDY, dtype=np.int32)
        for bucket in self.by_patient.read_all():
            labels = _label(bucket)
            study[bucket["row"]] = labels
        conflicted = np.zeros(self.n_rows, dtype=bool)
        for bucket in self.by_value.read_all():
            rows = _conflicting_rows(bucket)
            conflicted[study[rows]] = True
        self.by_patient.close()
        self.by_value.close()
        return study, conflicted


def _label(bucket: np.ndarray) -> np.ndarray:
    """Component minimum row per row, by label propagation through (patient, value) tokens."""
    label = bucket["row"].astype(np.int64)
    tokens = []
    for column in ("a", "b"):
        index = np.flatnonzero(bucket[column] != 0)
        mixed = _mix(bucket["patient"][index], bucket[column][index])
        ids = np.unique(mixed, return_inverse=True)[1].reshape(-1)
        tokens.append((index, ids, int(ids.max()) + 1 if len(ids) else 0))
    changed = True
    while changed:
        changed = False
        for index, ids, n_ids in tokens:
            lowest = np.full(n_ids, np.iinfo(np.int64).max)
            np.minimum.at(lowest, ids, label[index])
            better = lowest[ids] < label[index]
            if better.any():
                label[index[better]] = lowest[ids][better]
                changed = True
    label[(bucket["a"] == 0) & (bucket["b"] == 0)] = NO_STUDY
    return label.astype(np.int32)


def _conflicting_rows(bucket: np.ndarray) -> np.ndarray:
    """Rows whose link value also appears under another patient."""
    pairs = np.unique(np.stack([bucket["value"], bucket["patient"]], axis=1), axis=0)
    values, counts = np.unique(pairs[:, 0], return_counts=True)
    shared = values[counts > 1]
    return bucket["row"][np.isin(bucket["value"], shared)]


def _mix(patient: np.ndarray, value: np.ndarray) -> np.ndarray:
    """One 64-bit token per (patient, value) pair (splitmix64 finaliser)."""
    x = (patient * np.uint64(0x9E3779B97F4A7C15)) ^ value
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Buckets:
    """Rows partitioned by key % n; in memory for one bucket, else one file per bucket."""

    def __init__(self, n: int, dtype: np.dtype, spill_dir: str | os.PathLike | None) -> None:
        self.n, self.dtype = n, dtype
        self.memory: list[np.ndarray] = []
        self.folder = tempfile.mkdtemp(prefix="mammo-batch-links-", dir=spill_dir) if n > 1 else None

    def add(self, keys: np.ndarray, rows: np.ndarray) -> None:
        if self.folder is None:
            self.memory.append(rows)
            return
        bucket = (keys % np.uint64(self.n)).astype(np.int64)
        for index in np.unique(bucket):
            with open(os.path.join(self.folder, f"{index}.bin"), "ab") as handle:
                rows[bucket == index].tofile(handle)

    def read_all(self):
        if self.folder is None:
            yield np.concatenate(self.memory) if self.memory else np.empty(0, self.dtype)
            return
        for index in range(self.n):
            path = os.path.join(self.folder, f"{index}.bin")
            if os.path.exists(path):
                yield np.fromfile(path, dtype=self.dtype)

    def close(self) -> None:
        self.memory = []
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

"""The Preparer seam: view files in, model inputs out (decode + pixel path), however it is done.

The scheduler hands a Preparer (view id, path) pairs and collects PreparedView results; it never
knows whether the work ran in a local process pool (CpuPoolPreparer, cpu_pool.py), on a GPU, or
in a Ray stage. A Preparer owns its own fault handling: whatever goes wrong with one file comes
back as that view's error and reason, never as an exception out of `collect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

Size = tuple[int, int]

# View failure reasons a Preparer reports (the vocabulary of views.parquet's `reason`).
REASON_DECODE_ERROR = "decode_error"  # the file could not be decoded or prepared
REASON_WORKER_CRASH = "worker_crash"  # the process preparing it died twice
REASON_TIMEOUT = "timeout"  # preparing it took longer than the per-file time limit
REASON_NOT_READABLE = "not_readable_on_node"  # engine ray: the node preparing it cannot open the path


@dataclass(frozen=True)
class PreparedView:
    """One view's model inputs (one per input size), or why there are none."""

    view_id: int
    inputs: dict[Size, np.ndarray] | None
    error: str = ""  # our words, never PHI; empty when prepared
    reason: str = ""  # one of the REASON_* codes when failed
    seconds: float = 0.0  # time spent preparing it (decode + pixel path)

    @property
    def failed(self) -> bool:
        return self.inputs is None


@runtime_checkable
class Preparer(Protocol):
    """Prepares views for the model input sizes and settings it was made with."""

    capacity: int  # how many views it can usefully hold in flight

    @property
    def in_flight(self) -> int: ...

    def submit(self, view_id: int, path: str) -> None: ...

    def collect(self, timeout: float) -> list[PreparedView]:
        """Results ready now, waiting up to `timeout` seconds for the first one."""
        ...

    def close(self) -> None: ...

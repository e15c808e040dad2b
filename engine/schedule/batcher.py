"""Batch preprocessed views per model input size, across studies.

A batch is flushed when it is full, or by the scheduler when it has waited long enough
(nothing else is coming soon) so that a study's last view never waits for strangers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

Size = tuple[int, int]


@dataclass
class Batch:
    size: Size
    view_ids: list[int]
    images: np.ndarray  # (B, H, W); a torch tensor on the device when a GPU preparer made the views


@dataclass
class _Pending:
    view_ids: list[int] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    since: float = 0.0  # monotonic time of the oldest view waiting


class SizeBatcher:
    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError("batch size must be at least 1")
        self.batch_size = batch_size
        self._pending: dict[Size, _Pending] = {}

    def add(self, size: Size, view_id: int, image: np.ndarray) -> Batch | None:
        """Queue one view's input; returns a full batch when this view completes one."""
        pending = self._pending.setdefault(size, _Pending())
        if not pending.view_ids:
            pending.since = time.monotonic()
        pending.view_ids.append(view_id)
        pending.images.append(image)
        if len(pending.view_ids) >= self.batch_size:
            return self._take(size)
        return None

    def drain(self, older_than: float | None = None) -> list[Batch]:
        """Partial batches: all of them, or those whose oldest view waited `older_than` seconds."""
        now = time.monotonic()
        sizes = [s for s, p in self._pending.items()
                 if p.view_ids and (older_than is None or now - p.since >= older_than)]
        return [self._take(size) for size in sizes]

    @property
    def waiting(self) -> int:
        return sum(len(p.view_ids) for p in self._pending.values())

    def _take(self, size: Size) -> Batch:
        pending = self._pending.pop(size)
        return Batch(size, pending.view_ids, _stack(pending.images))


def _stack(images: list) -> np.ndarray:
    """numpy views stack on the host; torch tensors (the GPU preparer's, on the device) stay there."""
    if isinstance(images[0], np.ndarray):
        return np.stack(images)
    import torch  # only a GPU preparer hands out tensors, and it needs torch

    return torch.stack(images)

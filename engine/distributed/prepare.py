"""View rows -> view rows with model inputs: the local engine's Preparer, run inside Ray actors.

Each actor of this stage owns a CpuPoolPreparer (engine/schedule/cpu_pool.py) with one worker
process, so a view gets exactly the local engine's fault handling on any node: an exception fails
that view (decode_error), a file that kills its worker is retried and then quarantined alone
(worker_crash), a file past the per-file time limit is failed (timeout) and its worker replaced.
The only Ray-specific fault is a path the node cannot open (not_readable_on_node), checked first.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mammo_batch.engine.distributed.nodes import node_id, unreadable_here
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer, Task, prepare_inputs
from mammo_batch.engine.schedule.preparer import REASON_NOT_READABLE, PreparedView, Size

COLLECT_WAIT_S = 1.0


def image_column(size: Size) -> str:
    return f"image_{size[0]}x{size[1]}"


class PrepareStage:
    """A Ray Data callable class: view rows (view_id, path) in; out the same rows with reason, error,
    seconds, node and one image column per model input size (zeros where the view failed)."""

    def __init__(self, dtypes: dict[Size, str], settings: PreprocessSettings, time_limit_s: float,
                 task: Task = prepare_inputs) -> None:
        self.dtypes = dtypes
        self.preparer = CpuPoolPreparer(list(dtypes), settings, workers=1, time_limit_s=time_limit_s, task=task)

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        view_ids, paths = batch["view_id"].to_pylist(), batch["path"].to_pylist()
        results: dict[int, PreparedView] = {}
        for view_id, path in zip(view_ids, paths, strict=True):
            unreadable = unreadable_here(path)
            if unreadable:
                results[view_id] = PreparedView(view_id, None, unreadable, REASON_NOT_READABLE)
            else:
                self.preparer.submit(view_id, path)
        while self.preparer.in_flight:
            for prepared in self.preparer.collect(COLLECT_WAIT_S):
                results[prepared.view_id] = prepared
        return self._rows([results[view_id] for view_id in view_ids])

    def _rows(self, views: list[PreparedView]) -> dict[str, np.ndarray]:
        out = {"view_id": np.array([v.view_id for v in views], np.int64),
               "reason": np.array([v.reason for v in views], object),
               "error": np.array([v.error for v in views], object),
               "seconds": np.array([v.seconds for v in views], np.float64),
               "node": np.array([node_id()] * len(views), object)}
        for size, dtype in self.dtypes.items():
            images = [np.zeros(size, dtype) if v.failed else np.asarray(v.inputs[size], dtype) for v in views]
            out[image_column(size)] = np.stack(images) if images else np.zeros((0, *size), dtype)
        return out


    def __del__(self) -> None:
        """Ray Data deletes the callable when the actor exits gracefully: its worker processes end first
        (were the actor killed instead, they die with it: CpuPoolPreparer's workers watch their parent)."""
        preparer = getattr(self, "preparer", None)
        if preparer is not None:
            preparer.close()

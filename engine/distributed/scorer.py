"""The ensemble as a Ray Data callable class: each actor loads the members once (Ensemble.load, the
same Runtime.load as the local engine) and scores batches of view rows from any studies.

Out go per-view rows without images: (view_id, reason, error, seconds, node) as they came in,
one probability column per member (NaN for views that failed to prepare), and where the work ran.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import ray

from mammo_batch.engine.distributed.nodes import node_id
from mammo_batch.engine.distributed.prepare import image_column
from mammo_batch.engine.ensemble import Ensemble

PASSED_ON = ("view_id", "reason", "error", "seconds", "node")


def prob_column(index: int) -> str:
    """Members by bundle position (names are the driver's business)."""
    return f"prob_{index}"


class EnsembleScorer:
    def __init__(self, bundle_dir: str, runtime: str, threads: int | None) -> None:
        self.ensemble = Ensemble.load(Path(bundle_dir), runtime, threads)
        context = ray.get_runtime_context()
        self.actor = context.get_actor_id() or ""
        self.node = node_id()
        self.gpus = ",".join(str(g) for g in ray.get_gpu_ids())

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        ok = np.array([not reason for reason in batch["reason"]], bool)
        n = len(ok)
        out = {name: batch[name] for name in PASSED_ON}
        for index, runner in enumerate(self.ensemble.runners):
            probs = np.full(n, np.nan)
            if ok.any():
                images = np.ascontiguousarray(np.asarray(batch[image_column(runner.input_size)])[ok])
                probs[ok] = runner.predict(images)
            out[prob_column(index)] = probs
        out["runtime"] = np.array([self.ensemble.runtime_reason] * n, object)
        out["actor"] = np.array([self.actor] * n, object)
        out["actor_node"] = np.array([self.node] * n, object)
        out["gpus"] = np.array([self.gpus] * n, object)
        model_s = np.zeros(n)
        if n:
            model_s[0] = time.perf_counter() - started  # once per batch: the driver sums the column
        out["model_s"] = model_s
        return out

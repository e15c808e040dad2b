"""Scoring on a Ray cluster (`--engine ray`, the `ray` extra): the same jobs, sink and store as the
local engine, with discovery and scoring spread over the cluster by Ray Data.

    cluster.py    connect to a cluster (or start a local one) for the run; what it has
    discovery.py  header reading as Ray tasks over chunks of the file listing
    prepare.py    view rows -> view rows with model inputs (actors running the local CpuPoolPreparer)
    scorer.py     the ensemble as a callable class: one Ensemble.load per actor, views batched across studies
    pipeline.py   the Ray Data pipeline; per-view rows back to the driver's StudyCollector, then the sink

Nothing here is imported by `--engine local`: engine/api.py imports this package only for `--engine ray`.
"""

from mammo_batch.engine.distributed.cluster import ray_session
from mammo_batch.engine.distributed.discovery import discover_on_ray
from mammo_batch.engine.distributed.pipeline import RayRun, score_on_ray

__all__ = ["RayRun", "discover_on_ray", "ray_session", "score_on_ray"]

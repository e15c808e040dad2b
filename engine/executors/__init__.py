"""Executors: where one scoring run's steps happen. `api.score` calls the chosen one once per step.

    base.py    the Executor interface (session, refusal, discover, score) and the registry
    local.py   this machine: discovery's header pool, the preparer (CPU pool or GPU) and the scheduler
    ray.py     a Ray cluster (the `ray` extra, engine/distributed): imported only when chosen

Both take the same jobs (one Study of files to score at a time) and hand completed StudyResults to
the same sink, so the nightly state, the journal and the outputs never depend on the executor. An
option an executor cannot honour is refused before any work (`refusal`), never silently ignored.
"""

from mammo_batch.engine.executors.base import EXECUTORS, Executor, make_executor

__all__ = ["EXECUTORS", "Executor", "make_executor"]

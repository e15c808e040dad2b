"""The Ray cluster a run uses: `--ray-address`, else RAY_ADDRESS, else a local Ray started for the run."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ray

log = logging.getLogger("mammo_batch.score")

# Ray Data hangs when actors hold every logical CPU (ray issue #44687; ../shared/reference/ray.md §4):
# a local Ray started for a run declares at least this many CPUs, whatever the core count.
MIN_LOCAL_CPUS = 4


@contextmanager
def ray_session(address: str | None = None, quiet: bool = False) -> Iterator[None]:
    """Connect for the duration of a run; a Ray already initialised in this process is used as it is
    (and left running), a local Ray started here is shut down at the end."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"address": address, "logging_level": logging.WARNING if quiet else logging.INFO}
    if address == "local":
        options.update(num_cpus=max(MIN_LOCAL_CPUS, os.cpu_count() or 1), include_dashboard=False)
        log.info("no Ray address given (--ray-address or RAY_ADDRESS): starting a local Ray for this run")
    ray.init(**options)
    data_log = logging.getLogger("ray.data")  # Ray Data logs every dataset's plan and progress at INFO
    level = data_log.level
    if quiet:
        data_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        data_log.setLevel(level)
        ray.shutdown()


def cluster_resources() -> dict[str, Any]:
    """What the cluster has now: alive nodes, CPUs, GPUs."""
    resources = ray.cluster_resources()
    return {"nodes": sum(1 for node in ray.nodes() if node.get("Alive")),
            "cpus": int(resources.get("CPU", 0)), "gpus": int(resources.get("GPU", 0))}

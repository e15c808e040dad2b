"""Resource requests of the pipeline's stages, with Ray Data's current API (`compute=`, never the
deprecated `concurrency=` or bare remote args)."""

from __future__ import annotations

from typing import Any

import ray
from ray.data import ActorPoolStrategy, TaskPoolStrategy

# A CPU-only scorer actor reserves at least this many CPUs: ONNX Runtime's threads.
MIN_SCORER_CPUS = 2


def cpu_tasks(workers: int) -> dict[str, Any]:
    """A stage of 1-CPU tasks; `workers` caps how many run at once (0: as many as the cluster fits)."""
    compute = TaskPoolStrategy(size=workers) if workers else TaskPoolStrategy()
    return {"compute": compute, "num_cpus": 1}


def prepare_actors(workers: int, scorer: dict[str, Any]) -> dict[str, Any]:
    """A pool of 1-CPU prepare actors: `workers` of them, else the CPUs the scorer actors leave free."""
    if not workers:
        scorer_cpus = scorer["num_cpus"] * scorer["compute"].max_size
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)) - scorer_cpus)
    return {"compute": ActorPoolStrategy(min_size=1, max_size=workers), "num_cpus": 1,
            "runtime_env": {"env_vars": {"RAY_kill_child_processes_on_worker_exit": "false"}}}


def scorer_actors(threads: int | None) -> tuple[dict[str, Any], int | None]:
    """(map_batches arguments, the CPU threads each actor's runtime gets: None = the runtime's default).

    One actor per GPU where the cluster has GPUs (each loads the members once, onto its own GPU);
    else one actor per node with CPUs to spare for it.
    """
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return {"compute": ActorPoolStrategy(min_size=1, max_size=gpus), "num_gpus": 1, "num_cpus": 1}, threads
    cpus = max(MIN_SCORER_CPUS, threads or MIN_SCORER_CPUS)
    nodes = sum(1 for node in ray.nodes() if node.get("Alive") and node["Resources"].get("CPU", 0) > cpus)
    return {"compute": ActorPoolStrategy(min_size=1, max_size=max(1, nodes)), "num_cpus": cpus}, cpus

"""The Ray tests on a two-node Ray cluster on this machine (issue 16): what differs from one node.

    python benchmarks/ray_two_nodes.py [--cpus-per-node 3] [pytest args...]

Starts a head and a second node with `ray.cluster_utils.Cluster` (two raylets, two object stores,
one machine), points the test session's `ray_cluster` fixture at it (MAMMO_BATCH_TEST_RAY_ADDRESS),
runs every Ray test (the Ray module and the executor scenarios), then reports which nodes the
prepare and scorer work ran on in one scoring run. Not part of CI: a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/engine/distributed", "tests/engine/executors"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus-per-node", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ray_two_nodes.json")
    args, pytest_args = parser.parse_known_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    from ray.cluster_utils import Cluster

    node = {"num_cpus": args.cpus_per_node, "object_store_memory": 256 * 1024**2}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    try:
        used = _one_run(cluster.address)
        started = time.monotonic()
        env = {**os.environ, "MAMMO_BATCH_TEST_RAY_ADDRESS": cluster.address}
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "ray",
                                *TESTS, *pytest_args], cwd=ROOT, env=env, capture_output=True, text=True)
        tail = tests.stdout.strip().splitlines()[-1] if tests.stdout.strip() else tests.stderr[-500:]
    finally:
        cluster.shutdown()
    result = {"nodes": 2, "cpus_per_node": args.cpus_per_node, "one_run": used,
              "tests": {"exit_code": tests.returncode, "summary": tail,
                        "seconds": round(time.monotonic() - started, 1)}}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if tests.returncode:
        print(tests.stdout[-6000:], file=sys.stderr)
    return tests.returncode


def _one_run(address: str) -> dict:
    """Score 12 synthetic studies on the cluster: where the work ran (the run's `cluster` summary)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from onnx_members import write_test_bundle

    from mammo_batch import score
    from mammo_batch.synth import write_studies

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_studies(work / "studies", 12, seed=3, size=(256, 208), layout="accession")
        bundle = write_test_bundle(work / "bundle", [{"name": "wide", "height": 96, "width": 48}], threshold=0.5)
        started = time.monotonic()
        summary = score([work / "studies"], out=work / "scores.parquet", models=bundle, engine="ray",
                        ray_address=address, progress=False)
        return {**summary.cluster, "views": summary.views, "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    sys.exit(main())

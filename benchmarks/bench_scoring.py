"""Scoring throughput and memory: does the pipeline overlap, and does memory stay flat?

    python benchmarks/bench_scoring.py [--quick] [--out benchmarks/results/scoring.json]

Overlap (DESIGN.md performance bar): end-to-end views/s >= 0.9 x the slowest stage's
standalone views/s, with the same workers, for
  - a cheap model (two mean-intensity members): decoding J2K views dominates;
  - a heavy model (heavy_member.py: ~38 GFLOP per view at 1536x768, about EfficientNet-B2's
    cost; torch is not needed to build it): the network dominates.
Memory: peak RSS of `mammo-batch score` on 200 vs 2000 small synthetic studies.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

from heavy_member import flops_per_view, heavy_member  # noqa: E402
from onnx_members import write_test_bundle  # noqa: E402

from mammo_batch import Ensemble, score  # noqa: E402
from mammo_batch.engine.bundle import Bundle, new_member, write_bundle  # noqa: E402
from mammo_batch.engine.dicom import discover  # noqa: E402
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer  # noqa: E402
from mammo_batch.engine.studies import group_studies  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402

WORKERS = 2
BATCH = 4


def heavy_bundle(directory: Path) -> tuple[Path, str]:
    """EfficientNet-B2 (random weights) exported at 1536x768 when the train extra is installed,
    else a conv stack of about the same cost (heavy_member.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        from mammo_batch.build.export import export_onnx
        from mammo_batch.train.models import ProbabilityModel, create_model

        export_onnx(ProbabilityModel(create_model("efficientnet_b2")).eval(), directory / "heavy.onnx",
                    1536, 768)
        kind = "efficientnet_b2 (tf_, random weights) exported with build.export_onnx"
    except ImportError:
        (directory / "heavy.onnx").write_bytes(heavy_member().SerializeToString())
        kind = f"conv stack, {flops_per_view() / 1e9:.0f} GFLOP per view (no torch installed)"
    member = new_member(directory, name="heavy", fold=0, arch="conv-stack", height=1536, width=768,
                        onnx="heavy.onnx")
    write_bundle(directory, Bundle(
        name="heavy-benchmark", created="2026-11-28T00:00:00Z", members=(member,), threshold=0.5,
        description="random-weight compute load for benchmarks, not a model"))
    return directory, kind


def overlap(studies: Path, bundle_dir: Path, work: Path) -> dict:
    """Each stage alone (prepare in the worker pool, the members on stacked inputs), then end to end
    through the public API with the same workers."""
    ensemble = Ensemble.load(bundle_dir, runtime="onnx", threads=WORKERS)
    groups, _ = group_studies(discover([studies], workers=1))
    paths = [v.path for s in groups for v in s.scorable]

    preparer = CpuPoolPreparer(ensemble.sizes, ensemble.settings, WORKERS, capacity=len(paths))
    try:
        _prepare_all(preparer, paths[:WORKERS])  # start the workers
        start = time.perf_counter()
        inputs = _prepare_all(preparer, paths)
        prepare_rate = len(paths) / (time.perf_counter() - start)
    finally:
        preparer.close()

    start = time.perf_counter()
    for size, members in ensemble.by_size.items():
        stacked = np.stack([x[size] for x in inputs])
        for runner in members:
            for i in range(0, len(stacked), BATCH):
                runner.predict(stacked[i : i + BATCH])
    model_rate = len(paths) / (time.perf_counter() - start)

    summary = score([studies], out=work / f"overlap-{bundle_dir.name}.parquet", models=ensemble, workers=WORKERS,
                    batch_size=BATCH, rescore=True, progress=False)
    end_to_end = summary.views_per_second  # the scoring phase, worker start-up included
    slowest = min(prepare_rate, model_rate)
    return {"views": len(paths), "prepare_views_per_s": prepare_rate, "model_views_per_s": model_rate,
            "end_to_end_views_per_s": end_to_end, "ratio_to_slowest_stage": end_to_end / slowest,
            "timings": summary.timings}


def _prepare_all(preparer: CpuPoolPreparer, paths: list[str]) -> list[dict]:
    for i, path in enumerate(paths):
        preparer.submit(i, path)
    results = {}
    while preparer.in_flight:
        for prepared in preparer.collect(timeout=1.0):
            if prepared.failed:
                raise RuntimeError(prepared.error)
            results[prepared.view_id] = prepared.inputs
    return [results[i] for i in range(len(paths))]


def peak_rss_mb(studies: Path, bundle_dir: Path, out: Path) -> float:
    """Peak RSS of a `score` run (its largest process), in MB."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
            "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--models",
               str(bundle_dir), "--out", str(out), "--quiet", "--workers", str(WORKERS)]
    result = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True,
                            check=True)
    return int(result.stdout.strip()) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["cheap", "heavy", "memory"], help="run one part")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "scoring.json")
    args = parser.parse_args()
    results: dict = {"machine": {"cpus": os.cpu_count()}, "workers": WORKERS, "batch_size": BATCH,
                     "heavy_gflop_per_view": flops_per_view() / 1e9}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cheap = write_test_bundle(work / "cheap", [
            dict(name="whole", height=512, width=256), dict(name="half", height=256, width=128)])
        heavy, results["heavy_model"] = heavy_bundle(work / "heavy")
        j2k = work / "j2k"
        if args.only in (None, "cheap"):
            write_studies(j2k, 4 if args.quick else 20, seed=1, size=(1664, 1280),
                          variants=["hologic"], workers=WORKERS)
        if args.only in (None, "cheap"):
            results["overlap_cheap_model"] = overlap(j2k, cheap, work)
        native = work / "native"
        if args.only in (None, "heavy"):
            write_studies(native, 3 if args.quick else 12, seed=2, size=(1664, 1280),
                          variants=["planmed"], workers=WORKERS)
            results["overlap_heavy_model"] = overlap(native, heavy, work)
        memory = {}
        for n in () if args.only not in (None, "memory") else (20, 200) if args.quick else (200, 2000):
            folder = work / f"mem{n}"
            write_studies(folder, n, seed=3, size=(256, 208), workers=WORKERS)
            start = time.perf_counter()
            memory[str(n)] = {"peak_rss_mb": peak_rss_mb(folder, cheap, work / f"mem{n}.parquet"),
                              "seconds": time.perf_counter() - start}
        if memory:
            results["memory"] = memory
    print(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

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
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]

from heavy_member import flops_per_view, heavy_member  # noqa: E402
from onnx_members import write_test_bundle  # noqa: E402

from mammo_batch.engine.bundle import load_bundle, sha256_file, write_bundle_json  # noqa: E402
from mammo_batch.engine.dicom import discover  # noqa: E402
from mammo_batch.engine.runtimes import select_runtime  # noqa: E402
from mammo_batch.engine.schedule.run import (  # noqa: E402
    Scheduler,
    SchedulerOptions,
    StudyJob,
    _init_worker,
    _prepare,
)
from mammo_batch.engine.studies import group_studies  # noqa: E402
from mammo_batch.engine.synth import write_studies  # noqa: E402

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
    write_bundle_json(directory, {
        "format_version": 1, "name": "heavy-benchmark", "created": "2026-11-28T00:00:00Z",
        "description": "random-weight compute load for benchmarks, not a model",
        "members": [{
            "name": "heavy", "fold": 0, "arch": "conv-stack",
            "input": {"height": 1536, "width": 768, "channels": 1, "dtype": "uint8",
                      "value_range": [0, 255]},
            "preprocess": {"window": "dicom", "crop": True, "orientation": "chest_wall_left"},
            "artifacts": {"onnx": "heavy.onnx", "torch": None, "tensorrt": []},
            "sha256": {"heavy.onnx": sha256_file(directory / "heavy.onnx")},
            "metrics": {},
        }],
        "ensemble": "mean", "aggregation": {"breast": "mean", "study": "max"}, "threshold": 0.5,
        "provenance": {},
    })
    return directory, kind


def overlap(studies: Path, bundle_dir: Path) -> dict:
    bundle = load_bundle(bundle_dir)
    runtime, _ = select_runtime("onnx", bundle, threads=WORKERS)
    runners: dict = {}
    for member in bundle.members:
        runner = runtime.load(member, bundle.path)
        runners.setdefault(runner.input_size, []).append(runner)
    groups, _ = group_studies(discover([studies], workers=1))
    paths = [v.path for s in groups for v in s.scorable]

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(WORKERS, mp_context=context, initializer=_init_worker) as pool:
        list(pool.map(_prepare, paths[:WORKERS], [list(runners)] * WORKERS,
                      [bundle.settings] * WORKERS))  # start the workers
        start = time.perf_counter()
        inputs = list(pool.map(_prepare, paths, [list(runners)] * len(paths),
                               [bundle.settings] * len(paths)))
        prepare_rate = len(paths) / (time.perf_counter() - start)

    start = time.perf_counter()
    for size, members in runners.items():
        stacked = np.stack([x[size] for x in inputs])
        for runner in members:
            for i in range(0, len(stacked), BATCH):
                runner.predict(stacked[i : i + BATCH])
    model_rate = len(paths) / (time.perf_counter() - start)

    scheduler = Scheduler(runners, bundle.settings, SchedulerOptions(workers=WORKERS, batch_size=BATCH))
    scored = []
    start = time.perf_counter()
    scheduler.run([StudyJob(s, "") for s in groups], scored.extend)
    seconds = time.perf_counter() - start  # includes starting the worker processes
    end_to_end = sum(len(r.views) for r in scored) / seconds
    slowest = min(prepare_rate, model_rate)
    return {"views": len(paths), "prepare_views_per_s": prepare_rate, "model_views_per_s": model_rate,
            "end_to_end_views_per_s": end_to_end, "ratio_to_slowest_stage": end_to_end / slowest}


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
            results["overlap_cheap_model"] = overlap(j2k, cheap)
        native = work / "native"
        if args.only in (None, "heavy"):
            write_studies(native, 3 if args.quick else 12, seed=2, size=(1664, 1280),
                          variants=["planmed"], workers=WORKERS)
            results["overlap_heavy_model"] = overlap(native, heavy)
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

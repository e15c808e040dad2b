"""`--engine ray` vs `--engine local` on one machine: Ray's overhead, not a cluster's speed-up.

    python benchmarks/bench_ray.py [--quick] [--out benchmarks/results/ray.json]

Two synthetic backlogs, each scored by both engines with the same bundle (two mean-intensity test
members: the model is nearly free, so decode + pixel path + scheduling are what is measured):
  - "mammo": 1024x832 J2K/RLE/... views, decode-dominated (per-view work as in production, smaller images);
  - "tiny": 128x104 views, where per-study scheduling overhead dominates.
The local engine uses 2 decode processes; Ray gets a local cluster of 4 logical CPUs (ray.md §4), 2 prepare
actors (each with one decode process) and one scorer actor. Reported: views/s (scoring phase and whole run),
discovery time, Ray start-up, and per-study overhead = (ray - local) scoring seconds / studies.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from onnx_members import write_test_bundle  # noqa: E402

from mammo_batch import score  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402

WORKERS = 2
MEMBERS = [dict(name="whole", fold=0, height=512, width=256, dtype="uint8"),
           dict(name="upper", fold=1, height=256, width=128, dtype="uint8", region=(0, 128, 0, 64))]


def run(engine: str, studies: Path, bundle: Path, out: Path) -> dict:
    summary = score([studies], out=out, models=bundle, engine=engine, workers=WORKERS, progress=False,
                    rescore=True, batch_size=8)
    timings = summary.timings
    return {"engine": engine, "studies": summary.studies, "views": summary.views,
            "discovery_s": timings["discovery_s"], "scoring_s": timings["scoring_s"], "wall_s": timings["wall_s"],
            "views_per_s_scoring": round(summary.views / timings["scoring_s"], 2),
            "views_per_s_wall": round(summary.views / timings["wall_s"], 2), "cluster": summary.cluster}


def backlog(name: str, root: Path, n: int, size: tuple[int, int], bundle: Path, repeats: int) -> dict:
    studies = root / name
    write_studies(studies, n, seed=0, size=size, workers=WORKERS)
    runs = []
    for repeat in range(repeats):
        for engine in ("local", "ray"):
            result = run(engine, studies, bundle, root / f"{name}-{engine}-{repeat}.parquet")
            print(f"{name:5s} {engine:5s} {result['views']:4d} views  scoring {result['scoring_s']:6.2f} s "
                  f"({result['views_per_s_scoring']:6.2f} views/s)  wall {result['wall_s']:6.2f} s  "
                  f"discovery {result['discovery_s']:5.2f} s", flush=True)
            runs.append(result)
    best = {engine: min((r for r in runs if r["engine"] == engine), key=lambda r: r["scoring_s"])
            for engine in ("local", "ray")}
    overhead = (best["ray"]["scoring_s"] - best["local"]["scoring_s"]) / n
    return {"studies": n, "size": list(size), "runs": runs,
            "ray_over_local_views_per_s": round(best["ray"]["views_per_s_scoring"]
                                                / best["local"]["views_per_s_scoring"], 3),
            "ray_per_study_overhead_s": round(overhead, 4),
            "ray_scoring_s_per_study": round(best["ray"]["scoring_s"] / n, 4),
            "local_scoring_s_per_study": round(best["local"]["scoring_s"] / n, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "ray.json")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=4, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    startup = time.perf_counter() - started
    print(f"ray.init (local, 4 logical CPUs): {startup:.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = write_test_bundle(root / "bundle", MEMBERS, threshold=0.5)
        results = {
            "mammo": backlog("mammo", root, 6 if args.quick else 16, (1024, 832), bundle, 1 if args.quick else 2),
            "tiny": backlog("tiny", root, 12 if args.quick else 40, (128, 104), bundle, 1 if args.quick else 2),
        }
    ray.shutdown()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                          "note": "shared 2-core box, other sessions running: noisy"},
              "ray_init_s": round(startup, 2), "workers": WORKERS, "backlogs": results}
    for name, result in results.items():
        print(f"{name}: ray/local views/s {result['ray_over_local_views_per_s']:.2f}, ray overhead "
              f"{result['ray_per_study_overhead_s'] * 1000:.0f} ms/study (ray {result['ray_scoring_s_per_study']:.3f} "
              f"s/study, local {result['local_scoring_s_per_study']:.3f} s/study)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

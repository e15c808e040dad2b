"""The nightly state at backlog scale: `score` end to end (planning included) on header-only files.

Header-only MG files (no pixel data: discovery records them as `failed no_pixel_data`, no model runs)
isolate what the state costs: discovery, reconciliation against the stored file rows, grouping every
file into studies, deriving views and studies, writing the outputs. Two measurements, each run in a
fresh process (peak RSS is the process's own):

1. night 1 on 10k, 100k and 300k files, a fresh --out each: peak RSS and wall time;
2. on the 300k history, a second night whose input path is a new folder with 1% more files, against
   scoring that folder alone into a fresh output: the ratio of wall times.

    python benchmarks/bench_nightly.py [--sizes 10000,100000,300000] [--workers 2]

Prints one JSON line per run and writes benchmarks/results/nightly.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VIEWS_PER_STUDY = 4


def measure(roots: list[str], out: str, workers: int) -> dict:
    """Runs in its own process: one `score` call through the API."""
    import mammo_batch
    from mammo_batch.engine.ensemble import Ensemble

    bundle = os.environ["BENCH_BUNDLE"]
    ensemble = Ensemble.load(bundle, "onnx", 1)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    summary = mammo_batch.score(roots, out=out, models=ensemble, workers=workers, progress=False)
    seconds = time.perf_counter() - start
    return {"files": summary.files, "studies": summary.studies, "wall_s": round(seconds, 2),
            "discovery_s": summary.timings.get("discovery_s"), "write_s": summary.timings.get("write_s"),
            "file_counts": summary.file_counts, "rss_after_imports_mb": round(baseline, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def run(roots: list[Path], out: Path, workers: int, bundle: Path) -> dict:
    command = [sys.executable, __file__, "--measure", str(out), "--workers", str(workers), *map(str, roots)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "BENCH_BUNDLE": str(bundle)})
    if result.returncode:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=None, help="Folder for the generated files (removed after).")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    parser.add_argument("roots", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.roots, args.measure, args.workers)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_discovery_memory import generate  # the same file generator, header-only here
    from onnx_members import write_test_bundle

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-nightly-"))
    bundle = write_test_bundle(work / "bundle", [dict(name="m", height=32, width=16)])
    nights, results = [], {}
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            root = work / f"n{n}"
            generate(root, n, header_only=True)
            out = work / f"out{n}" / "scores.parquet"
            out.parent.mkdir()
            night = run([root], out, args.workers, bundle) | {"size": n}
            print(json.dumps(night), flush=True)
            nights.append(night)
            last_root, last_out, last_n = root, out, n
        new = work / "incoming"
        generate(new, last_n // 100, first_study=10_000_000 // VIEWS_PER_STUDY, header_only=True)
        second = run([new], last_out, args.workers, bundle)
        alone_out = work / "alone" / "scores.parquet"
        alone_out.parent.mkdir()
        alone = run([new], alone_out, args.workers, bundle)
        results = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg(), "nights": nights,
                   "second_night_on_history": second, "new_files_alone": alone,
                   "second_night_ratio": round(second["wall_s"] / alone["wall_s"], 2),
                   "peak_rss_growth": round((nights[-1]["peak_rss_mb"] - nights[0]["peak_rss_mb"])
                                            / nights[0]["peak_rss_mb"], 4)}
        print(f"peak RSS {nights[0]['peak_rss_mb']} MB at {nights[0]['files']} files -> "
              f"{nights[-1]['peak_rss_mb']} MB at {nights[-1]['files']} files "
              f"(growth {results['peak_rss_growth']:.1%}); second night +{last_n // 100} files on a {last_n}-file "
              f"history {second['wall_s']} s vs {alone['wall_s']} s alone (x{results['second_night_ratio']})")
        del last_root
    finally:
        shutil.rmtree(work, ignore_errors=True)
    target = Path(__file__).parent / "results" / "nightly.json"
    target.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

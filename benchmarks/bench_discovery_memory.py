"""Discovery memory at backlog scale: peak RSS for 10k, 100k and 300k small header-only files.

Files are generated fast: one small MG file (4x4 native pixels) is written with pydicom, then
copied with its identifiers patched in place (fixed-width placeholders), 4 views per study, one
study per folder. Each size is measured in a fresh process: discover -> plan_studies -> every
study formed once. Prints and writes JSON (benchmarks/results/discovery_memory.json): peak RSS
of the main process (and of the largest worker), seconds, files/s and files/s per worker.

    python benchmarks/bench_discovery_memory.py [--sizes 10000,100000,300000] [--workers 2]
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

import numpy as np

PLACEHOLDERS = {"patient": b"PID0000000", "accession": b"ACC0000000",
                "study": b"1.2.826.0.1.3680043.9.7.1000000000", "sop": b"1.2.826.0.1.3680043.9.7.2000000000"}
VIEWS = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]


def template(lat: str, view: str, header_only: bool = False) -> bytes:
    from mammo_batch.synth import make_view_dataset

    ds = make_view_dataset(np.full((4, 4), 100, np.uint16), "hologic", lat, view,
                           patient_id=PLACEHOLDERS["patient"].decode(),
                           accession_number=PLACEHOLDERS["accession"].decode(),
                           study_instance_uid=PLACEHOLDERS["study"].decode(),
                           sop_instance_uid=PLACEHOLDERS["sop"].decode(),
                           transfer_syntax="ExplicitVRLittleEndian")
    if header_only:
        del ds.PixelData
    with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
        ds.save_as(handle.name, enforce_file_format=True)
        return Path(handle.name).read_bytes()


def generate(root: Path, n_files: int, first_study: int = 0, header_only: bool = False) -> None:
    templates = [template(lat, view, header_only) for lat, view in VIEWS]
    for study in range(first_study, first_study + n_files // len(VIEWS)):
        folder = root / f"{study // 1000:04d}" / f"{study:07d}"
        folder.mkdir(parents=True)
        for index, data in enumerate(templates):
            for name, value in PLACEHOLDERS.items():
                number = study * len(VIEWS) + index if name == "sop" else study
                data = data.replace(value, value[:-7] + b"%07d" % number)
            (folder / f"{index}.dcm").write_bytes(data)


def measure(root: str, workers: int) -> dict:
    """Runs in its own process: discovery, grouping and forming every study."""
    from mammo_batch.engine.dicom import discover
    from mammo_batch.engine.studies import plan_studies

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    catalog = discover([root], workers=workers, chunksize=64)
    found = time.perf_counter() - start
    plan = plan_studies(catalog)
    views = sum(len(s.scorable) for s in plan.studies())
    seconds = time.perf_counter() - start
    return {"files": len(catalog), "studies": len(plan), "scorable_views": views, "workers": workers,
            "spilled": catalog.spilled, "discovery_s": round(found, 2), "total_s": round(seconds, 2),
            "files_per_s": round(len(catalog) / found, 1),
            "files_per_s_per_worker": round(len(catalog) / found / workers, 1),
            "rss_after_imports_mb": round(baseline, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_rss_worker_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default=None, help="Folder for the generated files (removed after).")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.workers)))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-discovery-"))
    results = []
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            root = work / f"n{n}"
            start = time.perf_counter()
            generate(root, n)
            generated = time.perf_counter() - start
            out = subprocess.run([sys.executable, __file__, "--measure", str(root), "--workers",
                                  str(args.workers)], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout) | {"generate_s": round(generated, 1)}
            print(json.dumps(result), flush=True)
            results.append(result)
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first, last = results[0], results[-1]
    growth = (last["peak_rss_mb"] - first["peak_rss_mb"]) / first["peak_rss_mb"]
    summary = {"cpu_count": os.cpu_count(), "runs": results,
               "peak_rss_growth": round(growth, 4), "from_files": first["files"], "to_files": last["files"]}
    print(f"peak RSS {first['peak_rss_mb']} MB at {first['files']} files -> {last['peak_rss_mb']} MB at "
          f"{last['files']} files: growth {growth:.1%}")
    target = Path(__file__).parent / "results" / "discovery_memory.json"
    target.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

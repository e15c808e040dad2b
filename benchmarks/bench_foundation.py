"""Foundation throughput: header discovery, CPU decode per syntax, preprocessing, worker scaling.

    python benchmarks/bench_foundation.py [--quick] [--out benchmarks/results/foundation.json]

Prints a table and writes the numbers as JSON. Images are synthetic phantoms at a real
detector size (3328 x 2560 = 8.5 Mpixel) written by mammo_batch.synth; decode and
preprocessing are timed in one process on one core (OpenCV single-threaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from mammo_batch.engine.dicom import discover, read_and_decode
from mammo_batch.engine.pixels import preprocess
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.synth import make_view_dataset, phantom_view, write_studies

FULL = (3328, 2560)
SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
            RLELossless, JPEG2000Lossless, JPEGLSLossless]
MODEL_SIZES = [(2048, 1024), (1536, 768)]


def timed(fn, repeat: int) -> float:
    """Median wall seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_discovery(work: Path, n_studies: int, copies: int) -> dict:
    """Header reads of small synthetic files, the studies copied `copies` times over."""
    folder = work / "discovery"
    write_studies(folder / "0", n_studies, seed=1, size=(512, 416), workers=os.cpu_count() or 1)
    for copy in range(1, copies):
        shutil.copytree(folder / "0", folder / str(copy))
    out = {}
    for workers in (1, 2):
        seconds = timed(lambda w=workers: discover([folder], workers=w, chunksize=16), 2)
        n = len(discover([folder], workers=1))
        out[f"workers_{workers}"] = {"files": n, "seconds": seconds, "files_per_s": n / seconds}
    return out


def write_full_size(work: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    image = phantom_view(rng, FULL, "L", "MLO")
    paths = {}
    for syntax in SYNTAXES:
        ds = make_view_dataset(image, "hologic", "L", "MLO", transfer_syntax=syntax)
        path = work / f"{syntax.name.replace(' ', '_')}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths[syntax.name] = path
    return paths


def bench_decode(paths: dict[str, Path], repeat: int) -> dict:
    out = {}
    for name, path in paths.items():
        ds = pydicom.dcmread(path)
        megapixels = ds.Rows * ds.Columns / 1e6
        seconds = timed(lambda p=path: read_and_decode(p), repeat)
        out[name] = {"seconds": seconds, "megapixels_per_s": megapixels / seconds,
                     "file_mb": path.stat().st_size / 1e6}
    return out


def bench_preprocess(paths: dict[str, Path], repeat: int) -> dict:
    ds, stored = read_and_decode(paths[JPEG2000Lossless.name])
    one = timed(lambda: preprocess(ds, stored, MODEL_SIZES[:1]), repeat)
    two = timed(lambda: preprocess(ds, stored, MODEL_SIZES), repeat)
    return {"megapixels": stored.size / 1e6, "one_size_ms": one * 1e3, "two_sizes_ms": two * 1e3}


def bench_scaling(paths: dict[str, Path], n_views: int) -> dict:
    files = [str(paths[JPEG2000Lossless.name])] * n_views
    out = {}
    for workers in (1, 2):
        with ProcessPoolExecutor(max_workers=workers, initializer=cv2.setNumThreads,
                                 initargs=(1,)) as pool:
            list(pool.map(_prepare, files[:workers]))  # warm the workers
            start = time.perf_counter()
            list(pool.map(_prepare, files))
            seconds = time.perf_counter() - start
        out[f"workers_{workers}"] = {"views": n_views, "views_per_s": n_views / seconds}
    out["speedup"] = out["workers_2"]["views_per_s"] / out["workers_1"]["views_per_s"]
    return out


def _prepare(path: str) -> None:
    prepare_file(path, MODEL_SIZES[:1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer files and repeats")
    default_out = Path(__file__).parent / "results" / "foundation.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    repeat = 2 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "pydicom": pydicom.__version__, "opencv": cv2.__version__}}
        results["discovery"] = bench_discovery(work, 20, 4 if args.quick else 15)
        paths = write_full_size(work)
        results["decode_one_core"] = bench_decode(paths, repeat)
        results["preprocess_one_core"] = bench_preprocess(paths, repeat + 2)
        results["decode_and_preprocess_scaling"] = bench_scaling(paths, 6 if args.quick else 12)
    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {args.out}")


def render(r: dict) -> str:
    lines = ["header discovery (files/s):"]
    for key, v in r["discovery"].items():
        lines.append(f"  {key}: {v['files_per_s']:.0f} files/s ({v['files']} files)")
    lines.append(f"decode, one core, {FULL[0]}x{FULL[1]} (Mpixel/s, s per view, file MB):")
    for name, v in r["decode_one_core"].items():
        lines.append(f"  {name:<45} {v['megapixels_per_s']:7.1f}  {v['seconds']:.3f} s  "
                     f"{v['file_mb']:.1f} MB")
    p = r["preprocess_one_core"]
    lines.append(f"preprocess after decode, one core, {p['megapixels']:.1f} Mpixel view: "
                 f"{p['one_size_ms']:.0f} ms to 2048x1024, {p['two_sizes_ms']:.0f} ms to "
                 "2048x1024 + 1536x768 (target <= 150 ms)")
    s = r["decode_and_preprocess_scaling"]
    one, two = s["workers_1"]["views_per_s"], s["workers_2"]["views_per_s"]
    lines.append(f"decode + preprocess (J2K), views/s: 1 worker {one:.2f}, "
                 f"2 workers {two:.2f} (x{s['speedup']:.2f})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

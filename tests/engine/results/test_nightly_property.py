"""The nightly state against an independent oracle: random sequences of nights (tests/nightly_world.py).

Each sequence adds, deletes, modifies, renames and moves files, changes an accession in place, adds a
second accession to a study, splits studies over two roots, adds intact and damaged duplicates, and runs
nights on one or both roots with either of two bundles, another threshold, breast aggregation or view
filter. After every night scores.parquet and views.parquet must equal the oracle's rows. The long
profile (thousands of sequences) is benchmarks/bench_nightly_property.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from nightly_world import BUNDLES, calibrate, run_sequence
from onnx_members import write_test_bundle

from mammo_batch import Ensemble

SEQUENCES = int(os.environ.get("MAMMO_BATCH_PROPERTY_SEQUENCES", "20"))
NIGHTS = 4
@pytest.fixture(scope="module")
def world_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nightly")
    bundles = {name: Ensemble.load(write_test_bundle(folder / name, spec["members"], threshold=spec["threshold"],
                                                     name=f"bundle-{name}"), runtime="onnx", threads=1)
               for name, spec in BUNDLES.items()}
    return bundles, calibrate(folder, bundles)


@pytest.mark.parametrize("seed", range(SEQUENCES))
def test_random_nights_match_the_oracle(world_setup, tmp_path: Path, seed: int) -> None:
    bundles, probs = world_setup
    run_sequence(tmp_path, bundles, probs, seed, NIGHTS)

"""The plan/render split of the pixel path gives the pre-split pipeline's output, bit for bit.

tests/data/pixel_path_golden.json holds sha256 prefixes of the model inputs the single-function
pipeline produced (commit 0856fbe) for synthetic studies (synth seed 3) and real CBIS-DDSM files,
over every window, dtype and crop setting at two sizes. Updated once since, on purpose, by the
mirror-exact geometry (plan.py: mask and box found on the image as rendered): every render of a
view stored chest wall left kept its hash (144 of 144); of the views stored chest wall right,
12 of 216 renders changed.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels import PreprocessSettings, plan_view, render

GOLDEN = json.loads((Path(__file__).resolve().parents[2] / "data" / "pixel_path_golden.json").read_text())
SIZES = [(256, 128), (192, 160)]


@pytest.fixture(scope="module")
def golden_files(tmp_path_factory, cbis_cases) -> dict[str, Path]:
    studies = tmp_path_factory.mktemp("golden") / "studies"
    subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "synth", str(studies), "--studies", "6",
                    "--size", "512x416", "--seed", "3"], check=True, capture_output=True)
    files = sorted(studies.rglob("*.dcm"))[:12] + sorted(cbis_cases.rglob("*.dcm"))[:3]
    return {path.name: path for path in files}


def test_plan_then_render_equals_the_pre_split_pipeline(golden_files):
    names = {key.split("|")[0] for key in GOLDEN}
    assert names == set(golden_files), "the fixture files changed: the golden hashes no longer apply"
    checked = 0
    for name, path in golden_files.items():
        ds, stored = read_and_decode(path)
        for window in ("dicom", "minmax"):
            for crop in (True, False):
                settings = PreprocessSettings(window=window, crop=crop)
                plan = plan_view(ds, stored, settings)  # one plan, every dtype rendered from it
                for dtype in ("uint8", "uint16", "float32"):
                    for size, image in render(stored, plan, SIZES, dtype).items():
                        key = f"{name}|{window}|{dtype}|{crop}|{size}"
                        assert hashlib.sha256(image.tobytes()).hexdigest()[:16] == GOLDEN[key], key
                        checked += 1
    assert checked == len(GOLDEN)

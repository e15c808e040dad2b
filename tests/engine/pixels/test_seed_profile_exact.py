"""The seed profile's last steps compared EXACTLY, on real CBIS-DDSM mammograms: from the seed's
2048 x 1024 PNG (seed_png) the seed's own code is a bilinear cv2.resize and a per-image min-max to
0..255 truncated by `.astype(np.uint8)`, and the same float64 arithmetic here gives the same bits.
tests/engine/pixels/test_seed_profile.py allows +-1 per pixel for the whole pipeline (decoders and contours
differ in places), which would let rounding instead of truncating pass on 12-23% of pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels.seed_profile import seed_png, seed_preprocess

SIZES = [(1536, 768), (512, 256)]


def seed_last_steps(png: np.ndarray, size: int) -> np.ndarray:
    """The seed's dataset __getimg after cv2.imread of its PNG, verbatim."""
    loaded = cv2.resize(png.astype(np.uint16), (size // 2, size))
    scaled = (loaded - np.min(loaded)) / (np.max(loaded) - np.min(loaded)) * 255.0
    return scaled.astype(np.uint8)


@pytest.fixture(scope="module")
def views(cbis_cases: Path) -> list[tuple]:
    files = sorted(cbis_cases.rglob("*.dcm"))[:3]
    assert files
    return [read_and_decode(path) for path in files]


def test_the_last_steps_equal_the_seeds_bit_for_bit(views) -> None:
    for ds, stored in views:
        png = seed_png(ds, stored)
        assert png.dtype == np.uint16 and png.shape == (2048, 1024)
        ours = seed_preprocess(ds, stored, SIZES)
        for height, width in SIZES:
            want = seed_last_steps(png, height)
            np.testing.assert_array_equal(ours[(height, width)], want)


def test_truncation_is_observable_on_these_views(views) -> None:
    """The exact test above can fail: on these views rounding would change many pixels."""
    ds, stored = views[0]
    loaded = cv2.resize(seed_png(ds, stored).astype(np.uint16), (256, 512)).astype(np.float64)
    scaled = (loaded - loaded.min()) / (loaded.max() - loaded.min()) * 255.0
    assert (np.round(scaled).astype(np.uint8) != scaled.astype(np.uint8)).mean() > 0.05

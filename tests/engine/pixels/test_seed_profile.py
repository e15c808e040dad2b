"""The seed's preprocessing profile (engine/pixels/seed_profile.py) on real CBIS-DDSM mammograms.

The reference below re-expresses the seed's steps the way its own scripts run them (pydicom's
pixel_array, RETR_TREE contours, the masked bitwise_and, a PNG round trip through cv2), so a
difference in decoding, contour choice, padding or rounding shows up as unequal pixels.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels.seed_profile import seed_preprocess

SIZES = [(1536, 768), (512, 256)]


def seed_reference(path: Path, tmp_path: Path, size: int) -> np.ndarray:
    dcm = pydicom.dcmread(path)
    img = dcm.pixel_array
    if dcm.PhotometricInterpretation == "MONOCHROME1":
        img = np.amax(img) - img
    low, high = img.min(), img.max()
    img = ((img - low) * (65535.0 / (high - low)) + 0.0).astype(np.uint16)
    # the seed's segment_breast
    img8 = (img.astype("float32") / img.max() * 255).astype("uint8")
    _, binary = cv2.threshold(img8, int(img8.max() * 0.05), maxval=255, type=cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary.copy(), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    idx = int(np.argmax([cv2.contourArea(c) for c in contours]))
    mask = cv2.drawContours(np.zeros_like(binary), contours, idx, 255, -1)
    img = cv2.bitwise_and(img, img, mask=mask)
    x, y, w, h = cv2.boundingRect(contours[idx])
    img = img[y:y + h, x:x + w]
    # the seed's pad2rectangle, then the 1024 x 2048 PNG
    rows, cols = img.shape
    canvas = np.full((rows, rows // 2) if rows > 2 * cols else (cols * 2, cols), np.min(img))
    top, left = int((canvas.shape[0] - rows) / 2), int((canvas.shape[1] - cols) / 2)
    canvas[top:top + rows, left:left + cols] = img
    png = tmp_path / f"{path.stem}.png"
    cv2.imwrite(str(png), cv2.resize(canvas.astype(np.uint16), (1024, 2048)))
    # the seed's dataset __getimg at img_size S
    loaded = cv2.imread(str(png), cv2.IMREAD_ANYDEPTH)
    loaded = cv2.resize(loaded.astype(np.uint16), (size // 2, size))
    scaled = (loaded - np.min(loaded)) / (np.max(loaded) - np.min(loaded)) * 255.0
    return scaled.astype(np.uint8)


@pytest.fixture(scope="module")
def cbis_files(cbis_cases: Path) -> list[Path]:
    files = sorted(cbis_cases.rglob("*.dcm"))
    assert len(files) >= 4
    return files[:4]


def test_seed_profile_matches_the_seeds_steps(cbis_files: list[Path], tmp_path: Path) -> None:
    for path in cbis_files:
        ds, stored = read_and_decode(path)
        ours = seed_preprocess(ds, stored, SIZES)
        assert set(ours) == set(SIZES)
        for height, width in SIZES:
            got = ours[(height, width)]
            assert got.dtype == np.uint8 and got.shape == (height, width)
            want = seed_reference(path, tmp_path, height)
            close = np.abs(got.astype(int) - want.astype(int)) <= 1
            assert close.mean() >= 0.999, (path.name, height, close.mean())
            assert got.max() == 255 and got.min() == 0  # per-image min-max
            assert (got > 0).mean() > 0.2  # a breast, not an empty frame


def test_seed_profile_inverts_monochrome1(cbis_files: list[Path]) -> None:
    ds, stored = read_and_decode(cbis_files[0])
    normal = seed_preprocess(ds, stored, [(256, 128)])[(256, 128)]
    flipped = ds.copy()
    flipped.PhotometricInterpretation = "MONOCHROME1"
    inverted = seed_preprocess(flipped, stored.max() - stored, [(256, 128)])[(256, 128)]
    np.testing.assert_array_equal(inverted, normal)


def test_seed_profile_refuses_a_constant_image(cbis_files: list[Path]) -> None:
    ds, stored = read_and_decode(cbis_files[0])
    with pytest.raises(ValueError, match="constant"):
        seed_preprocess(ds, np.zeros_like(stored), [(256, 128)])

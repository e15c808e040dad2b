"""The torch render (the GPU path's) equals the numpy render within one grey level on >= 99.9% of
pixels, on the CPU device, for synthetic and real (CBIS-DDSM) views, every model dtype and size."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.pixels.plan import plan_view
from mammo_batch.engine.pixels.render import render
from mammo_batch.synth.dicom_writer import make_view_dataset
from mammo_batch.synth.phantom import phantom_view

torch = pytest.importorskip("torch")
from mammo_batch.engine.pixels.render_torch import render_torch  # noqa: E402  (needs torch)

SIZES = [(256, 128), (384, 224), (1024, 640)]  # shrink, shrink at another ratio, enlarge


def assert_close(ours: np.ndarray, reference: np.ndarray, dtype: str) -> None:
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    grey = {"uint8": 1, "uint16": 257, "float32": 1 / 255}[dtype]  # one uint8 grey level in each dtype
    diff = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
    assert (diff <= grey * 1.0001).mean() >= 0.999, f"max diff {diff.max()}, share within: {(diff <= grey).mean()}"


def check(ds, stored: np.ndarray, settings: PreprocessSettings) -> None:
    plan = plan_view(ds, stored, settings)
    reference = render(stored, plan, SIZES, settings.dtype)
    ours = render_torch(torch.from_numpy(stored.astype(np.int32)), plan, SIZES, settings.dtype)
    for size in SIZES:
        assert_close(ours[size].numpy(), reference[size], settings.dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("variant", ["hologic", "planmed", "flipped", "sigmoid"])
def test_synthetic_views(variant, dtype):
    image = phantom_view(np.random.default_rng(3), (600, 416), "R", "CC", bits_stored=14)
    ds = make_view_dataset(image, variant, "R", "CC", "right")
    check(ds, ds.pixel_array, PreprocessSettings(dtype=dtype))


def test_no_crop_and_minmax():
    image = phantom_view(np.random.default_rng(4), (500, 320), "L", "MLO", bits_stored=12)
    ds = make_view_dataset(image, "hologic", "L", "MLO")
    check(ds, ds.pixel_array, PreprocessSettings(window="minmax", crop=False))


@pytest.mark.slow
def test_real_cbis_ddsm_views(cbis_cases):
    for path in sorted(cbis_cases.rglob("*.dcm"))[:3]:
        ds, stored = read_and_decode(path)
        check(ds, stored, PreprocessSettings())

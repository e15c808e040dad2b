"""Stored values -> display: agrees with pydicom's modality LUT and VOI within one output step."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.sequence import Sequence
from pydicom.valuerep import DSfloat

from mammo_batch.engine.pixels.voi import VOI_MINMAX, to_display, voi_output_range

STEP = 1 / 65535


def dataset(bits: int = 12, photometric: str = "MONOCHROME2", **elements) -> Dataset:
    ds = Dataset()
    ds.BitsStored, ds.BitsAllocated, ds.PixelRepresentation = bits, 16, 0
    ds.PhotometricInterpretation = photometric
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def ramp(bits: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 2**bits, size=(64, 48), dtype=np.uint16)


def reference(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """pydicom on the whole image, scaled to [0, 1] by the VOI's nominal output range."""
    y_min, y_max = voi_output_range(ds)
    values = apply_modality_lut(stored, ds)
    if "VOILUTSequence" in ds:  # pydicom indexes a VOI LUT: give it integers
        values = values.astype(np.int64)
    out = (apply_voi_lut(values, ds) - y_min) / (y_max - y_min)
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_functions_agree_with_pydicom(function):
    ds = dataset(WindowCenter=1800, WindowWidth=1500, VOILUTFunction=function)
    stored = ramp()
    display = to_display(ds, stored) / 65535
    np.testing.assert_allclose(display, reference(ds, stored), atol=STEP)
    if function != "SIGMOID":  # a linear window clips both ends; a sigmoid only approaches them
        assert display.min() == 0 and display.max() == 1


def test_first_of_multi_valued_windows_is_used():
    ds = dataset(WindowCenter=MultiValue(DSfloat, [1000, 3000]),
                 WindowWidth=MultiValue(DSfloat, [400, 4000]))
    stored = ramp()
    display = to_display(ds, stored) / 65535
    inside = (stored > 850) & (stored < 1150)
    # The first window (1000 +- 200) spans the full output range.
    np.testing.assert_allclose(display[inside], (stored[inside] - 800.5) / 399 * 1.0, atol=0.01)
    np.testing.assert_allclose(display, reference(ds, stored), atol=STEP)


def test_voi_lut_sequence_and_rescale():
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = [int(65535 * (i / 4095) ** 0.5) for i in range(4096)]  # a gamma curve
    ds = dataset(VOILUTSequence=Sequence([lut]), RescaleSlope=1, RescaleIntercept=0)
    stored = ramp()
    display = to_display(ds, stored) / 65535
    np.testing.assert_allclose(display, np.sqrt(stored / 4095), atol=2 * STEP)
    np.testing.assert_allclose(display, reference(ds, stored), atol=STEP)


def test_monochrome1_is_inverted_after_the_window():
    kwargs = dict(WindowCenter=2048, WindowWidth=4096)
    stored = ramp()
    mono2 = to_display(dataset(**kwargs), stored).astype(int)
    mono1 = to_display(dataset(photometric="MONOCHROME1", **kwargs), stored).astype(int)
    np.testing.assert_array_equal(mono1, 65535 - mono2)


def test_min_max_when_no_window_or_when_asked():
    stored = ramp()
    plain = to_display(dataset(), stored)
    assert plain.min() == 0 and plain.max() == 65535
    windowed = dataset(WindowCenter=100, WindowWidth=50)
    np.testing.assert_array_equal(to_display(windowed, stored, VOI_MINMAX), plain)


def test_signed_and_rescaled_values():
    ds = dataset(bits=16, RescaleSlope=2, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    ds.PixelRepresentation = 1
    stored = np.random.default_rng(1).integers(-2000, 3000, size=(32, 32)).astype(np.int16)
    np.testing.assert_allclose(to_display(ds, stored) / 65535, reference(ds, stored), atol=STEP)

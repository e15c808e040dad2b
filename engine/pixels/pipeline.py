"""The pixel path, one code path for training and every runtime:

stored pixels -> modality LUT -> VOI -> MONOCHROME1 inversion (one lookup table) ->
breast mask on a small copy -> orientation (chest wall left) -> breast crop, markers
zeroed -> aspect-preserving anti-aliased resize + pad, once per distinct model size.

Normalisation and channel replication are not here: they live inside the exported model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from pydicom import Dataset

from mammo_batch.engine.pixels import voi
from mammo_batch.engine.pixels.mask import find_breast, small_copy
from mammo_batch.engine.pixels.orient import LEFT, Orientation, decide
from mammo_batch.engine.pixels.resize import pad_to, scale_to_fit

# Model input dtypes and the value that stands for full white in each (bundle value_range).
FULL_SCALE = {"uint8": 255, "uint16": 65535, "float32": 1.0}
DTYPES = tuple(FULL_SCALE)
MASK_GROW = 11  # pixels of the 512-px working copy


@dataclass(frozen=True)
class PreprocessSettings:
    """How a bundle member wants its views prepared (bundle.json `preprocess`)."""

    window: str = voi.VOI_DICOM  # voi.VOI_DICOM | voi.VOI_MINMAX
    crop: bool = True
    dtype: str = "uint8"  # model input: uint8 0..255, uint16 0..65535 or float32 0..1

    def __post_init__(self) -> None:
        if self.window not in (voi.VOI_DICOM, voi.VOI_MINMAX):
            raise ValueError(f"window must be 'dicom' or 'minmax', not {self.window!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {self.dtype!r}")


@dataclass(frozen=True)
class Prepared:
    """A view after the pixel path: one model input per requested (height, width)."""

    inputs: dict[tuple[int, int], np.ndarray]
    orientation: Orientation
    crop_box: tuple[int, int, int, int]  # (top, bottom, left, right) in stored pixels
    flipped: bool


def preprocess(
    ds: Dataset,
    stored: np.ndarray,
    sizes: Iterable[tuple[int, int]],
    settings: PreprocessSettings = PreprocessSettings(),
) -> Prepared:
    """Run the pixel path on one decoded view; resize once per distinct size."""
    if stored.ndim != 2:
        raise ValueError(f"expected a single-frame grayscale image, got shape {stored.shape}")
    table, lo = _display_table(ds, stored, settings.window)
    small, scale = small_copy(stored)
    if small.dtype.kind == "f":  # cv2 cannot resize 32-bit integers: it went through float
        small = np.clip(np.rint(small), lo, lo + len(table) - 1).astype(np.int64)
    breast = find_breast(voi.apply_table(table, small, lo), scale)
    orientation = decide(ds, breast)
    box = breast.bbox(stored.shape) if settings.crop else (0, *stored.shape[:1], 0, stored.shape[1])
    top, bottom, left, right = box
    image = voi.apply_table(table, stored[top:bottom, left:right], lo)
    keep = _mask_in_box(breast.mask, box, scale) if settings.crop else None
    flipped = orientation.chest_wall != LEFT
    if flipped:  # before resampling, so both orientations land on the same pixel grid
        image = image[:, ::-1]
        keep = keep[:, ::-1] if keep is not None else None
    inputs = {}
    for size in set(sizes):
        scaled = scale_to_fit(image, *size)
        if keep is not None:  # zero markers at the model size: cheaper than at the stored size
            mask = cv2.resize(np.ascontiguousarray(keep), scaled.shape[::-1],
                              interpolation=cv2.INTER_NEAREST)
            scaled = scaled * mask
        inputs[size] = _as_model_dtype(pad_to(scaled, *size), settings.dtype)
    return Prepared(inputs, orientation, box, flipped)


def _display_table(ds: Dataset, stored: np.ndarray, window: str) -> tuple[np.ndarray, int]:
    if stored.dtype.kind not in "iu":
        raise ValueError(f"stored pixels must be integers, got {stored.dtype}")
    lo, hi = int(stored.min()), int(stored.max())
    return voi.display_table(ds, lo, hi, window), lo


def _mask_in_box(mask: np.ndarray, box, scale: float) -> np.ndarray | None:
    """The dilated breast mask over the crop box (small-copy pixels); None if it keeps everything.

    Zeroing outside it removes markers and labels inside the box. The dilation (~2% of the
    long side) puts the cut in the background, not on the skin line, so a mask one pixel
    larger or smaller does not change the model input.
    """
    top, bottom, left, right = box
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (MASK_GROW, MASK_GROW))
    grown = cv2.dilate(mask, disk)
    y0, y1 = int(top / scale), int(np.ceil(bottom / scale))
    x0, x1 = int(left / scale), int(np.ceil(right / scale))
    local = grown[y0:y1, x0:x1]
    if local.size == 0 or local.all():
        return None
    return local


def _as_model_dtype(display: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint16":
        return display
    if dtype == "uint8":
        return ((display.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return display.astype(np.float32) / voi.DISPLAY_MAX

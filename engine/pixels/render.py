"""The second half of the pixel path: apply a Plan to the stored image at each model size (numpy/OpenCV).

lookup table -> crop -> flip -> aspect-preserving anti-aliased resize -> zero outside the breast mask
-> pad (chest wall flush left, centred vertically) -> the model's dtype. The GPU renders the same plan
with torch; tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from mammo_batch.engine.pixels import voi
from mammo_batch.engine.pixels.plan import Plan
from mammo_batch.engine.pixels.resize import pad_to, scale_to_fit
from mammo_batch.engine.pixels.settings import FULL_SCALE

Size = tuple[int, int]


def render(stored: np.ndarray, plan: Plan, sizes: Iterable[Size], dtype: str = "uint8") -> dict[Size, np.ndarray]:
    """One model input per distinct (height, width); each resized once from the cropped display image."""
    if dtype not in FULL_SCALE:
        raise ValueError(f"dtype must be one of {tuple(FULL_SCALE)}, not {dtype!r}")
    top, bottom, left, right = plan.box
    image = voi.apply_table(plan.table, stored[top:bottom, left:right], plan.lo)
    keep = plan.keep  # already in the frame as rendered
    if plan.flip:  # before resampling, so both orientations land on the same pixel grid
        image = image[:, ::-1]
    inputs = {}
    for size in set(sizes):
        scaled = scale_to_fit(image, *size)
        if keep is not None:  # zero markers at the model size: cheaper than at the stored size
            mask = cv2.resize(np.ascontiguousarray(keep), scaled.shape[::-1], interpolation=cv2.INTER_NEAREST)
            scaled = scaled * mask
        inputs[size] = as_model_dtype(pad_to(scaled, *size), dtype)
    return inputs


def as_model_dtype(display: np.ndarray, dtype: str) -> np.ndarray:
    """uint16 display values -> the model's input dtype (uint8 rounds, float32 is in [0, 1])."""
    if dtype == "uint16":
        return display
    if dtype == "uint8":
        return ((display.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return display.astype(np.float32) / voi.DISPLAY_MAX

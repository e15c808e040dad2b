"""The first half of the pixel path: everything decided about a view before any pixel is resized.

A `Plan` holds the display lookup table (modality LUT + VOI + MONOCHROME1, one entry per stored
value), the crop box, the breast mask over that box (markers and labels inside the box are zeroed
with it) and the flip that puts the chest wall on the left. It is computed on a small copy of the
image (long side 512 px, a few hundred KB), so a GPU decoder can make the small copy on the device,
plan on the CPU, and render the full image on the device with the same plan (render.py).

Geometry commutes with mirroring: the side is decided first (on the small copy of the stored
image), and the mask, box and keep-mask are then found on the small copy of the image as it
will be rendered, chest wall left. The small copy's block grid starts at the top-left corner
and drops the last columns, so it is not mirror-symmetric; a view stored mirrored therefore
gets its own small copy of the flipped image, not a mirror of the stored one. So a view and
its mirror image (lossless, with or without orientation tags) give bit-identical model inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from pydicom import Dataset

from mammo_batch.engine.pixels import voi
from mammo_batch.engine.pixels.mask import BreastMask, find_breast, small_copy
from mammo_batch.engine.pixels.orient import LEFT, Orientation, decide
from mammo_batch.engine.pixels.settings import PreprocessSettings

MASK_GROW = 11  # pixels of the 512-px working copy

Box = tuple[int, int, int, int]  # (top, bottom, left, right) in stored pixels
SmallCopy = tuple[np.ndarray, float]  # (long side <= 512 copy, full pixels per copy pixel)


@dataclass(frozen=True)
class Plan:
    table: np.ndarray  # uint16 display value of stored value `lo + i`
    lo: int  # the smallest stored value of the image
    box: Box  # the crop, in stored pixels
    # uint8 {0,1} breast mask over the crop as rendered (after the flip, chest wall left), in
    # small-copy pixels; None keeps all
    keep: np.ndarray | None
    flip: bool  # mirror left-right (after the crop) so that the chest wall is on the left
    orientation: Orientation  # why `flip` was decided (for preview and logs)


def plan_view(ds: Dataset, stored: np.ndarray, settings: PreprocessSettings = PreprocessSettings()) -> Plan:
    """Plan one decoded view (stored values, shape (rows, columns))."""
    if stored.ndim != 2:
        raise ValueError(f"expected a single-frame grayscale image, got shape {stored.shape}")
    if stored.dtype.kind not in "iu":
        raise ValueError(f"stored pixels must be integers, got {stored.dtype}")
    small, scale = small_copy(stored)
    return plan_from_small(ds, small, scale, stored.shape, int(stored.min()), int(stored.max()), settings,
                           mirrored_small=lambda: small_copy(stored[:, ::-1]))


def plan_from_small(ds: Dataset, small: np.ndarray, scale: float, shape: tuple[int, int], lo: int, hi: int,
                    settings: PreprocessSettings = PreprocessSettings(), *,
                    mirrored_small: Callable[[], SmallCopy]) -> Plan:
    """Plan from a small copy (made on the CPU or the GPU) and the full image's shape and value range.

    `mirrored_small` makes the small copy of the full image mirrored left-right, the same way
    `small` was made; it is called only when the chest wall is stored on the right.
    """
    table = voi.display_table(ds, lo, hi, settings.window)
    breast = _breast(small, scale, table, lo)
    orientation = decide(ds, breast)
    flip = orientation.chest_wall != LEFT
    if not settings.crop:
        return Plan(table, lo, (0, shape[0], 0, shape[1]), None, flip, orientation)
    if flip:  # the mask again, on the image as it will be rendered
        breast = _breast(*mirrored_small(), table, lo)
    box = breast.bbox(shape)  # in the frame as rendered: chest wall left
    keep = _mask_in_box(breast.mask, box, breast.scale)
    return Plan(table, lo, _mirror(box, shape[1]) if flip else box, keep, flip, orientation)


def _breast(small: np.ndarray, scale: float, table: np.ndarray, lo: int) -> BreastMask:
    if small.dtype.kind == "f":  # cv2 cannot resize 32-bit integers: it went through float
        small = np.clip(np.rint(small), lo, lo + len(table) - 1).astype(np.int64)
    return find_breast(voi.apply_table(table, small, lo), scale)


def _mirror(box: Box, width: int) -> Box:
    """A box in the mirrored image -> the same pixels' box in the stored image (exact)."""
    top, bottom, left, right = box
    return top, bottom, width - right, width - left


def _mask_in_box(mask: np.ndarray, box: Box, scale: float) -> np.ndarray | None:
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

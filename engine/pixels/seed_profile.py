"""The seed's preprocessing (bundle `preprocess.profile = "seed"`), for models trained with it.

    inputs = seed_preprocess(ds, stored, [(1536, 768)])      # {(1536, 768): uint8 (H, W)}

The seed (Kaggle_SPR) made one 16-bit PNG per view and resized it again when loading; its
checkpoints only score correctly on the same pixels, so this repeats its steps, in order:
1. stored values, no modality LUT, no VOI; MONOCHROME1 inverted as max - value;
2. min-max to uint16 (float64 arithmetic, truncated);
3. breast mask: an 8-bit copy (value / max * 255, float32, truncated), threshold at 5% of its
   maximum, the largest outer contour filled; zero outside it, crop to its bounding box;
4. pad to 2:1 (H = 2W), centred, with the crop's minimum; resize to 2048 x 1024 (bilinear,
   uint16): the seed's PNG;
5. per model size S x S/2: bilinear resize of that PNG, then per-image min-max to 0..255,
   truncated to uint8.
No orientation flip. (x / 255 - 0.5) / 0.5 and the 1 -> 3 channel repeat are inside the
exported model (RecallNet's defaults for uint8 input).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
from pydicom import Dataset

PNG_SIZE = (2048, 1024)  # (H, W) of the seed's stored PNGs
THRESHOLD = 0.05  # of the 8-bit copy's maximum
UINT16_MAX = 65535.0


def seed_preprocess(ds: Dataset, stored: np.ndarray,
                    sizes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """One decoded view -> the seed's uint8 (H, W) model input for each requested (H, W)."""
    if stored.ndim != 2:
        raise ValueError(f"expected a single-frame grayscale image, got shape {stored.shape}")
    png = seed_png(ds, stored)
    return {size: _to_uint8(_resize(png, *size)) for size in dict.fromkeys(sizes)}


def seed_png(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Steps 1-4: the seed's 2048 x 1024 uint16 breast image."""
    image = _minmax_uint16(_inverted(ds, stored))
    breast = _largest_region(image)
    return _resize(_pad_two_to_one(breast), *PNG_SIZE)


def _inverted(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        return stored.max() - stored
    return stored


def _minmax_uint16(image: np.ndarray) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    if hi == lo:
        raise ValueError("the image is one constant value: no breast to find")
    return ((image.astype(np.float64) - lo) * (UINT16_MAX / (hi - lo))).astype(np.uint16)


def _largest_region(image: np.ndarray) -> np.ndarray:
    """Zero outside the largest bright region and crop to its bounding box (step 3)."""
    eight = (image.astype(np.float32) / np.float32(image.max()) * np.float32(255)).astype(np.uint8)
    _, binary = cv2.threshold(eight, int(eight.max() * THRESHOLD), 255, cv2.THRESH_BINARY)
    # The largest contour of a tree is always an outer one (a hole lies inside its parent).
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise ValueError("no region above the seed's 5% threshold")
    largest = max(contours, key=cv2.contourArea)
    mask = np.zeros(binary.shape, np.uint8)
    cv2.drawContours(mask, [largest], 0, 1, thickness=cv2.FILLED)
    x, y, w, h = cv2.boundingRect(largest)
    return image[y:y + h, x:x + w] * mask[y:y + h, x:x + w]


def _pad_two_to_one(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    out_h, out_w = (h, h // 2) if h > 2 * w else (2 * w, w)
    out = np.full((out_h, out_w), image.min(), dtype=image.dtype)
    top, left = int((out_h - h) / 2), int((out_w - w) / 2)
    out[top:top + h, left:left + w] = image
    return out


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    if hi == lo:
        return np.zeros(image.shape, np.uint8)
    return ((image.astype(np.float64) - lo) / (hi - lo) * 255.0).astype(np.uint8)

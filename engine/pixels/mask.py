"""Find the breast on a small copy of the view: a mask that excludes markers, labels and noise.

The breast is the largest bright connected region touching a side edge (the chest wall);
burned-in markers and labels are separate, smaller components, and detector noise is
removed by a blur before thresholding. The pectoral muscle is connected to the breast
in an MLO view, so it stays in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Work on a copy whose long side is this many pixels: fast, and enough for a bounding box.
WORK_SIZE = 512
# Structures thinner than this (in small-copy pixels, ~2% of the long side) are not breast.
OPEN_SIZE = 11


@dataclass(frozen=True)
class BreastMask:
    mask: np.ndarray  # uint8 {0, 1}, on the small copy
    scale: float  # full-resolution pixels per small-copy pixel
    touches_left: float  # fraction of the left edge column band covered by the breast
    touches_right: float

    def bbox(self, full_shape: tuple[int, int], margin: float = 0.01) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) in full-resolution pixels, with a small margin."""
        ys, xs = np.nonzero(self.mask)
        if ys.size == 0:
            return 0, full_shape[0], 0, full_shape[1]
        pad = margin * max(full_shape)
        top = max(0, int((ys.min() * self.scale) - pad))
        left = max(0, int((xs.min() * self.scale) - pad))
        bottom = min(full_shape[0], int(np.ceil((ys.max() + 1) * self.scale + pad)))
        right = min(full_shape[1], int(np.ceil((xs.max() + 1) * self.scale + pad)))
        return top, bottom, left, right


def small_copy(image: np.ndarray) -> tuple[np.ndarray, float]:
    """An anti-aliased copy with long side <= WORK_SIZE, and its (integer) downscale factor.

    An integer factor lets OpenCV average whole k x k blocks (its fast area path); the
    last < k rows and columns are dropped, which a mask does not miss.
    """
    factor = int(np.ceil(max(image.shape) / WORK_SIZE))
    if factor <= 1:
        return np.ascontiguousarray(image), 1.0
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    src = image[: rows * factor, : cols * factor]  # OpenCV copies a mirrored (negative-stride) view itself
    if src.dtype not in (np.uint8, np.uint16, np.int16, np.float32):
        src = src.astype(np.float32)
    return cv2.resize(src, (cols, rows), interpolation=cv2.INTER_AREA), float(factor)


def find_breast(small: np.ndarray, scale: float = 1.0) -> BreastMask:
    """The breast region of a small display image (bright = tissue)."""
    img = cv2.GaussianBlur(small.astype(np.float32), (5, 5), 0)
    raw = (img > _threshold(img)).astype(np.uint8)
    # Opening removes specks and thin lines (film borders, rulers) that would join the
    # breast to other structures; the skin line it shaves off is restored from `raw`.
    # A zero border: a band along the image edge must be thick to survive, like any other.
    opened = cv2.morphologyEx(raw, cv2.MORPH_OPEN, _disk(OPEN_SIZE),
                              borderType=cv2.BORDER_CONSTANT, borderValue=0)
    breast = _main_component(opened)
    breast = cv2.dilate(breast, _disk(5)) & raw
    breast = _fill_holes(_main_component(breast))
    band = max(1, breast.shape[1] // 50)
    return BreastMask(
        mask=breast,
        scale=scale,
        touches_left=float(breast[:, :band].mean()),
        touches_right=float(breast[:, -band:].mean()),
    )


def _threshold(img: np.ndarray) -> float:
    """Between background and the faintest tissue: 10% of the way from background to tissue."""
    background, tissue = np.percentile(img, [2, 99])
    return float(background + 0.1 * (tissue - background))


def _main_component(mask: np.ndarray) -> np.ndarray:
    """The largest component, preferring one that touches the left or right edge."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    width = mask.shape[1]
    best, best_score = 0, -1.0
    for i in range(1, n):
        x, _, w, _, area = stats[i]
        touches_side = x == 0 or x + w == width
        score = area * (1.0 if touches_side else 0.25)
        if score > best_score:
            best, best_score = i, score
    return (labels == best).astype(np.uint8)


def _disk(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Dark fatty areas inside the breast belong to it."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return mask | holes.astype(np.uint8)

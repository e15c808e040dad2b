"""Aspect-preserving, anti-aliased resize and pad to a model's H x W."""

from __future__ import annotations

import cv2
import numpy as np


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale `image` to fit inside height x width keeping its aspect, then zero-pad.

    The chest wall is on the left edge, so the image sits flush left and is centred
    vertically: padding goes on the nipple side and above/below, never between the
    chest wall and the edge.
    """
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    out = np.zeros((height, width), dtype=image.dtype)
    top = (height - new_h) // 2
    out[top : top + new_h, :new_w] = resized
    return out

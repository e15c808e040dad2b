"""Aspect-preserving, anti-aliased resize and pad to a model's H x W."""

from __future__ import annotations

import cv2
import numpy as np


def scale_to_fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale `image` to fit inside height x width, keeping its aspect ratio.

    Area interpolation when shrinking (anti-aliased), bilinear when enlarging.
    """
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=interpolation)


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Zero-pad to height x width: flush left (the chest wall), centred vertically.

    Padding goes on the nipple side and above/below, never between the chest wall and the edge.
    """
    out = np.zeros((height, width), dtype=image.dtype)
    h, w = image.shape[:2]
    top = (height - h) // 2
    out[top : top + h, :w] = image
    return out


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """scale_to_fit then pad_to."""
    return pad_to(scale_to_fit(image, height, width), height, width)

"""render.py's second half of the pixel path, in torch on any device (the GPU path renders here).

The same Plan, the same steps, the same numbers as the numpy render (tests hold them within one
grey level): lookup table -> crop -> flip -> aspect-preserving resize -> zero outside the breast
mask -> pad (chest wall flush left, centred vertically) -> the model's dtype, written into a slot
of a preallocated batch tensor. The resize reproduces OpenCV's: INTER_AREA when shrinking is a
weighted sum over the exact fractional footprint of each output pixel, done here as two small
matrix products (rows, then columns); enlarging is bilinear with half-pixel centres.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mammo_batch.engine.pixels import voi
from mammo_batch.engine.pixels.plan import Plan
from mammo_batch.engine.pixels.settings import FULL_SCALE

Size = tuple[int, int]
TORCH_DTYPES = {"uint8": torch.uint8, "uint16": torch.uint16, "float32": torch.float32}


def fitted_shape(h: int, w: int, height: int, width: int) -> Size:
    """resize.scale_to_fit's output shape."""
    scale = min(height / h, width / w)
    return max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))


def display_crop(stored: torch.Tensor, plan: Plan) -> torch.Tensor:
    """Lookup table over the crop box, flipped when the plan says: (h, w) float32 display values."""
    top, bottom, left, right = plan.box
    table = _table(plan, stored.device)
    index = (stored[top:bottom, left:right].to(torch.int64) - plan.lo).clamp_(0, len(plan.table) - 1)
    image = table[index]
    return image.flip(1) if plan.flip else image


def render_into(display: torch.Tensor, plan: Plan, out: torch.Tensor, dtype: str = "uint8") -> torch.Tensor:
    """Render one view's display crop into `out` (H, W) of the model dtype (a slot of a batch tensor)."""
    height, width = out.shape
    h, w = display.shape
    new_h, new_w = fitted_shape(h, w, height, width)
    scaled = resize(display, new_h, new_w).round_().clamp_(0, voi.DISPLAY_MAX)
    if plan.keep is not None:
        keep = torch.from_numpy(np.ascontiguousarray(plan.keep))  # in the frame as rendered
        scaled *= _nearest(keep.to(display.device), new_h, new_w)
    top = (height - new_h) // 2
    out.zero_()
    out[top:top + new_h, :new_w] = as_model_dtype(scaled, dtype)
    return out


def render_torch(stored: torch.Tensor, plan: Plan, sizes: Iterable[Size], dtype: str = "uint8") -> dict[Size, Any]:
    """render.render's result as torch tensors on `stored`'s device: one (H, W) input per distinct size."""
    if dtype not in FULL_SCALE:
        raise ValueError(f"dtype must be one of {tuple(FULL_SCALE)}, not {dtype!r}")
    display = display_crop(stored, plan)
    return {size: render_into(display, plan, torch.empty(size, dtype=TORCH_DTYPES[dtype], device=stored.device),
                              dtype) for size in set(sizes)}


def as_model_dtype(display: torch.Tensor, dtype: str) -> torch.Tensor:
    """Rounded float display values (0..65535) -> the model dtype, as render.as_model_dtype does."""
    if dtype == "uint8":
        return torch.div(display.to(torch.int32) + 128, 257, rounding_mode="floor").to(torch.uint8)
    if dtype == "uint16":
        return display.to(torch.int32).to(torch.uint16)
    return display / voi.DISPLAY_MAX


def resize(image: torch.Tensor, new_h: int, new_w: int) -> torch.Tensor:
    """OpenCV's resize of a float image: INTER_AREA when neither axis grows, else INTER_LINEAR."""
    h, w = image.shape
    if (new_h, new_w) == (h, w):
        return image.clone()
    if h >= new_h and w >= new_w:
        rows = _area_weights(h, new_h, str(image.device))
        cols = _area_weights(w, new_w, str(image.device))
        return rows @ (image @ cols.T)
    return F.interpolate(image[None, None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0, 0]


@lru_cache(maxsize=64)
def _area_weights(src: int, dst: int, device: str) -> torch.Tensor:
    """(dst, src) matrix: output pixel i averages source [i*s, (i+1)*s), s = src/dst, by covered area."""
    scale = src / dst
    weights = np.zeros((dst, src), dtype=np.float64)
    for i in range(dst):
        start, end = i * scale, min((i + 1) * scale, src)
        first, last = math.floor(start), math.ceil(end)
        for j in range(first, last):
            weights[i, j] = min(end, j + 1) - max(start, j)
        weights[i] /= end - start
    return torch.from_numpy(weights.astype(np.float32)).to(device)


def _nearest(mask: torch.Tensor, new_h: int, new_w: int) -> torch.Tensor:
    """cv2 INTER_NEAREST: output pixel i takes source floor(i * src / dst)."""
    h, w = mask.shape
    rows = torch.clamp(torch.floor(torch.arange(new_h, dtype=torch.float64) * (h / new_h)).long(), max=h - 1)
    cols = torch.clamp(torch.floor(torch.arange(new_w, dtype=torch.float64) * (w / new_w)).long(), max=w - 1)
    return mask[rows.to(mask.device)][:, cols.to(mask.device)].to(torch.float32)


def _table(plan: Plan, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(plan.table.astype(np.float32)).to(device)

"""The pixel path, one code path for training and every runtime:

stored pixels -> modality LUT -> VOI -> MONOCHROME1 inversion (one lookup table) ->
breast mask on a small copy -> orientation (chest wall left) -> breast crop, markers
zeroed -> aspect-preserving anti-aliased resize + pad, once per distinct model size.

It is `plan` (plan.py: decide the table, crop, mask and flip) then `render` (render.py:
apply them at each size). Normalisation and channel replication are not here: they live
inside the exported model.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pydicom import Dataset

from mammo_batch.engine.pixels.orient import Orientation
from mammo_batch.engine.pixels.plan import Box, plan_view
from mammo_batch.engine.pixels.render import render
from mammo_batch.engine.pixels.settings import PreprocessSettings


@dataclass(frozen=True)
class Prepared:
    """A view after the pixel path: one model input per requested (height, width)."""

    inputs: dict[tuple[int, int], np.ndarray]
    orientation: Orientation
    crop_box: Box  # (top, bottom, left, right) in stored pixels
    flipped: bool


def preprocess(
    ds: Dataset,
    stored: np.ndarray,
    sizes: Iterable[tuple[int, int]],
    settings: PreprocessSettings = PreprocessSettings(),
) -> Prepared:
    """Run the pixel path on one decoded view; resize once per distinct size."""
    plan = plan_view(ds, stored, settings)
    return Prepared(render(stored, plan, sizes, settings.dtype), plan.orientation, plan.box, plan.flip)

"""One view file -> model inputs: decode once, run the pixel path, resize once per size.

This is the unit of work the worker pools run (preview now, the scheduler later).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels import Prepared, PreprocessSettings, preprocess
from mammo_batch.engine.pixels.orient import LEFT, Orientation, side_from_tags
from mammo_batch.engine.pixels.seed_profile import seed_preprocess


def prepare_file(
    path: str | os.PathLike,
    sizes: Iterable[tuple[int, int]],
    settings: PreprocessSettings = PreprocessSettings(),
) -> Prepared:
    """Raises DecodeError for undecodable pixel data, ValueError for unusable images.

    `settings.profile` "seed" runs the seed's recipe (seed_profile.py) instead of the pixel path.
    """
    ds, stored = read_and_decode(path)
    if settings.profile == "seed":
        full = (0, stored.shape[0], 0, stored.shape[1])
        side = side_from_tags(ds)  # reported only: the seed's recipe never flips
        orientation = Orientation(side, "tags") if side else Orientation(LEFT, "default")
        return Prepared(seed_preprocess(ds, stored, sizes), orientation, full, False)
    return preprocess(ds, stored, sizes, settings)

"""One view file -> model inputs: decode once, run the pixel path, resize once per size.

This is the unit of work the worker pools run (preview now, the scheduler later).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from mammo_batch.engine.dicom.decode import read_and_decode
from mammo_batch.engine.pixels import Prepared, PreprocessSettings, preprocess


def prepare_file(
    path: str | os.PathLike,
    sizes: Iterable[tuple[int, int]],
    settings: PreprocessSettings = PreprocessSettings(),
) -> Prepared:
    """Raises DecodeError for undecodable pixel data, ValueError for unusable images."""
    ds, stored = read_and_decode(path)
    return preprocess(ds, stored, sizes, settings)

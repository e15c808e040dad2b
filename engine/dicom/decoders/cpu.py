"""The CPU decoder: pydicom's pixel_array with its pylibjpeg / openjpeg / pyjpegls plugins (dicom/decode.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mammo_batch.engine.dicom.decode import decode_pixels
from mammo_batch.engine.dicom.decoders.base import EncodedView


def why_unavailable() -> str | None:
    return None  # the core install always has it


class CpuDecoder:
    name = "cpu"
    device = "cpu"

    def decode(self, views: Sequence[EncodedView]) -> list[np.ndarray | Exception]:
        results: list[np.ndarray | Exception] = []
        for view in views:
            try:
                results.append(decode_pixels(view.ds))
            except Exception as exc:  # DecodeError: this view only
                results.append(exc)
        return results

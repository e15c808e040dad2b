"""Decode a view's pixel data on the CPU with pydicom and its pylibjpeg / pyjpegls plugins.

pydicom picks the plugin by transfer syntax: RLE (pydicom), JPEG lossless / baseline /
extended (pylibjpeg-libjpeg), JPEG-LS (pyjpegls or pylibjpeg), JPEG 2000 and HTJ2K
(pylibjpeg-openjpeg), deflated and native little/big endian (pydicom). The values are
pydicom's own `pixel_array`, unchanged: the stored values, before any LUT.
"""

from __future__ import annotations

import os

import numpy as np
import pydicom
from pydicom import Dataset

from mammo_batch.engine.dicom.quiet import safe_error


class DecodeError(Exception):
    """The pixel data of a view could not be decoded; the message says why (never PHI)."""


def read_dataset(path: str | os.PathLike) -> Dataset:
    """The whole dataset, pixel data included (not yet decoded)."""
    try:
        return pydicom.dcmread(path)
    except Exception as exc:
        raise DecodeError(f"cannot read file: {safe_error(exc, 280)}") from exc


def decode_pixels(ds: Dataset) -> np.ndarray:
    """The stored pixel values of a single-frame grayscale image, shape (rows, columns)."""
    try:
        arr = ds.pixel_array
    except Exception as exc:
        raise DecodeError(safe_error(exc, 300)) from exc
    if arr.ndim != 2:
        raise DecodeError(f"expected one grayscale frame, got pixel array of shape {arr.shape}")
    return arr


def read_and_decode(path: str | os.PathLike) -> tuple[Dataset, np.ndarray]:
    ds = read_dataset(path)
    return ds, decode_pixels(ds)

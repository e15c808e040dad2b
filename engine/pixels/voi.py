"""Stored values -> display values in [0, 1] (modality LUT, VOI, MONOCHROME1 inversion).

The whole chain is a function of the stored value alone, so it is evaluated once per
distinct stored value (a lookup table over the image's [min, max]) with pydicom's own
apply_modality_lut / apply_voi_lut, then applied to the image by indexing. That is both
exact (it *is* pydicom's result) and fast (a few ms for a 8.5 Mpixel view).
"""

from __future__ import annotations

import numpy as np
from pydicom import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

# Display images are uint16 with 0 = black (no tissue) and 65535 = white (dense tissue).
DISPLAY_MAX = 65535
# Above this many distinct stored values a table is larger than the image it maps.
MAX_TABLE = 1 << 20

VOI_DICOM = "dicom"  # the file's window / VOI LUT; min-max when it has none
VOI_MINMAX = "minmax"  # ignore the file's VOI: min-max of the modality values (the seed's choice)


def has_voi(ds: Dataset) -> bool:
    return bool(ds.get("VOILUTSequence")) or (
        ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
    )


def display_table(ds: Dataset, lo: int, hi: int, voi: str = VOI_DICOM) -> np.ndarray:
    """uint16 display value for every stored value in [lo, hi]."""
    domain = np.arange(lo, hi + 1, dtype=np.int64)
    return _to_display(ds, domain, voi)


def to_display(ds: Dataset, stored: np.ndarray, voi: str = VOI_DICOM) -> np.ndarray:
    """Map a stored-value image to a uint16 display image (see module docstring)."""
    if stored.dtype.kind not in "iu":
        return _to_display(ds, stored, voi)
    lo, hi = int(stored.min()), int(stored.max())
    if hi - lo + 1 > MAX_TABLE:
        return _to_display(ds, stored, voi)
    table = display_table(ds, lo, hi, voi)
    return apply_table(table, stored, lo)


def apply_table(table: np.ndarray, stored: np.ndarray, lo: int) -> np.ndarray:
    """table[stored - lo], without a temporary int64 copy of the image when lo == 0."""
    index = stored if lo == 0 and stored.dtype.kind == "u" else stored.astype(np.int64) - lo
    return np.take(table, index)


def _to_display(ds: Dataset, stored: np.ndarray, voi: str) -> np.ndarray:
    values = apply_modality_lut(stored, ds)
    if ds.get("VOILUTSequence") and values.dtype.kind == "f" and np.all(values == np.rint(values)):
        values = values.astype(np.int64)  # a VOI LUT is indexed: keep an identity rescale integral
    if voi == VOI_DICOM and has_voi(ds):
        out = apply_voi_lut(values, ds, index=0)
        y_min, y_max = voi_output_range(ds)
    else:
        y_min, y_max = float(np.min(values)), float(np.max(values))
        out = values
    scale = (y_max - y_min) or 1.0
    unit = np.clip((np.asarray(out, dtype=np.float64) - y_min) / scale, 0.0, 1.0)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        unit = 1.0 - unit
    return np.rint(unit * DISPLAY_MAX).astype(np.uint16)


def voi_output_range(ds: Dataset) -> tuple[float, float]:
    """The nominal output range of pydicom's apply_voi_lut for this dataset.

    A VOI LUT maps to whatever range its data spans; windowing maps to the range that
    pydicom's apply_windowing uses (PS3.3 C.11.2.1.2), which depends on the modality LUT.
    """
    if ds.get("VOILUTSequence"):
        data = _lut_data(ds.VOILUTSequence[0])
        return float(data.min()), float(data.max())
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif int(ds.get("PixelRepresentation", 0)) == 0:
        y_min, y_max = 0.0, 2.0**bits - 1
    else:
        y_min, y_max = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        y_min, y_max = sorted((y_min * float(slope) + float(intercept),
                               y_max * float(slope) + float(intercept)))
    return y_min, y_max


def _lut_data(item: Dataset) -> np.ndarray:
    """LUTData as numbers; implicit VR files leave its ambiguous VR (US/OW) as raw bytes."""
    data = item.LUTData
    if isinstance(data, bytes):
        bits = int(item.LUTDescriptor[2])
        return np.frombuffer(data, dtype="<u2" if bits > 8 else "u1").astype(np.float64)
    return np.asarray(data, dtype=np.float64).ravel()

"""Vendor-like variants: how one image ends up stored, tagged and encoded.

Each variant exercises a different branch of a reader (see /work/shared/REFERENCE.md,
"DICOM mammography facts"). Manufacturer strings are labels for the profile, not claims
about any vendor's real output.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)


@dataclass(frozen=True)
class Variant:
    name: str
    manufacturer: str
    model: str
    transfer_syntax: UID
    photometric: str  # MONOCHROME2 (dense = bright) or MONOCHROME1 (stored inverted)
    bits_stored: tuple[int, ...]  # choices; the first is make_view_dataset's default
    voi: str  # "windows" (two, first to use) | "window" | "sigmoid" | "lut" | "none"
    image_laterality: bool = True  # ImageLaterality (0020,0062)
    series_laterality: bool = False  # Laterality (0020,0060), series level
    view_position: str = "value"  # ViewPosition: "value" | "empty" | "absent"
    patient_orientation: bool = True
    flip_tag: bool = False  # write FieldOfViewHorizontalFlip
    flipped: bool = False  # breast faces the other way from the display convention
    rescale: bool = False  # RescaleSlope 1 / RescaleIntercept 0
    series_description: bool = True  # "R CC" etc.: a fallback some readers use


_PROFILES = (
    Variant(
        "hologic",
        "HOLOGIC, Inc.",
        "SYNTHETIC Selenia",
        JPEG2000Lossless,
        "MONOCHROME2",
        bits_stored=(12, 14),
        voi="windows",
        flip_tag=True,
    ),
    Variant(
        "planmed",
        "Planmed",
        "SYNTHETIC Nuance",
        ExplicitVRLittleEndian,
        "MONOCHROME1",
        bits_stored=(14,),
        voi="window",
    ),
    Variant(
        "sigmoid",
        "SYNTHETIC SIGMOID",
        "SYNTHETIC S1",
        JPEGLSLossless,
        "MONOCHROME2",
        bits_stored=(14,),
        voi="sigmoid",
    ),
    # Digitised-film-like: no window (min-max), series Laterality only, the view only in
    # the code sequence, no orientation tags at all.
    Variant(
        "rle",
        "SYNTHETIC DIGITIZER",
        "SYNTHETIC D16",
        RLELossless,
        "MONOCHROME2",
        bits_stored=(16,),
        voi="none",
        image_laterality=False,
        series_laterality=True,
        view_position="absent",
        patient_orientation=False,
        series_description=False,
    ),
    # ViewPosition present but empty: the view code sequence carries the view.
    Variant(
        "implicit",
        "SYNTHETIC LUT",
        "SYNTHETIC L12",
        ImplicitVRLittleEndian,
        "MONOCHROME2",
        bits_stored=(12,),
        voi="lut",
        view_position="empty",
        rescale=True,
    ),
)
# Like hologic, but the breast faces the other way from the display convention.
_PROFILES += (replace(_PROFILES[0], name="flipped", flipped=True),)

# Like hologic, but HTJ2K lossless (the GPU decoders' fast path). Only on request (`--variant htj2k`):
# it needs imagecodecs' HTJ2K encoder (OpenJPH; the `dev` extra), which the core install lacks.
EXTRA_VARIANTS: tuple[str, ...] = ("htj2k",)
_PROFILES += (replace(_PROFILES[0], name="htj2k", transfer_syntax=HTJ2KLossless),)

PROFILES: dict[str, Variant] = {v.name: v for v in _PROFILES}
VARIANTS: tuple[str, ...] = tuple(name for name in PROFILES if name not in EXTRA_VARIANTS)  # the default mix

# Transfer syntax -> (pydicom encoding plugin, encoder options); None = native pixel data.
# RLE uses rle.py, a vectorised twin of pydicom's pure-Python encoder (same bytes, ~20x
# faster). The .91 / .81 syntaxes are lossy-capable; these options make them lossless.
ENCODINGS: dict[UID, tuple[str, dict] | None] = {
    ExplicitVRLittleEndian: None,
    ImplicitVRLittleEndian: None,
    DeflatedExplicitVRLittleEndian: None,
    RLELossless: ("synth-rle", {}),
    JPEG2000Lossless: ("pylibjpeg", {}),
    JPEG2000: ("pylibjpeg", {"j2k_cr": [1]}),  # compression ratio 1 = lossless layer
    JPEGLSLossless: ("pyjpegls", {}),
    JPEGLSNearLossless: ("pyjpegls", {"jls_error": 0}),  # NEAR=0 is lossless
    HTJ2KLossless: ("imagecodecs-htj2k", {}),  # pydicom cannot encode HTJ2K
}
TRANSFER_SYNTAXES: tuple[UID, ...] = tuple(ENCODINGS)


def get_variant(name: str) -> Variant:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}") from None


def resolve_transfer_syntax(value: str) -> UID:
    """A supported transfer syntax from its UID ("1.2.840.10008.1.2.4.90") or its pydicom
    keyword ("JPEG2000Lossless")."""
    for uid in ENCODINGS:
        if value in (uid, uid.keyword):
            return uid
    names = ", ".join(uid.keyword for uid in ENCODINGS)
    raise ValueError(f"unsupported transfer syntax {value!r}; supported: {names}")

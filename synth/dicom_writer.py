"""One image -> one complete DICOM dataset, in a variant's tags, photometric and encoding.

The input is always the canonical image (uint16, MONOCHROME2 sense, chest wall on the
left). The writer flips it when the chest wall goes on the right, inverts it for
MONOCHROME1, and encodes it losslessly, so the same image can be written every way and
a reader must get it back exactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pydicom import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from mammo_batch.synth.htj2k import encode_htj2k_frame
from mammo_batch.synth.rle import encode_rle_frame
from mammo_batch.synth.variants import (
    ENCODINGS,
    Variant,
    get_variant,
    resolve_transfer_syntax,
)
from mammo_batch.synth.views import (
    LEFT,
    RIGHT,
    VIEW_CODES,
    conventional_chest_wall_side,
    patient_orientation,
)

MG_FOR_PRESENTATION = UID("1.2.840.10008.5.1.4.1.1.1.2")
# Real detectors: ~0.07 mm pixels at 2560 columns; smaller --size means bigger pixels.
FULL_WIDTH, FULL_SPACING_MM = 2560, 0.07


@dataclass(frozen=True)
class ViewIds:
    """Identifiers of one view. Everything is synthetic; UIDs left as None are derived
    deterministically from the image and its tags."""

    patient_id: str = "SYN0000000"
    patient_name: str = "SYNTHETIC^PATIENT"
    patient_birth_date: str = "19600101"
    accession_number: str = "000000"
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    sop_instance_uid: str | None = None
    study_date: str = "20240101"
    study_time: str = "090000"
    study_id: str = "1"
    series_number: int = 1
    instance_number: int = 1


def make_view_dataset(
    image: np.ndarray,
    variant: str,
    laterality: str,
    view: str,
    chest_wall_side: str = LEFT,
    *,
    transfer_syntax: str | None = None,
    photometric: str | None = None,
    bits_stored: int | None = None,
    **ids: object,
) -> FileDataset:
    """A complete DICOM Part 10 dataset for ``image`` (save it with ``ds.save_as(path)``).

    ``image``: uint16, MONOCHROME2 sense, chest wall on the LEFT. ``chest_wall_side``:
    where the chest wall ends up in the stored pixels ("left"/"right"); the image is
    flipped for "right" and the orientation tags tell the truth either way.
    ``transfer_syntax`` (UID or pydicom keyword, see ``TRANSFER_SYNTAXES``),
    ``photometric`` and ``bits_stored`` override the variant's. ``bits_stored`` defaults
    to the variant's, raised if the image needs more bits. ``ids``: fields of ``ViewIds``.
    """
    profile = get_variant(variant)
    laterality, view = laterality.upper(), view.upper()
    if laterality not in ("L", "R"):
        raise ValueError(f"laterality must be 'L' or 'R', got {laterality!r}")
    if view not in VIEW_CODES:
        raise ValueError(f"view must be one of {tuple(VIEW_CODES)}, got {view!r}")
    if chest_wall_side not in (LEFT, RIGHT):
        raise ValueError(f"chest_wall_side must be 'left' or 'right', got {chest_wall_side!r}")
    image = _check_image(image)
    syntax = resolve_transfer_syntax(transfer_syntax) if transfer_syntax else profile.transfer_syntax
    photometric = photometric or profile.photometric
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(f"photometric must be MONOCHROME1 or MONOCHROME2, got {photometric!r}")
    bits = bits_stored or max(profile.bits_stored[0], int(image.max()).bit_length())
    if not 8 <= bits <= 16:
        raise ValueError(f"bits_stored must be in 8..16, got {bits}")
    if int(image.max()) >> bits:
        raise ValueError(f"image values need more than bits_stored={bits} bits")
    max_value = (1 << bits) - 1

    stored = image[:, ::-1] if chest_wall_side == RIGHT else image
    if photometric == "MONOCHROME1":
        stored = max_value - stored  # dense tissue dark, as MONOCHROME1 detectors store it
    stored = np.ascontiguousarray(stored, dtype=np.uint16)

    view_ids = _complete_ids(ViewIds(**ids), image, variant, laterality, view, chest_wall_side)
    ds = _file_dataset(view_ids, syntax)
    _patient_study_series(ds, view_ids, profile, laterality, view)
    _image_pixel_module(ds, stored, bits, photometric)
    _laterality_and_view(ds, profile, laterality, view, chest_wall_side)
    _voi(ds, profile, image, max_value, photometric)
    _pixel_data(ds, stored, syntax)
    return ds


def write_dataset(ds: FileDataset, path: Path) -> None:
    """Write as a DICOM Part 10 file (preamble, DICM, file meta), any file name."""
    ds.save_as(path, enforce_file_format=True)


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 2 or not np.issubdtype(image.dtype, np.integer):
        raise ValueError(f"image must be a 2-D integer array, got {image.dtype} {image.shape}")
    if image.size and (int(image.min()) < 0 or int(image.max()) > 0xFFFF):
        raise ValueError("image values must fit in uint16")
    return image.astype(np.uint16, copy=False)


def _complete_ids(
    ids: ViewIds, image: np.ndarray, variant: str, laterality: str, view: str, side: str
) -> ViewIds:
    """Fill missing UIDs deterministically (the SOP UID from a hash of the pixels)."""
    base = ["mammo-batch-synth", ids.patient_id, ids.accession_number]
    study = ids.study_instance_uid or generate_uid(entropy_srcs=[*base, "study"])
    series = ids.series_instance_uid or generate_uid(entropy_srcs=[*base, "series", laterality])
    sop = ids.sop_instance_uid
    if not sop:
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        sop = generate_uid(entropy_srcs=[*base, "sop", digest, variant, laterality, view, side])
    return replace(ids, study_instance_uid=study, series_instance_uid=series, sop_instance_uid=sop)


def _file_dataset(ids: ViewIds, syntax: UID) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MG_FOR_PRESENTATION
    meta.MediaStorageSOPInstanceUID = ids.sop_instance_uid
    meta.TransferSyntaxUID = syntax
    return FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)


def _patient_study_series(ds: Dataset, ids: ViewIds, profile: Variant, laterality: str, view: str) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = MG_FOR_PRESENTATION
    ds.SOPInstanceUID = ids.sop_instance_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ids.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = ids.study_time
    ds.AccessionNumber = ids.accession_number
    ds.Modality = "MG"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = profile.manufacturer
    ds.ManufacturerModelName = profile.model
    ds.ReferringPhysicianName = ""
    if profile.series_description:
        ds.SeriesDescription = f"{laterality} {view}"
    ds.PatientName = ids.patient_name
    ds.PatientID = ids.patient_id
    ds.PatientBirthDate = ids.patient_birth_date
    ds.PatientSex = "F"
    ds.BodyPartExamined = "BREAST"
    ds.StudyInstanceUID = ids.study_instance_uid
    ds.SeriesInstanceUID = ids.series_instance_uid
    ds.StudyID = ids.study_id
    ds.SeriesNumber = ids.series_number
    ds.InstanceNumber = ids.instance_number
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"  # every encoding here is lossless


def _image_pixel_module(ds: Dataset, stored: np.ndarray, bits: int, photometric: str) -> None:
    rows, cols = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = 0
    spacing = round(FULL_SPACING_MM * FULL_WIDTH / cols, 6)
    ds.PixelSpacing = ds.ImagerPixelSpacing = [spacing, spacing]
    # DX/MG: "LOG" data; sign -1 = higher values where less X-ray reached the detector
    # (dense tissue bright, MONOCHROME2), +1 for the inverted MONOCHROME1 storage.
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = -1 if photometric == "MONOCHROME2" else 1
    ds.PresentationLUTShape = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"


def _laterality_and_view(ds: Dataset, profile: Variant, laterality: str, view: str, side: str) -> None:
    if profile.series_laterality:
        ds.Laterality = laterality
    if profile.image_laterality:
        ds.ImageLaterality = laterality
    if profile.view_position != "absent":
        ds.ViewPosition = view if profile.view_position == "value" else ""
    code = Dataset()
    code.CodeValue, code.CodeMeaning = VIEW_CODES[view]
    code.CodingSchemeDesignator = "SCT"
    code.ViewModifierCodeSequence = Sequence()
    ds.ViewCodeSequence = Sequence([code])
    if profile.patient_orientation:
        ds.PatientOrientation = patient_orientation(laterality, view, side)
    if profile.flip_tag:
        flipped = side != conventional_chest_wall_side(laterality)
        ds.FieldOfViewHorizontalFlip = "YES" if flipped else "NO"


def tissue_window(image: np.ndarray, max_value: int) -> tuple[float, float]:
    """(low, high) stored values covering the breast tissue of a MONOCHROME2-sense image:
    percentiles of the pixels brighter than 10% of the range, on a subsample (fast)."""
    step = max(1, int(np.sqrt(image.size / 250_000)))
    sample = image[::step, ::step]
    tissue = sample[sample > 0.1 * max_value]
    if tissue.size < 16:
        return 0.0, float(max_value)
    low, high = np.percentile(tissue, [1.0, 99.5])
    return float(low), float(max(high, low + 2))


def _voi(ds: Dataset, profile: Variant, image: np.ndarray, max_value: int, photometric: str) -> None:
    """The variant's VOI, computed on the canonical image and mapped to stored values."""
    if profile.voi == "none":
        return
    low, high = tissue_window(image, max_value)
    if photometric == "MONOCHROME1":
        low, high = max_value - high, max_value - low
    center, width = round((low + high) / 2, 1), round(high - low, 1)
    if profile.voi == "windows":
        ds.WindowCenter = [center, round(max_value / 2, 1)]  # the first one is for reading
        ds.WindowWidth = [width, float(max_value)]
        ds.WindowCenterWidthExplanation = ["NORMAL", "FULL RANGE"]
        ds.VOILUTFunction = "LINEAR"
    elif profile.voi in ("window", "sigmoid"):
        ds.WindowCenter, ds.WindowWidth = center, width
        if profile.voi == "sigmoid":
            ds.VOILUTFunction = "SIGMOID"
    elif profile.voi == "lut":
        ds.VOILUTSequence = Sequence([_voi_lut(low, high, max_value)])
    else:
        raise ValueError(f"unknown VOI kind {profile.voi!r}")
    if profile.rescale:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "US"


def _voi_lut(low: float, high: float, max_value: int) -> Dataset:
    """A 16-bit VOI LUT over every stored value: the tissue window with a mild gamma (so a
    reader that ignores the LUT and uses a linear window gets visibly different output)."""
    entries = max_value + 1
    ramp = np.clip((np.arange(entries, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    table = np.rint(ramp**0.8 * 65535).astype("<u2")
    item = Dataset()
    # Descriptor: entries (65536 is written as 0), first stored value mapped, bits per entry.
    item.add_new(0x00283002, "US", [entries % 65536, 0, 16])  # LUTDescriptor
    item.LUTExplanation = "SYNTHETIC TISSUE GAMMA 0.8"
    item.add_new(0x00283006, "OW", table.tobytes())  # LUTData
    return item


def _pixel_data(ds: FileDataset, stored: np.ndarray, syntax: UID) -> None:
    encoding = ENCODINGS[syntax]
    if encoding is None:  # native: pydicom writes it (and deflates the dataset if asked)
        ds.PixelData = stored.astype("<u2").tobytes()
        ds["PixelData"].VR = "OW"
        return
    plugin, options = encoding
    if plugin in ("synth-rle", "imagecodecs-htj2k"):
        frame = encode_rle_frame(stored) if plugin == "synth-rle" else encode_htj2k_frame(stored)
        ds.PixelData = encapsulate([frame])
        ds["PixelData"].VR = "OB"  # encapsulated: OB, undefined length (PS3.5 A.4)
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = syntax
        return
    # pydicom gives compressed copies a fresh random SOP Instance UID unless told not to.
    ds.compress(syntax, stored, encoding_plugin=plugin, generate_instance_uid=False, **options)

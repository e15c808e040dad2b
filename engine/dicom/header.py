"""Read one file's header (pixel data deferred, not decoded) into a ViewRecord."""

from __future__ import annotations

import os
import re
import stat
import warnings
from functools import cache

import pydicom
from pydicom import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder

from mammo_batch.engine.dicom.policy import (
    DICOMDIR_CLASS,
    MAX_PIXELS,
    fail,
    is_image_class,
    is_mammography_class,
    skip,
)
from mammo_batch.engine.dicom.quiet import Captured, captured, safe_error
from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.dicom.vocabulary import laterality_of, multi_values, view_of

# Values larger than this stay on disk until decode; the header alone is read now.
DEFER_BYTES = 4096
# What pydicom warns when a file ends inside encapsulated (compressed) pixel data.
TRUNCATION_WARNING = "End of file reached before delimiter"
UID = re.compile(r"[0-9]+(\.[0-9]+)*")


def read_view(path: str | os.PathLike) -> ViewRecord:
    """Header-only read of `path`. Never raises for bad input: the record says what went wrong.

    Nothing third-party code warns or logs reaches stderr: it is captured here and summarised in
    the record (reason `header_warnings` on a file that is still scored), in our words.
    """
    record = ViewRecord(path=str(path))
    try:
        info = os.stat(path)
    except OSError as exc:
        return fail(record, "unreadable", f"cannot stat file: {exc.strerror}")
    if not stat.S_ISREG(info.st_mode):
        return skip(record, "special_file")  # opening a FIFO would block forever
    record.size, record.mtime_ns = info.st_size, info.st_mtime_ns
    if info.st_size == 0:
        return fail(record, "empty_file")
    with captured() as caught:
        record = _read(record, info.st_size, caught)
    if caught and record.scorable:
        record.note("header_warnings", caught.summary())
    elif caught:
        record.detail = f"{record.detail}; {caught.summary()}"
    return record


def _read(record: ViewRecord, size: int, caught: Captured) -> ViewRecord:
    try:
        ds = pydicom.dcmread(record.path, defer_size=DEFER_BYTES)
    except InvalidDicomError:
        return skip(record, "not_dicom")
    except Exception as exc:  # pydicom raises many types for damaged files
        return fail(record, "unreadable", safe_error(exc))
    truncated = caught.contains(TRUNCATION_WARNING)
    if truncated:  # pydicom hands back an empty dataset then: read the header alone for the identifiers
        try:
            ds = pydicom.dcmread(record.path, stop_before_pixels=True)
        except Exception as exc:
            return fail(record, "truncated", safe_error(exc))
    try:
        record = _fill(record, ds, size)
    except Exception as exc:  # a malformed value in an otherwise parseable header
        return fail(record, "unreadable", safe_error(exc))
    if truncated:  # identifiers kept: the failure counts against its study
        return fail(record, "truncated", "the file ends inside its encapsulated pixel data")
    return record


def _fill(record: ViewRecord, ds: Dataset, file_size: int) -> ViewRecord:
    meta = getattr(ds, "file_meta", Dataset())
    record.sop_class_uid = _text(ds, "SOPClassUID") or _text(meta, "MediaStorageSOPClassUID")
    if record.sop_class_uid == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return skip(record, "dicomdir")
    record.sop_instance_uid = _text(ds, "SOPInstanceUID")
    record.patient_id = _text(ds, "PatientID")
    record.accession_number = _text(ds, "AccessionNumber")
    record.study_instance_uid = _text(ds, "StudyInstanceUID")
    record.study_date = _text(ds, "StudyDate")
    record.modality = _text(ds, "Modality").upper()
    record.manufacturer = _text(ds, "Manufacturer")
    record.transfer_syntax = _text(meta, "TransferSyntaxUID")
    record.photometric = _text(ds, "PhotometricInterpretation").upper()
    record.bits_stored = int(ds.get("BitsStored", 0) or 0)
    record.rows = int(ds.get("Rows", 0) or 0)
    record.columns = int(ds.get("Columns", 0) or 0)
    record.n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    record.presentation_intent = _text(ds, "PresentationIntentType").upper()
    record.patient_orientation = [v for v in multi_values(ds, "PatientOrientation") if _plausible(v, 16)]
    record.fov_horizontal_flip = _text(ds, "FieldOfViewHorizontalFlip").upper()
    record.laterality = laterality_of(ds)
    record.view = view_of(ds)
    if "PixelData" not in ds:
        if record.modality == "MG" or is_mammography_class(record.sop_class_uid):
            # a mammogram without its pixels (cut short, or a broken export) should have scored
            return fail(record, "no_pixel_data", "a mammogram header without pixel data (cut short?)")
        if not record.modality and not _registered(record.sop_class_uid):  # real objects name one: cut short
            return fail(record, "no_pixel_data", "a header without pixel data, a modality or a known SOP class "
                        "(cut short?)")
        if (record.rows and record.columns) or is_image_class(record.sop_class_uid):
            return skip(record, "not_mammogram", "an image of another modality, without pixel data")
        return skip(record, "no_pixel_data")
    pixels = record.rows * record.columns * int(ds.get("SamplesPerPixel", 1) or 1)
    if pixels > MAX_PIXELS:
        return fail(record, "too_large", f"{record.rows} x {record.columns} pixels per frame is more "
                    f"than the limit of {MAX_PIXELS:,}: refused before reading")
    if not decoder_available(record.transfer_syntax):
        return fail(record, "unsupported_transfer_syntax", f"no decoder for {record.transfer_syntax}")
    if _native_too_short(ds, record, file_size):
        return fail(record, "truncated")
    return record


def _registered(uid: str) -> bool:
    """Whether `uid` is a SOP class of the DICOM standard (pydicom's UID dictionary names it)."""
    return bool(uid) and pydicom.uid.UID(uid).name != uid


def _text(ds: Dataset, keyword: str) -> str:
    """A single string value, or "" when absent or implausible. A damaged header's values can
    hold the bytes of the elements that follow (the patient's name): those never enter a record."""
    value = ds.get(keyword, "")
    if value is None or value == "":
        return ""
    text = str(value).strip()
    uid = keyword.endswith("UID")
    if isinstance(value, MultiValue) or not _plausible(text, 64) or (uid and not UID.fullmatch(text)):
        # Captured by read_view like pydicom's own warnings, and summarised without the value.
        warnings.warn(f"malformed value in {keyword}", UserWarning, stacklevel=2)
        return ""
    return text


def _plausible(text: str, max_length: int) -> bool:
    return len(text) <= max_length and text.isprintable()


@cache
def decoder_available(transfer_syntax: str) -> bool:
    """Whether an installed pydicom plugin can decode `transfer_syntax`."""
    if not transfer_syntax:
        return True  # no file meta: pydicom assumes implicit little endian
    try:
        return bool(get_decoder(pydicom.uid.UID(transfer_syntax)).is_available)
    except (NotImplementedError, ValueError):
        return False


def _native_too_short(ds: Dataset, record: ViewRecord, file_size: int) -> bool:
    """Uncompressed pixel data must fit in the file; compressed data is checked at decode."""
    if pydicom.uid.UID(record.transfer_syntax or "1.2.840.10008.1.2").is_compressed:
        return False
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    expected = record.rows * record.columns * samples * record.n_frames * bits // 8
    return file_size < expected

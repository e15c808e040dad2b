"""The view policy: which files are scored, and a recorded reason for every one that is not.

Score every 2D For-Presentation mammogram; skip For-Processing, multi-frame / DBT,
non-image and non-MG objects (DESIGN.md, "View policy").
"""

from __future__ import annotations

from collections.abc import Collection

from mammo_batch.engine.dicom.record import STATUS_FAILED, STATUS_SKIPPED, ViewRecord

# Per frame: 3x the largest FFDM detector; a lying header (65535 x 65535) is refused before allocating.
MAX_PIXELS = 100_000_000

# reason code -> what it means (shown by `inspect`, written to views.parquet)
REASONS = {
    "empty_file": "the file is empty",
    "special_file": "not a regular file (a FIFO, socket or device): never opened",
    "broken_link": "a symbolic link to nothing",
    "symlink_loop": "a folder link back into one of its own parent folders: not followed",
    "symlink_seen": "a folder link to a folder read through another path: not read twice",
    "unreadable_folder": "the folder could not be listed",
    "not_dicom": "not a DICOM file",
    "unreadable": "the DICOM header could not be parsed",
    "truncated": "the file is shorter than its pixel data says",
    "too_large": f"the header claims more than {MAX_PIXELS:,} pixels per frame: refused before reading",
    "header_warnings": "scored, but the DICOM reader found malformed values in the header",
    "dicomdir": "a DICOMDIR index, not an image",
    "no_pixel_data": "no pixel data (a report, presentation state or other non-image object)",
    "not_mammogram": "modality is not MG",
    "for_processing": "a For Processing image (not for reading)",
    "tomosynthesis": "breast tomosynthesis object",
    "multi_frame": "multi-frame image (DBT or a cine)",
    "not_grayscale": "not a grayscale image (RGB, YBR or palette colour)",
    "unknown_laterality": "no usable laterality (ImageLaterality, Laterality, FrameLaterality)",
    "unsupported_transfer_syntax": "no installed decoder for this transfer syntax",
    "view_excluded": "the view is not in --view-filter",
    "duplicate": "a copy of another file of the study (same SOPInstanceUID): scored once",
    "decode_error": "the pixel data could not be decoded",
    "worker_crash": "the worker process preparing the view died twice on it",
    "timeout": "preparing the view took longer than the per-file time limit",
    "not_readable_on_node": "--engine ray: the node preparing the view could not open the path",
}
# Study-level reasons (a study, not a file, is affected).
STUDY_REASONS = {
    "patient_conflict": "an AccessionNumber, StudyInstanceUID or folder is shared by several PatientIDs: "
    "split into one study per patient",
}

# Storage SOP classes of images (CR/DX/MG, CT, MR, secondary capture, breast tomosynthesis).
IMAGE_CLASS_PREFIXES = tuple(f"1.2.840.10008.5.1.4.1.1.{family}" for family in ("1", "2", "4", "7", "13.1"))


# Mammography storage classes (digital mammography, breast tomosynthesis and projection): one of these
# without pixel data was cut short or broken and fails; another modality's header-only image (a
# DICOMDIR export's CT stubs) is not a mammogram and is skipped.
MAMMOGRAPHY_CLASS_PREFIXES = ("1.2.840.10008.5.1.4.1.1.1.2", "1.2.840.10008.5.1.4.1.1.13.1")


def is_image_class(sop_class_uid: str) -> bool:
    return _in_families(sop_class_uid, IMAGE_CLASS_PREFIXES)


def is_mammography_class(sop_class_uid: str) -> bool:
    return _in_families(sop_class_uid, MAMMOGRAPHY_CLASS_PREFIXES)


def _in_families(uid: str, prefixes: tuple[str, ...]) -> bool:
    return any(uid == p or uid.startswith(p + ".") for p in prefixes)

MAMMO_FOR_PROCESSING = {
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.5",  # Breast Projection X-Ray Image - For Processing
}
TOMOSYNTHESIS = {"1.2.840.10008.5.1.4.1.1.13.1.3"}  # Breast Tomosynthesis Image
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
GRAYSCALE = {"MONOCHROME1", "MONOCHROME2"}


def apply_policy(record: ViewRecord, views: Collection[str] | None = None) -> ViewRecord:
    """Mark `record` skipped (with a reason) if the view policy excludes it."""
    if not record.scorable:
        return record
    for reason, excluded in _checks(record, views):
        if excluded:
            return skip(record, reason)
    return record


def _checks(r: ViewRecord, views: Collection[str] | None):
    yield "not_mammogram", r.modality != "MG"
    yield "for_processing", (
        r.sop_class_uid in MAMMO_FOR_PROCESSING or r.presentation_intent == "FOR PROCESSING"
    )
    yield "tomosynthesis", r.sop_class_uid in TOMOSYNTHESIS
    yield "multi_frame", r.n_frames > 1
    yield "not_grayscale", r.photometric not in GRAYSCALE
    yield "unknown_laterality", r.laterality not in ("L", "R")
    yield "view_excluded", bool(views) and r.view not in views


def fail(record: ViewRecord, reason: str, detail: str = "") -> ViewRecord:
    """Mark `record` failed: the file should be an image but could not be read or decoded."""
    return record.reject(STATUS_FAILED, reason, detail or REASONS[reason])


def skip(record: ViewRecord, reason: str, detail: str = "") -> ViewRecord:
    """Mark `record` skipped: a valid file that is not a view to score (a CSV, a DICOMDIR, a report)."""
    return record.reject(STATUS_SKIPPED, reason, detail or REASONS[reason])

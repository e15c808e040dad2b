"""DICOM files -> view records (headers, view policy) and decoded pixel arrays."""

from mammo_batch.engine.dicom.decode import DecodeError, decode_pixels, read_and_decode
from mammo_batch.engine.dicom.discover import discover, iter_candidate_files
from mammo_batch.engine.dicom.header import read_view
from mammo_batch.engine.dicom.quiet import silence_third_party
from mammo_batch.engine.dicom.record import ViewRecord

# No tag value may reach stderr or a log, in this process or in any worker importing this package.
silence_third_party()

__all__ = [
    "DecodeError",
    "ViewRecord",
    "decode_pixels",
    "discover",
    "iter_candidate_files",
    "read_and_decode",
    "read_view",
]

"""Which views a GPU decoder may take, and their codestreams cut from the encapsulated PixelData.

The codestream is the view's single frame as pydicom's encaps helpers find it (basic / extended
offset table or fragment walk), never a search for marker bytes. A GPU decoder takes JPEG 2000
(.90/.91), HTJ2K (.201-.203) and JPEG lossless with predictor 1 (.70: nvJPEG's lossless backend
supports only that predictor). Everything else goes to the CPU decoder for that view, with one of
the FALLBACK_* reasons (counted and reported per reason by the preparer).
"""

from __future__ import annotations

from pydicom import Dataset
from pydicom.encaps import get_frame
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from mammo_batch.engine.dicom.decoders.base import EncodedView

GPU_SYNTAXES = frozenset({JPEG2000Lossless, JPEG2000, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, JPEGLosslessSV1})

FALLBACK_NATIVE = "native"  # not encapsulated (explicit / implicit / deflated little endian, big endian)
FALLBACK_RLE = "rle"
FALLBACK_JPEG_LS = "jpeg_ls"
FALLBACK_PREDICTOR = "jpeg_lossless_predictor"  # .57: any predictor; the GPU takes only predictor 1 (.70)
FALLBACK_OTHER = "other_transfer_syntax"  # e.g. baseline / extended JPEG
FALLBACK_SIGNED = "signed"  # PixelRepresentation 1: the CPU OpenJPEG path fails on it, keep it on pydicom
FALLBACK_FRAMES = "not_single_frame"
FALLBACK_COLOUR = "not_grayscale"
FALLBACK_CODESTREAM = "codestream_error"  # the encapsulated PixelData could not be cut
FALLBACK_GPU_ERROR = "gpu_decode_error"  # the GPU decoder failed on this codestream (set by the preparer)


def encode_route(ds: Dataset) -> EncodedView:
    """The view with its codestream when a GPU decoder may take it; else with the reason it may not."""
    syntax = ds.file_meta.TransferSyntaxUID
    why = _why_cpu(ds, syntax)
    if why:
        return EncodedView(ds, None, why)
    try:
        codestream = get_frame(ds.PixelData, 0, number_of_frames=1)
    except Exception:  # a malformed item / offset table: pydicom may still manage on the CPU
        return EncodedView(ds, None, FALLBACK_CODESTREAM)
    return EncodedView(ds, bytes(codestream))


def _why_cpu(ds: Dataset, syntax: str) -> str:
    if syntax not in GPU_SYNTAXES:
        if not getattr(syntax, "is_encapsulated", False):
            return FALLBACK_NATIVE
        if syntax == RLELossless:
            return FALLBACK_RLE
        if syntax in (JPEGLSLossless, JPEGLSNearLossless):
            return FALLBACK_JPEG_LS
        if syntax == JPEGLossless:
            return FALLBACK_PREDICTOR
        return FALLBACK_OTHER
    if int(ds.get("PixelRepresentation", 0)) != 0:
        return FALLBACK_SIGNED
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        return FALLBACK_COLOUR
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return FALLBACK_FRAMES
    return ""

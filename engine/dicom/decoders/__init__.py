"""Decoder backends: one small interface (base.py), one file per backend, declared in registry.py.

    cpu         pydicom + pylibjpeg / openjpeg / pyjpegls (every transfer syntax; the fallback)
    nvimgcodec  NVIDIA nvImageCodec (the default on a GPU; its CPU backend runs the same code here)
    dali        NVIDIA DALI fn.decoders.image (nvImageCodec inside; the `dali` extra)

codestream.py cuts a view's codestream out of encapsulated PixelData and says whether a GPU
decoder may take it; registry.py turns `--decoder auto|cpu|nvimgcodec|dali` into a backend.
"""

from mammo_batch.engine.dicom.decoders.base import DecoderBackend, DecoderUnavailableError
from mammo_batch.engine.dicom.decoders.registry import CHOICES as DECODERS
from mammo_batch.engine.dicom.decoders.registry import choose_decoder, decoder_help

__all__ = ["DECODERS", "DecoderBackend", "DecoderUnavailableError", "choose_decoder", "decoder_help"]

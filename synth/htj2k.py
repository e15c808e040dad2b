"""HTJ2K lossless frames for synthetic DICOMs (pydicom has no HTJ2K encoder).

imagecodecs' OpenJPH encoder where it is installed (the `dev` extra); else nvImageCodec's encoder
with `ht=True`, which only its GPU backend (nvJPEG2000) implements: the GPU check machine has
nvImageCodec and a GPU but no room for imagecodecs among the wheels that travel there.
"""

from __future__ import annotations

import numpy as np


def encode_htj2k_frame(stored: np.ndarray) -> bytes:
    """A raw HTJ2K codestream (no JP2 box), reversible (lossless), of a 2-D uint16 image."""
    stored = np.ascontiguousarray(stored, dtype=np.uint16)
    try:
        import imagecodecs
    except ImportError:
        return _nvimgcodec_htj2k(stored)
    return bytes(imagecodecs.htj2k_encode(stored))


def _nvimgcodec_htj2k(stored: np.ndarray) -> bytes:
    """nvImageCodec's lossless HT encode on the GPU (API per its 0.9 docstrings; first run: the GPU check)."""
    try:
        from nvidia import nvimgcodec
    except ImportError:
        raise RuntimeError("the htj2k synth variant needs imagecodecs (pip install imagecodecs) or "
                           "nvImageCodec with a GPU") from None
    params = nvimgcodec.EncodeParams(
        quality_type=nvimgcodec.QualityType.LOSSLESS,
        jpeg2k_encode_params=nvimgcodec.Jpeg2kEncodeParams(ht=True, bitstream_type=nvimgcodec.Jpeg2kBitstreamType.J2K))
    encoded = nvimgcodec.Encoder().encode(nvimgcodec.as_image(stored[:, :, np.newaxis]), "jpeg2k", params=params)
    if encoded is None:
        raise RuntimeError("nvImageCodec could not encode HTJ2K (it needs a GPU with nvJPEG2000 >= 0.9)")
    return bytes(encoded)

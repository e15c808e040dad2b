"""HTJ2K lossless frames for synthetic DICOMs, with imagecodecs' OpenJPH encoder (pydicom has none).

Only the `htj2k` variant needs it; imagecodecs is in the `dev` extra, not the core install.
"""

from __future__ import annotations

import numpy as np


def encode_htj2k_frame(stored: np.ndarray) -> bytes:
    """A raw HTJ2K codestream (no JP2 box), reversible (lossless), of a 2-D uint16 image."""
    try:
        import imagecodecs
    except ImportError:
        raise RuntimeError("the htj2k synth variant needs imagecodecs (pip install imagecodecs)") from None
    return bytes(imagecodecs.htj2k_encode(np.ascontiguousarray(stored, dtype=np.uint16)))

"""Undo DALI's dynamic-range stretch (gpu.md, "the main trap").

DALI's GPU decoder converts to the requested dtype's full range: asked for UINT16, a p-bit
codestream comes back as round(raw * 65535 / (2^p - 1)). Its CPU decoder does not (an `assert
multiplier == 1` with a TODO in image_decoder.h), so which one a build does must be detected,
not assumed. A stretched image lies on the grid round(k * m), k = 0..2^p-1; a raw one does not
(unless it is all zeros, where both readings agree), and any value above 2^p - 1 is stretched.
"""

from __future__ import annotations

from typing import Any


def multiplier(precision: int) -> float:
    return 65535.0 / ((1 << precision) - 1)


def undo_stretch(image: Any, precision: int) -> tuple[Any, bool]:
    """(stored values, whether a stretch was found and undone) for a torch integer tensor."""
    if precision >= 16:
        return image, False
    m = multiplier(precision)
    values = image.double()
    raw = (values / m).round()
    if int(image.max()) > (1 << precision) - 1 or bool(((raw * m).round() == values).all()):
        return raw.to(image.dtype), True
    return image, False

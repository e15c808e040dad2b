"""Planted findings: a mass (bright, slightly irregular blob) or a calcification cluster
(several tiny, very bright dots).

A Lesion is described relative to the breast, not in pixels, so that the CC and the MLO
of one breast show it at the same distance from the nipple, at any image size. Its
shape comes from its own seed, so every view of the breast draws the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mammo_batch.synth.views import OBLIQUE_VIEWS

if TYPE_CHECKING:  # phantom.py imports this module; the geometry is only a type here
    from mammo_batch.synth.phantom import ViewGeometry

KINDS = ("mass", "calcs")


@dataclass(frozen=True)
class Lesion:
    kind: str  # "mass" | "calcs"
    depth: float  # distance from the nipple, fraction of the chest wall-nipple distance
    offset_cc: float  # off the nipple axis in CC-type views, fraction of the half-height
    offset_oblique: float  # same in MLO-type views (below the axis, clear of the pectoral)
    radius: float  # mass radius or cluster radius, fraction of the image width
    contrast: float  # grey levels added, on the [0, 1] scale of the phantom
    shape_seed: int  # outline of the mass / positions of the dots
    dots: int = 0  # calcs only
    dot_sigma: float = 0.0  # calcs only: dot size, fraction of the image width


def draw_lesion(rng: np.random.Generator, difficulty: float, kind: str | None = None) -> Lesion:
    """A random lesion; ``difficulty`` in [0, 1] shrinks it and lowers its contrast.

    At the default 0.3 a mass is ~4.5% of the width across in radius with ~0.22 contrast,
    visible to a small CNN even at 64 pixels wide.
    """
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    d = difficulty
    kind = kind or str(rng.choice(KINDS))
    placement = {
        "depth": float(rng.uniform(0.3, 0.65)),
        "offset_cc": float(rng.uniform(-0.45, 0.45)),
        "offset_oblique": float(rng.uniform(0.05, 0.45)),
        "shape_seed": int(rng.integers(0, 2**31)),
    }
    jitter = float(rng.uniform(0.9, 1.1))
    if kind == "mass":
        return Lesion(
            kind,
            radius=(0.055 - 0.035 * d) * jitter,
            contrast=(0.28 - 0.20 * d) * jitter,
            **placement,
        )
    if kind == "calcs":
        return Lesion(
            kind,
            radius=(0.035 - 0.012 * d) * jitter,
            contrast=(0.60 - 0.35 * d) * jitter,
            dots=round(14 - 7 * d),
            dot_sigma=0.0035 - 0.0015 * d,
            **placement,
        )
    raise ValueError(f"unknown lesion kind {kind!r}; expected one of {KINDS}")


def lesion_center(lesion: Lesion, g: ViewGeometry, view: str) -> tuple[float, float]:
    """(x, y) in pixels of the canonical image (chest wall left)."""
    offset = lesion.offset_oblique if view.upper() in OBLIQUE_VIEWS else lesion.offset_cc
    half = g.half_down if offset > 0 else g.half_up
    y = g.center_y + offset * half
    x = g.depth * (1.0 - lesion.depth)
    return min(x, 0.8 * g.edge_x(y)), y  # keep it well inside the skin on that row


def render_lesion(
    tissue: np.ndarray, lesion: Lesion, g: ViewGeometry, size: tuple[int, int], view: str
) -> None:
    """Add the lesion to ``tissue`` (float32, canonical orientation) in place."""
    cx, cy = lesion_center(lesion, g, view)
    width = size[1]
    radius = max(1.5, lesion.radius * width)
    reach = radius * (1.6 if lesion.kind == "mass" else 1.3)
    y0, y1 = max(0, int(cy - reach)), min(size[0], int(cy + reach) + 2)
    x0, x1 = max(0, int(cx - reach)), min(size[1], int(cx + reach) + 2)
    if y0 >= y1 or x0 >= x1:
        return
    # Work on the patch only: cost does not grow with the image.
    py = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    px = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    shape_rng = np.random.default_rng(lesion.shape_seed)
    if lesion.kind == "mass":
        added = _mass(shape_rng, px, py, radius)
    else:
        added = _calcs(shape_rng, px, py, radius, max(0.5, lesion.dot_sigma * width), lesion.dots)
    tissue[y0:y1, x0:x1] += lesion.contrast * added


def _mass(rng: np.random.Generator, px: np.ndarray, py: np.ndarray, radius: float) -> np.ndarray:
    """A blob with a lobulated outline: radius modulated by a few low angular harmonics."""
    aspect = rng.uniform(0.8, 1.2)
    rho = np.sqrt((px * aspect) ** 2 + (py / aspect) ** 2)
    theta = np.arctan2(py, px)
    outline = np.ones_like(theta)
    for k in range(2, 6):
        amplitude = rng.uniform(0.03, 0.12) / np.sqrt(k - 1)
        outline += amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    t = np.clip((1.0 - rho / (radius * outline)) / 0.35, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _calcs(
    rng: np.random.Generator,
    px: np.ndarray,
    py: np.ndarray,
    radius: float,
    sigma: float,
    count: int,
) -> np.ndarray:
    """Gaussian dots scattered in a disc of ``radius``, each with its own brightness."""
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, count))
    a = rng.uniform(0.0, 2 * np.pi, count)
    amp = rng.uniform(0.7, 1.0, count)
    out = np.zeros(np.broadcast_shapes(px.shape, py.shape), np.float32)
    for dx, dy, k in zip(r * np.cos(a), r * np.sin(a), amp, strict=True):
        out += k * np.exp(-((px - dx) ** 2 + (py - dy) ** 2) / (2 * sigma * sigma))
    return np.minimum(out, 1.0)

"""The anatomy image: one synthetic mammography view as a detector would store it.

Canonical orientation, the one every function here works in: chest wall on the LEFT
edge, nipple pointing right, MONOCHROME2 sense (dense tissue bright, air dark).
Orientation and photometric variants are applied later, when the DICOM is written.

Everything is vectorised numpy/cv2 on float32 in [0, 1] and quantised at the end, so a
3328x2560 view takes a fraction of a second. Feature sizes are fractions of the image
size, so a 256x208 view looks like a shrunk 3328x2560 one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from mammo_batch.synth.lesions import Lesion, render_lesion
from mammo_batch.synth.views import OBLIQUE_VIEWS

# Grey levels in [0, 1] before quantisation (MONOCHROME2: higher = more attenuation).
AIR = 0.03  # open-field detector background
FAT = 0.30  # fatty tissue at full compressed thickness
GLAND = 0.32  # added on top of fat where the tissue is fibroglandular
SKIN = 0.07  # the skin line is a little denser than the fat beneath it
PECTORAL = 0.22  # the muscle is much denser than fat
MARKER = 0.97  # lead laterality marker: close to the top of the range
NOISE_SIGMA = 0.006  # detector + quantum noise


@dataclass(frozen=True)
class BreastParams:
    """What stays the same for one breast across its views (and the patient's studies).

    Fractions of the image size, so the same breast fits any --size.
    """

    depth: float  # chest wall to nipple, fraction of the width
    half_height: float  # half the breast height at the chest wall (CC), fraction of the height
    density: float  # 0 = almost entirely fatty, 1 = extremely dense

    @classmethod
    def draw(cls, rng: np.random.Generator) -> BreastParams:
        return cls(
            depth=float(rng.uniform(0.55, 0.75)),
            half_height=float(rng.uniform(0.30, 0.40)),
            density=float(rng.beta(2.0, 2.5)),
        )


@dataclass(frozen=True)
class ViewGeometry:
    """Pixel geometry of one view: a half ellipse on the chest wall (two half-heights for
    oblique views, whose upper part runs into the axilla), plus the pectoral triangle."""

    center_y: float  # row of the nipple axis
    depth: float  # a: chest wall to nipple, pixels
    half_up: float  # b above the axis, pixels
    half_down: float  # b below the axis, pixels
    pectoral_width: float  # along the top edge, pixels (0: no muscle)
    pectoral_height: float  # along the chest wall, pixels

    def edge_x(self, y: float) -> float:
        """Column of the skin edge on row y (0 outside the breast's rows)."""
        b = self.half_up if y < self.center_y else self.half_down
        t = 1.0 - ((y - self.center_y) / b) ** 2
        return self.depth * float(np.sqrt(max(t, 0.0)))


def view_geometry(
    rng: np.random.Generator, size: tuple[int, int], view: str, breast: BreastParams
) -> ViewGeometry:
    """Per-view jitter around the breast's own shape (positioning is never identical)."""
    height, width = size
    depth = breast.depth * width * rng.uniform(0.95, 1.03)
    if view.upper() not in OBLIQUE_VIEWS:
        center = height * rng.uniform(0.46, 0.54)
        half = breast.half_height * height * rng.uniform(0.95, 1.05)
        return ViewGeometry(center, depth, half, half, 0.0, 0.0)
    # Oblique: the nipple sits lower and the upper boundary reaches the top edge, where the
    # pectoral muscle fills the corner between the chest wall and the top edge.
    center = height * rng.uniform(0.55, 0.60)
    half_down = breast.half_height * height * rng.uniform(1.0, 1.12)
    half_up = center * 1.15
    top_depth = depth * np.sqrt(1.0 - (center / half_up) ** 2)
    pectoral_width = min(width * rng.uniform(0.22, 0.34), 0.8 * top_depth)
    pectoral_height = center * rng.uniform(0.65, 0.9)
    return ViewGeometry(center, depth, half_up, half_down, pectoral_width, pectoral_height)


def phantom_view(
    rng: np.random.Generator,
    size: tuple[int, int],
    laterality: str,
    view: str,
    lesions: Sequence[Lesion] = (),
    *,
    breast: BreastParams | None = None,
    bits_stored: int = 12,
    mirror_marker: bool = False,
) -> np.ndarray:
    """One view as stored pixels: uint16 in [0, 2**bits_stored - 1], chest wall on the left,
    MONOCHROME2 sense. ``laterality`` only picks the marker letter ("L"/"R").

    ``rng`` drives the texture, noise and positioning jitter; ``breast`` (drawn from ``rng``
    when None) is what the views of one breast share; ``lesions`` are rendered into it.
    ``mirror_marker``: draw the letter mirrored, so that it reads right once the image is
    stored flipped (chest wall on the right), as a real lead marker would.
    """
    if not 8 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in 8..16, got {bits_stored}")
    breast = breast or BreastParams.draw(rng)
    image = phantom_float(rng, size, laterality, view, lesions, breast=breast, mirror_marker=mirror_marker)
    max_value = (1 << bits_stored) - 1
    return np.rint(image * max_value).astype(np.uint16)


def phantom_float(
    rng: np.random.Generator,
    size: tuple[int, int],
    laterality: str,
    view: str,
    lesions: Sequence[Lesion] = (),
    *,
    breast: BreastParams,
    mirror_marker: bool = False,
) -> np.ndarray:
    """The same image as float32 in [0, 1], before quantisation."""
    geometry = view_geometry(rng, size, view, breast)
    # The anatomy is smooth, so it is drawn on a grid of at most ~1k rows and upsampled;
    # only the skin edge, lesions, marker and noise need every pixel.
    work_y, work_x = _work_grid(size)
    radius = _elliptic_radius(work_y, work_x, geometry)  # < 1 inside the breast
    thickness = 0.15 + 0.85 * _smoothstep((1.0 - radius) / 0.12)  # rolls off at the rim
    tissue = thickness * (FAT + GLAND * _glandular(rng, work_y, work_x, geometry, radius, breast))
    if geometry.pectoral_width > 0:
        tissue += PECTORAL * _pectoral(work_y, work_x, geometry)
    radius, tissue = _upsample(radius, size), _upsample(tissue, size)
    tissue += SKIN * _skin_line(radius, geometry, size[1])
    for lesion in lesions:
        render_lesion(tissue, lesion, geometry, size, view)
    image = np.where(radius < 1.0, tissue, 0.0).astype(np.float32)
    image += AIR
    _add_nipple(image, geometry, size[1])
    _add_marker(image, laterality, size, mirror_marker)
    # Uniform noise of the right spread: 3x cheaper than Gaussian at this size.
    image += (rng.random(size, dtype=np.float32) - 0.5) * np.float32(NOISE_SIGMA * 12**0.5)
    return np.clip(image, 0.0, 1.0, out=image)


def _work_grid(size: tuple[int, int], max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Full-resolution pixel coordinates of a coarser grid's pixel centres, as a column of
    y and a row of x (cv2.resize's centre alignment, so upsampling lines up exactly)."""
    height, width = size
    step = max(1.0, max(height, width) / max_side)
    rows, cols = max(2, round(height / step)), max(2, round(width / step))
    y = (np.arange(rows, dtype=np.float32) + 0.5) * (height / rows) - 0.5
    x = (np.arange(cols, dtype=np.float32) + 0.5) * (width / cols) - 0.5
    return y[:, None], x[None, :]


def _upsample(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if array.shape == size:
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def _elliptic_radius(y: np.ndarray, x: np.ndarray, g: ViewGeometry) -> np.ndarray:
    """Normalised elliptic radius around the nipple axis's chest-wall point (1 on the skin)."""
    half = np.where(y < g.center_y, g.half_up, g.half_down).astype(np.float32)
    return np.sqrt((x / np.float32(g.depth)) ** 2 + ((y - np.float32(g.center_y)) / half) ** 2)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Band-limited noise, zero mean, unit spread: a coarse random grid of ``cells`` rows,
    blurred and upsampled (the cost is in the small grid, not the image)."""
    rows, cols = shape
    grid_h = max(2, cells)
    grid_w = max(2, round(cells * cols / rows))
    grid = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    grid = cv2.GaussianBlur(grid, (0, 0), 1.0)
    full = cv2.resize(grid, (cols, rows), interpolation=cv2.INTER_CUBIC)
    return (full - full.mean()) / (full.std() + 1e-6)


def _glandular(
    rng: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
    g: ViewGeometry,
    radius: np.ndarray,
    breast: BreastParams,
) -> np.ndarray:
    """Fraction of fibroglandular tissue in [0, 1]: blobby patches from multi-scale noise,
    more of them near the chest wall and the nipple axis, more overall in dense breasts."""
    shape = radius.shape
    texture = (
        _smooth_noise(rng, shape, 6)
        + 0.6 * _smooth_noise(rng, shape, 24)
        + 0.35 * _smooth_noise(rng, shape, min(shape[0] // 4, 96))
    )
    envelope = np.clip(1.0 - x / np.float32(1.05 * g.depth), 0.0, 1.0) * np.clip(1.0 - radius, 0.0, 1.0)
    logits = 1.1 * texture + 3.0 * envelope + np.float32(3.0 * breast.density - 2.2)
    gland = 1.0 / (1.0 + np.exp(-1.3 * logits))
    # Fine strands and ducts, so dense regions are not flat plateaus.
    fine = _smooth_noise(rng, shape, min(shape[0] // 3, 160))
    return gland * (0.92 + 0.08 * np.tanh(fine))


def _skin_line(radius: np.ndarray, g: ViewGeometry, width: int) -> np.ndarray:
    """A thin band just inside the skin edge (about 0.4% of the width, at least 1 pixel)."""
    band = np.float32(max(1.0, 0.004 * width) / g.depth)
    return ((radius > 1.0 - band) & (radius < 1.0)).astype(np.float32)


def _pectoral(y: np.ndarray, x: np.ndarray, g: ViewGeometry) -> np.ndarray:
    """Triangle in the upper chest-wall corner with a soft edge and a slight gradient."""
    margin = 1.0 - (x / np.float32(g.pectoral_width) + y / np.float32(g.pectoral_height))
    edge = np.float32(max(2.0, 0.004 * g.depth) / g.pectoral_width)
    return _smoothstep(margin / edge) * (0.85 + 0.15 * np.clip(margin, 0.0, 1.0))


def _add_nipple(image: np.ndarray, g: ViewGeometry, width: int) -> None:
    """A small dense half-disc protruding from the skin at the tip of the breast."""
    radius = max(2, round(0.018 * width))
    center = (round(g.depth - 0.3 * radius), round(g.center_y))
    mask = np.zeros(image.shape, np.uint8)
    cv2.circle(mask, center, radius, 1, thickness=-1)
    image[mask > 0] = np.maximum(image[mask > 0], AIR + FAT * 0.9)


def _add_marker(image: np.ndarray, laterality: str, size: tuple[int, int], mirror: bool) -> None:
    """A burned-in lead marker: a solid block letter in the top corner on the nipple side,
    well clear of the breast (the breast never reaches past ~78% of the width)."""
    height, width = size
    letter = "L" if laterality.upper().startswith("L") else "R"
    glyph_h = max(7, round(0.05 * height))
    glyph_w = max(5, round(0.7 * glyph_h))
    stroke = max(1, round(0.22 * glyph_w))
    x0 = width - round(0.04 * width) - glyph_w
    y0 = round(0.03 * height)
    patch = np.zeros((glyph_h, glyph_w), np.float32)
    _draw_letter(patch, letter, stroke)
    if mirror:
        patch = patch[:, ::-1]
    region = image[y0 : y0 + glyph_h, x0 : x0 + glyph_w]
    np.maximum(region, patch * MARKER, out=region)


def _draw_letter(patch: np.ndarray, letter: str, stroke: int) -> None:
    """Block capitals from rectangles only: identical on every platform and OpenCV build."""
    h, w = patch.shape
    patch[:, :stroke] = 1.0  # the upright both letters share
    if letter == "L":
        patch[h - stroke :, :] = 1.0
        return
    mid = h // 2  # R: a "P" (top bar, bowl side, middle bar) plus a diagonal leg
    patch[:stroke, :] = 1.0
    patch[: mid + stroke, w - stroke :] = 1.0
    patch[mid : mid + stroke, :] = 1.0
    rows = np.arange(mid, h)
    cols = np.rint(stroke + (rows - mid) * (w - 2 * stroke) / max(1, h - 1 - mid)).astype(int)
    for offset in range(stroke):
        patch[rows, np.clip(cols + offset, 0, w - 1)] = 1.0

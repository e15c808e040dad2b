"""Mask, orientation and resize on hand-made images with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydicom import Dataset

from mammo_batch.engine.pixels.mask import find_breast, small_copy
from mammo_batch.engine.pixels.orient import LEFT, RIGHT, decide, side_from_tags
from mammo_batch.engine.pixels.resize import fit


def breast_image(height=1200, width=900, chest_wall=LEFT, marker=True, noise=True) -> np.ndarray:
    """A half-ellipse 'breast' on the chest-wall edge, a bright marker block, detector noise."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:height, :width]
    inside = ((yy - height / 2) / (0.42 * height)) ** 2 + (xx / (0.6 * width)) ** 2 < 1
    image = np.where(inside, 30000 + 8000 * np.sin(xx / 17.0), 0).astype(np.float64)
    if noise:
        image += rng.normal(400, 150, size=image.shape)
    if marker:
        image[60:140, width - 160 : width - 90] = 60000
    image = np.clip(image, 0, 65535).astype(np.uint16)
    return image if chest_wall == LEFT else image[:, ::-1].copy()


def test_mask_keeps_the_breast_and_drops_marker_and_noise():
    image = breast_image()
    small, scale = small_copy(image)
    breast = find_breast(small, scale)
    top, bottom, left, right = breast.bbox(image.shape, margin=0)
    # The half-ellipse spans rows 96..1104 and columns 0..540; the marker is not in the box.
    assert left == 0 and abs(right - 540) < 15
    assert abs(top - 96) < 15 and abs(bottom - 1104) < 15
    assert breast.touches_left > 0.5 and breast.touches_right == 0


@pytest.mark.parametrize("chest_wall", [LEFT, RIGHT])
def test_image_decides_the_chest_wall_side_and_overrides_wrong_tags(chest_wall):
    image = breast_image(chest_wall=chest_wall)
    small, scale = small_copy(image)
    ds = Dataset()
    ds.ImageLaterality = "R"
    ds.PatientOrientation = ["A", "R"] if chest_wall == RIGHT else ["P", "L"]  # wrong on purpose
    orientation = decide(ds, find_breast(small, scale))
    assert orientation.chest_wall == chest_wall
    assert orientation.source == "image-overrode-tags"


def test_tags_decide_when_the_image_is_ambiguous():
    flat = np.zeros((400, 300), np.uint16)  # nothing touches either edge
    ds = Dataset()
    ds.ImageLaterality = "R"
    orientation = decide(ds, find_breast(flat))
    assert (orientation.chest_wall, orientation.source) == (RIGHT, "tags")


@pytest.mark.parametrize(
    "tags,expected",
    [
        ({"PatientOrientation": ["A", "FR"]}, LEFT),
        ({"PatientOrientation": ["P", "L"]}, RIGHT),
        ({"ImageLaterality": "L"}, LEFT),
        ({"ImageLaterality": "R"}, RIGHT),
        ({"Laterality": "R", "FieldOfViewHorizontalFlip": "YES"}, LEFT),
        ({"PatientOrientation": "CC", "Laterality": "R"}, RIGHT),  # a view name, not a direction
        ({}, None),
    ],
)
def test_side_from_tags(tags, expected):
    ds = Dataset()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    assert side_from_tags(ds) == expected


def test_fit_keeps_aspect_pads_flush_left_and_centres_vertically():
    image = np.full((300, 400), 200, np.uint8)  # wider than the 2:1 target
    out = fit(image, 256, 128)
    rows = np.nonzero(out[:, 0])[0]
    assert out.shape == (256, 128)
    assert out[:, 0].max() == 200 and len(rows) == 96  # 400 -> 128 wide, so 300 -> 96 tall
    assert rows[0] == (256 - 96) // 2
    tall = fit(np.full((1000, 100), 9, np.uint8), 256, 128)
    assert tall[:, :26].min() == 9 and tall[:, 26:].max() == 0  # padding on the nipple side


def test_fit_is_anti_aliased_when_shrinking():
    checker = (np.indices((1024, 512)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = fit(checker, 128, 64)
    assert abs(float(out.mean()) - 127.5) < 2 and out.std() < 2  # no moire
    nearest = cv2.resize(checker, (64, 128), interpolation=cv2.INTER_NEAREST)
    assert abs(float(nearest.mean()) - 127.5) > 100  # what aliasing does: a wrong grey

"""A view stored mirrored gives the native view's model input, bit for bit (issue 17, item 1).

Mirrored with truthful orientation tags, with the orientation and laterality tags removed, or
(real views) with the tags left stale (the image decides in both), through every lossless
transfer syntax and both photometric interpretations, at widths the 512-px working copy's
block grid does not divide (odd widths, so the grid is not mirror-symmetric), and on the real
CBIS-DDSM views.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset

from mammo_batch.engine.dicom import read_and_decode
from mammo_batch.engine.pixels import Prepared, preprocess
from mammo_batch.engine.pixels.plan import plan_view
from mammo_batch.synth import TRANSFER_SYNTAXES, make_view_dataset, phantom_view

SIZE = (256, 128)
ORIENTATION_TAGS = ("PatientOrientation", "FieldOfViewHorizontalFlip", "Laterality", "ImageLaterality")


def without_orientation_tags(ds: Dataset) -> Dataset:
    ds = copy.deepcopy(ds)
    for keyword in ORIENTATION_TAGS:
        if keyword in ds:
            delattr(ds, keyword)
    return ds


def written_and_read(tmp_path: Path, image: np.ndarray, side: str, **kwargs) -> tuple[Dataset, np.ndarray]:
    """The image as a DICOM file with its chest wall on `side` in the stored pixels, decoded again."""
    path = tmp_path / f"{side}.dcm"
    make_view_dataset(image, "hologic", "L", "MLO", chest_wall_side=side, **kwargs).save_as(
        path, enforce_file_format=True)
    return read_and_decode(path)


def assert_same_input(native: Prepared, mirrored: Prepared, width: int, where: str) -> None:
    assert native.flipped != mirrored.flipped, where
    top, bottom, left, right = native.crop_box
    assert mirrored.crop_box == (top, bottom, width - right, width - left), where  # the same pixels
    assert np.array_equal(native.inputs[SIZE], mirrored.inputs[SIZE]), where


# 1100 rows -> block factor 3; 713 = 3 * 237 + 2 and 411 = 2 * 205 + 1 columns: the working copy
# drops the last columns, which are tissue-free on one side and the chest wall on the other.
@pytest.mark.parametrize("shape, syntaxes", [((1100, 713), TRANSFER_SYNTAXES), ((700, 411), TRANSFER_SYNTAXES[:1])])
def test_synthetic_mirrored_views_give_bit_identical_inputs(tmp_path: Path, shape, syntaxes) -> None:
    image = phantom_view(np.random.default_rng(5), shape, "L", "MLO", bits_stored=12)
    for syntax in syntaxes:
        for photometric in ("MONOCHROME2", "MONOCHROME1"):
            options = {"transfer_syntax": syntax, "photometric": photometric}
            native_ds, native_stored = written_and_read(tmp_path, image, "left", **options)
            native = preprocess(native_ds, native_stored, [SIZE])
            assert native.inputs[SIZE].std() > 10  # a real image, not an empty one
            ds, stored = written_and_read(tmp_path, image, "right", **options)
            assert np.array_equal(stored, native_stored[:, ::-1])  # lossless: a true mirror image
            where = f"{syntax.name} {photometric}"
            assert_same_input(native, preprocess(ds, stored, [SIZE]), shape[1], f"{where}, tags")
            untagged = preprocess(without_orientation_tags(ds), stored, [SIZE])
            assert untagged.orientation.source == "image"
            assert_same_input(native, untagged, shape[1], f"{where}, no tags")


def mirrored_tags(ds: Dataset) -> Dataset:
    """CBIS-DDSM's orientation tags are the laterality alone (its PatientOrientation holds the view
    name); a mirrored copy tells the truth with FieldOfViewHorizontalFlip."""
    ds = copy.deepcopy(ds)
    ds.FieldOfViewHorizontalFlip = "YES"
    return ds


def test_real_cbis_views_mirrored_give_bit_identical_inputs(cbis_cases: Path) -> None:
    files = sorted(cbis_cases.rglob("*.dcm"))
    assert len(files) == 8
    flipped = 0
    for path in files:
        ds, stored = read_and_decode(path)
        native = preprocess(ds, stored, [SIZE])
        flipped += native.flipped
        mirror = np.ascontiguousarray(stored[:, ::-1])
        assert_same_input(native, preprocess(mirrored_tags(ds), mirror, [SIZE]), stored.shape[1], f"{path.name} tags")
        assert_same_input(native, preprocess(without_orientation_tags(ds), mirror, [SIZE]), stored.shape[1],
                          f"{path.name} no tags")
        stale = preprocess(ds, mirror, [SIZE])  # the tags left as they were: now wrong, the image wins
        assert stale.orientation.source == "image-overrode-tags"
        assert_same_input(native, stale, stored.shape[1], f"{path.name} stale tags")
    assert flipped == 4  # both storage directions are covered: CBIS stores right breasts chest wall right


def test_the_torch_render_of_a_mirrored_view_is_bit_identical(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from mammo_batch.engine.pixels.render_torch import render_torch

    image = phantom_view(np.random.default_rng(6), (1100, 713), "L", "CC", bits_stored=12)
    outputs = []
    for side in ("left", "right"):
        ds, stored = written_and_read(tmp_path, image, side)
        plan = plan_view(ds, stored)
        outputs.append(render_torch(torch.from_numpy(stored.astype(np.int32)), plan, [SIZE])[SIZE])
    assert outputs[0].float().std() > 10
    assert torch.equal(outputs[0], outputs[1])

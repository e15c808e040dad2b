"""Regressions that the rest of the suite would not notice (issue 12, section 4), each checked
against an expectation written here, not derived from the engine: the For-Processing SOP class
alone, FrameLaterality only in the functional groups, markers inside the breast's box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.synth import make_view_dataset, phantom_view

FOR_PROCESSING_CLASS = "1.2.840.10008.5.1.4.1.1.1.2.1"  # Digital Mammography X-Ray - For Processing
FOR_PRESENTATION_CLASS = "1.2.840.10008.5.1.4.1.1.1.2"


def mg_view(laterality: str = "L") -> pydicom.Dataset:
    image = phantom_view(np.random.default_rng(8), (192, 160), laterality, "CC")
    return make_view_dataset(image, "hologic", laterality, "CC")


def discovered(ds: pydicom.Dataset, path: Path):
    ds.save_as(path, enforce_file_format=True)
    [record] = discover([path], workers=1)
    return record


def test_the_for_processing_sop_class_alone_is_skipped(tmp_path):
    ds = mg_view()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = FOR_PROCESSING_CLASS
    del ds.PresentationIntentType  # the class alone must be enough
    record = discovered(ds, tmp_path / "proc.dcm")
    assert (record.status, record.reason) == ("skipped", "for_processing")


def test_the_presentation_intent_alone_is_skipped(tmp_path):
    ds = mg_view()
    assert ds.SOPClassUID == FOR_PRESENTATION_CLASS
    ds.PresentationIntentType = "FOR PROCESSING"
    record = discovered(ds, tmp_path / "intent.dcm")
    assert (record.status, record.reason) == ("skipped", "for_processing")


def test_a_for_presentation_view_without_intent_is_scored(tmp_path):
    ds = mg_view()
    del ds.PresentationIntentType
    assert discovered(ds, tmp_path / "plain.dcm").scorable


def _frame_laterality(value: str) -> Sequence:
    anatomy = Dataset()
    anatomy.FrameLaterality = value
    group = Dataset()
    group.FrameAnatomySequence = Sequence([anatomy])
    return Sequence([group])


@pytest.mark.parametrize("groups", ["SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"])
@pytest.mark.parametrize("laterality", ["L", "R"])
def test_frame_laterality_in_the_functional_groups_is_honoured(tmp_path, groups, laterality):
    other = "R" if laterality == "L" else "L"
    ds = mg_view(other)  # pixels and marker of the other side: only the functional groups tell
    for keyword in ("ImageLaterality", "Laterality"):
        if keyword in ds:
            delattr(ds, keyword)
    setattr(ds, groups, _frame_laterality(laterality))
    record = discovered(ds, tmp_path / "frame.dcm")
    assert record.scorable, record.reason
    assert record.laterality == laterality


def test_without_any_laterality_the_view_is_not_scored(tmp_path):
    ds = mg_view()
    for keyword in ("ImageLaterality", "Laterality"):
        if keyword in ds:
            delattr(ds, keyword)
    record = discovered(ds, tmp_path / "none.dcm")
    assert (record.status, record.reason) == ("skipped", "unknown_laterality")


# --- markers inside the breast's bounding box ------------------------------------------------------

HEIGHT, WIDTH = 1200, 900
MARKER = (slice(110, 160), slice(430, 500))  # rows, columns in the stored image
MODEL = (300, 160)


def breast_with_marker(marker: bool) -> np.ndarray:
    """A half-ellipse breast on the left edge (rows 96..1104, columns 0..540) and a bright block
    inside its bounding box but > 250 px from the tissue, where the dilated mask cannot reach."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    inside = ((yy - HEIGHT / 2) / (0.42 * HEIGHT)) ** 2 + (xx / (0.6 * WIDTH)) ** 2 < 1
    image = np.where(inside, 30000 + 8000 * np.sin(xx / 17.0), 0.0)
    image += np.random.default_rng(3).normal(400, 150, size=image.shape)
    assert not inside[MARKER].any()
    image = np.clip(image, 0, 65535).astype(np.uint16)
    if marker:  # as bright as the brightest tissue: the min-max window stays the same
        image[MARKER] = image.max()
    return image


def model_input(tmp_path: Path, marker: bool) -> np.ndarray:
    ds = make_view_dataset(breast_with_marker(marker), "hologic", "L", "CC", bits_stored=16,
                           transfer_syntax="ExplicitVRLittleEndian")
    path = tmp_path / f"marker{marker}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return prepare_file(path, [MODEL], PreprocessSettings(window="minmax")).inputs[MODEL]


def test_a_marker_inside_the_breast_box_is_zeroed(tmp_path):
    with_marker, without = model_input(tmp_path, True), model_input(tmp_path, False)
    # Where the marker lands: the crop box is rows ~84..1116, columns 0..~552 (the half-ellipse
    # + a 1% margin), scaled by ~0.29 into 300x160 and padded on the right only. The block then
    # covers about rows 7..22, columns 125..145 of the model input; a few pixels inside that:
    scale = min(MODEL[0] / (1116 - 84), MODEL[1] / 552)
    rows = slice(int((MARKER[0].start - 84) * scale) + 3, int((MARKER[0].stop - 84) * scale) - 3)
    cols = slice(int(MARKER[1].start * scale) + 3, int(MARKER[1].stop * scale) - 3)
    assert with_marker[rows, cols].size >= 20
    assert (with_marker[rows, cols] == 0).all(), with_marker[rows, cols]
    # The whole input is as if the marker were not there; and the breast itself is kept.
    assert np.array_equal(with_marker, without)
    assert with_marker[MODEL[0] // 2, : MODEL[1] // 4].min() > 0

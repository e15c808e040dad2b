"""Real DICOM files from PyPI packages: discovery, grouping, decoding and the pixel path."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from mammo_batch.engine.dicom import discover, read_and_decode, read_view
from mammo_batch.engine.pixels import preprocess
from mammo_batch.engine.pixels.voi import to_display, voi_output_range
from mammo_batch.engine.studies import group_studies

SIZE = (512, 256)


def test_cbis_cases_are_eight_scorable_views(cbis_cases):
    records = discover([cbis_cases], workers=1)
    assert len(records) == 8
    assert all(r.scorable for r in records), [(r.path, r.reason) for r in records]
    assert sorted((r.laterality, r.view) for r in records) == sorted(
        [(lat, view) for lat in "LR" for view in ("CC", "MLO")] * 2
    )
    assert {r.transfer_syntax for r in records} == {pydicom.uid.RLELossless}


def test_cbis_grouping_by_folder_gives_two_four_view_cases(cbis_cases):
    records = discover([cbis_cases], workers=1)
    # CBIS-DDSM gives every image its own StudyInstanceUID and no accession number,
    # so the identifier-based key keeps them apart ...
    by_uid, orphans = group_studies(records, "auto")
    assert len(by_uid) == 8 and not orphans
    # ... and the folder key recovers the two cases.
    by_folder, _ = group_studies(records, "folder")
    assert len(by_folder) == 2
    for study in by_folder:
        breasts = study.breasts()
        assert {lat: sorted(v.view for v in vs) for lat, vs in breasts.items()} == {
            "L": ["CC", "MLO"], "R": ["CC", "MLO"],
        }


def test_cbis_views_are_cropped_and_face_one_way(cbis_cases):
    for record in discover([cbis_cases], workers=1):
        ds, stored = read_and_decode(record.path)
        prepared = preprocess(ds, stored, [SIZE])
        image = prepared.inputs[SIZE]
        assert image.shape == SIZE and image.dtype == np.uint8
        # CBIS right breasts are stored facing left (chest wall on the right): flipped.
        assert prepared.flipped == (record.laterality == "R"), record.path
        assert prepared.orientation.source == "image"
        # Chest wall now on the left: the left band is tissue, the right band background.
        band = SIZE[1] // 10
        assert image[:, :band].mean() > 4 * image[:, -band:].mean() + 5
        top, bottom, left, right = prepared.crop_box
        assert (right - left) < 0.75 * stored.shape[1], "the crop should drop the background"


@pytest.mark.parametrize("name", ["RG1", "RG3"])
def test_monochrome1_radiographs_are_inverted_and_skipped_by_policy(pydicom_data, name):
    j2k, native = pydicom_data / f"{name}_J2KR.dcm", pydicom_data / f"{name}_UNCR.dcm"
    record = read_view(j2k)
    assert record.photometric == "MONOCHROME1" and record.modality == "CR"
    ds, stored = read_and_decode(j2k)
    _, stored_native = read_and_decode(native)
    np.testing.assert_array_equal(stored, stored_native)
    display = to_display(ds, stored).astype(np.float64) / 65535
    # Independent of our table: pydicom on the whole image, then the inversion by hand.
    y_min, y_max = voi_output_range(ds)
    reference = (apply_voi_lut(apply_modality_lut(stored, ds), ds) - y_min) / (y_max - y_min)
    np.testing.assert_allclose(display, 1.0 - np.clip(reference, 0, 1), atol=1 / 65535)
    # The policy keeps radiographs out of a mammography run, with a reason.
    [skipped] = discover([j2k], workers=1)
    assert (skipped.status, skipped.reason) == ("skipped", "not_mammogram")

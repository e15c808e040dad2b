"""Header rules that the rest of the suite would let change unnoticed, each on real DICOM files whose
tags are set here, against an expectation written by hand (README, "The view policy"):
ImageLaterality wins over Laterality, a 2-frame image is multi-frame, and a study with two
AccessionNumbers is keyed by the smallest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_files import write_view
from pydicom.uid import ExplicitVRLittleEndian

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.studies import group_studies
from mammo_batch.synth import make_view_dataset, phantom_view


def one_record(path: Path):
    [record] = discover([path], workers=1)
    return record


@pytest.mark.parametrize("image_laterality, laterality", [("L", "R"), ("R", "L")])
def test_image_laterality_wins_when_laterality_disagrees(tmp_path, image_laterality, laterality):
    path = write_view(tmp_path / "view.dcm", "P1", "ACC1", "1.2.3.4", lat=image_laterality,
                      ImageLaterality=image_laterality, Laterality=laterality)
    ds = pydicom.dcmread(path)
    assert (ds.ImageLaterality, ds.Laterality) == (image_laterality, laterality)  # the file disagrees
    record = one_record(path)
    assert record.scorable, record.reason
    assert record.laterality == image_laterality


def test_laterality_is_used_when_image_laterality_is_absent(tmp_path):
    path = write_view(tmp_path / "view.dcm", "P1", "ACC1", "1.2.3.4", lat="L", Laterality="R")
    ds = pydicom.dcmread(path)
    del ds.ImageLaterality
    ds.save_as(path)
    assert one_record(path).laterality == "R"


def native_view(frames: int, declare: bool = True) -> pydicom.Dataset:
    """A For-Presentation MG view, uncompressed, with `frames` copies of one frame."""
    image = phantom_view(np.random.default_rng(3), (96, 80), "L", "CC")
    ds = make_view_dataset(image, "hologic", "L", "CC")
    pixels = ds.pixel_array
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(np.stack([pixels] * frames)).tobytes()
    if declare:
        ds.NumberOfFrames = frames
    return ds


@pytest.mark.parametrize("frames, scorable", [(1, True), (2, False)])
def test_two_frames_are_multi_frame_and_one_is_not(tmp_path, frames, scorable):
    path = tmp_path / f"frames{frames}.dcm"
    native_view(frames).save_as(path, enforce_file_format=True)
    record = one_record(path)
    assert record.n_frames == frames
    if scorable:
        assert record.scorable, record.reason
    else:
        assert (record.status, record.reason) == ("skipped", "multi_frame")


def test_a_study_with_two_accession_numbers_is_keyed_by_the_smallest(tmp_path):
    """One patient, one StudyInstanceUID, two AccessionNumbers (a re-registered exam): one study,
    keyed by the smallest accession ("A9" < "B7"), whatever the file order."""
    write_view(tmp_path / "a_first.dcm", "P1", "B7", "1.2.840.77", "L", "CC")
    write_view(tmp_path / "b_second.dcm", "P1", "A9", "1.2.840.77", "R", "CC")
    write_view(tmp_path / "c_third.dcm", "P1", "B7", "1.2.840.77", "R", "MLO")
    studies, orphans = group_studies(discover([tmp_path], workers=1))
    assert not orphans
    assert [(s.key, len(s.scorable)) for s in studies] == [("A9", 3)]

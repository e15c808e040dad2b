"""The same image in every transfer syntax, photometric interpretation and orientation
gives the same model input (within 1/255)."""

from __future__ import annotations

import numpy as np
import pytest

from mammo_batch.engine.dicom import read_and_decode
from mammo_batch.engine.pixels import PreprocessSettings, preprocess
from mammo_batch.engine.pixels.voi import to_display
from mammo_batch.synth import TRANSFER_SYNTAXES, make_view_dataset, phantom_view

SIZE = (256, 128)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return phantom_view(np.random.default_rng(11), (416, 320), "L", "MLO", bits_stored=12)


def model_input(tmp_path, image, window="minmax", **kwargs) -> np.ndarray:
    ds = make_view_dataset(image, "hologic", "L", "MLO", **kwargs)
    path = tmp_path / "view.dcm"
    ds.save_as(path, enforce_file_format=True)
    ds, stored = read_and_decode(path)
    return preprocess(ds, stored, [SIZE], PreprocessSettings(window=window)).inputs[SIZE]


def test_every_syntax_photometric_and_side_gives_the_same_input(tmp_path, image):
    reference = model_input(tmp_path, image).astype(int)
    assert reference.std() > 10  # a real image, not an empty one
    for syntax in TRANSFER_SYNTAXES:
        for photometric in ("MONOCHROME2", "MONOCHROME1"):
            for side in ("left", "right"):
                got = model_input(tmp_path, image, transfer_syntax=syntax,
                                  photometric=photometric, chest_wall_side=side).astype(int)
                where = f"{syntax.name} {photometric} chest wall {side}"
                assert np.abs(got - reference).max() <= 1, where


def test_the_files_window_is_honoured_the_same_way_for_both_photometrics(tmp_path, image):
    # DICOM's LINEAR window is not exactly symmetric under inversion (it is offset by half a
    # stored value), so the two displays differ by 1/(width - 1): a few skin-line pixels at
    # the mask threshold may fall either way. The displays agree within one output step;
    # the model inputs agree almost everywhere.
    displays = []
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        ds = make_view_dataset(image, "hologic", "L", "MLO", photometric=photometric)
        ds.save_as(tmp_path / "w.dcm", enforce_file_format=True)
        ds, stored = read_and_decode(tmp_path / "w.dcm")
        displays.append(to_display(ds, stored).astype(int))
    assert np.abs(displays[0] - displays[1]).max() <= 65535 // 255
    mono2 = model_input(tmp_path, image, window="dicom", photometric="MONOCHROME2").astype(int)
    mono1 = model_input(tmp_path, image, window="dicom", photometric="MONOCHROME1").astype(int)
    assert (np.abs(mono1 - mono2) <= 1).mean() > 0.999
    # The window differs from min-max: the setting is not ignored.
    assert np.abs(mono2 - model_input(tmp_path, image).astype(int)).max() > 5

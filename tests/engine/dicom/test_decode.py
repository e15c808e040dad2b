"""Decoding every transfer syntax a mammogram arrives in, with real files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from mammo_batch.engine.dicom import DecodeError, read_and_decode

# pydicom's own test files (package pydicom) and pydicom-data's, by transfer syntax.
LOSSLESS_SAME_IMAGE = [
    "MR_small.dcm",  # explicit VR little endian (the reference)
    "MR_small_implicit.dcm",  # implicit VR little endian
    "MR_small_bigendian.dcm",  # explicit VR big endian
    "MR_small_RLE.dcm",  # RLE lossless
    "MR_small_jp2klossless.dcm",  # JPEG 2000 lossless (.90)
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS lossless (.80)
]
SINGLE_SYNTAX = [
    ("pydicom", "image_dfl.dcm"),  # deflated explicit VR little endian
    ("pydicom", "JPGExtended.dcm"),  # JPEG extended 12-bit (.51)
    ("pydicom", "JPEG2000.dcm"),  # JPEG 2000 (.91)
    ("pydicom", "JPEGLSNearLossless_16.dcm"),  # JPEG-LS near-lossless (.81)
    ("data", "JPEG-LL.dcm"),  # JPEG lossless SV1 (.70), 16-bit
    ("data", "JPGLosslessP14SV1_1s_1f_8b.dcm"),  # JPEG lossless SV1, 8-bit
    ("data", "RG1_J2KI.dcm"),  # JPEG 2000 (.91), 15-bit MONOCHROME1
]


def test_lossless_syntaxes_decode_to_the_same_values(pydicom_test_files):
    arrays = [read_and_decode(pydicom_test_files / name)[1] for name in LOSSLESS_SAME_IMAGE]
    for name, array in zip(LOSSLESS_SAME_IMAGE[1:], arrays[1:], strict=True):
        np.testing.assert_array_equal(array, arrays[0], err_msg=name)


@pytest.mark.parametrize("where,name", SINGLE_SYNTAX + [("pydicom", n) for n in LOSSLESS_SAME_IMAGE])
def test_values_identical_to_pydicom_pixel_array(pydicom_test_files, pydicom_data, where, name):
    path = (pydicom_test_files if where == "pydicom" else pydicom_data) / name
    ds, stored = read_and_decode(path)
    assert stored.ndim == 2 and stored.std() > 0
    np.testing.assert_array_equal(stored, pydicom.dcmread(path).pixel_array)


def test_lossless_j2k_matches_the_uncompressed_original(pydicom_data):
    for name in ("RG1", "RG3", "MR2", "693"):
        _, j2k = read_and_decode(pydicom_data / f"{name}_J2KR.dcm")
        _, native = read_and_decode(pydicom_data / f"{name}_UNCR.dcm")
        np.testing.assert_array_equal(j2k, native, err_msg=name)


def test_undecodable_and_colour_images_raise_decode_error(pydicom_test_files):
    # A JPEG the installed plugins reject, and an RGB image: a clear error, not a crash.
    with pytest.raises(DecodeError, match="plugins"):
        read_and_decode(pydicom_test_files / "JPEG-lossy.dcm")
    with pytest.raises(DecodeError, match="grayscale"):
        read_and_decode(pydicom_test_files / "SC_rgb_jpeg_dcmtk.dcm")
    with pytest.raises(DecodeError):
        read_and_decode(pydicom_test_files / "MR_truncated.dcm")

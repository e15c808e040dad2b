"""GPU decoder backends on this CPU: nvImageCodec's CPU backend and DALI's CPU pipelines decode
synthetic J2K / HTJ2K files and pydicom-data's real J2K files to exactly pydicom's values; the
routing (which views a GPU decoder may take) and DALI's 16-bit stretch undo. Skipped cleanly
when a GPU package is absent."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from mammo_batch.engine.dicom.decoders import choose_decoder
from mammo_batch.engine.dicom.decoders.codestream import (
    FALLBACK_COLOUR,
    FALLBACK_NATIVE,
    FALLBACK_RLE,
    FALLBACK_SIGNED,
    encode_route,
)
from mammo_batch.engine.dicom.decoders.registry import make_decoder
from mammo_batch.engine.dicom.decoders.stretch import multiplier, undo_stretch
from mammo_batch.synth.dicom_writer import make_view_dataset
from mammo_batch.synth.phantom import phantom_view

torch = pytest.importorskip("torch")
SIZE = (200, 136)
REAL_J2K = ["RG1_J2KR.dcm", "RG1_J2KI.dcm", "RG3_J2KR.dcm", "RG3_J2KI.dcm", "MR2_J2KR.dcm", "MR2_J2KI.dcm"]


def _roundtrip(ds) -> pydicom.Dataset:
    buffer = io.BytesIO()
    ds.save_as(buffer)
    buffer.seek(0)
    return pydicom.dcmread(buffer)


def synthetic(variant: str, bits: int, seed: int = 0) -> pydicom.Dataset:
    image = phantom_view(np.random.default_rng(seed), SIZE, "L", "MLO", bits_stored=bits)
    return _roundtrip(make_view_dataset(image, variant, "L", "MLO", bits_stored=bits))


@pytest.fixture(scope="module")
def views(pydicom_data):
    pytest.importorskip("imagecodecs")  # the htj2k variant's encoder
    datasets = [synthetic(v, bits, i) for i, (v, bits) in enumerate(
        [("hologic", 12), ("hologic", 16), ("htj2k", 12), ("htj2k", 14), ("flipped", 14)])]
    datasets += [pydicom.dcmread(pydicom_data / name) for name in REAL_J2K]
    return datasets


def _check_exact(decoder_name: str, datasets) -> None:
    decoder = make_decoder(decoder_name, "cpu")
    encoded = [encode_route(ds) for ds in datasets]
    assert all(e.codestream is not None for e in encoded), [e.why_cpu for e in encoded]
    results = decoder.decode(encoded)
    for ds, result in zip(datasets, results, strict=True):
        assert not isinstance(result, Exception), result
        assert result.dtype == torch.int32
        np.testing.assert_array_equal(result.numpy(), ds.pixel_array.astype(np.int32))


def test_nvimgcodec_cpu_backend_decodes_exactly_pydicoms_values(views):
    pytest.importorskip("nvidia.nvimgcodec")
    _check_exact("nvimgcodec", views)


def test_dali_cpu_pipeline_decodes_exactly_pydicoms_values(views):
    pytest.importorskip("nvidia.dali")
    _check_exact("dali", views)


def test_a_bad_codestream_fails_only_its_view(views):
    pytest.importorskip("nvidia.nvimgcodec")
    for name in ("nvimgcodec", "dali"):
        pytest.importorskip(f"nvidia.{name}")
        good = encode_route(views[0])
        bad = type(good)(good.ds, good.codestream[: len(good.codestream) // 8])
        results = make_decoder(name, "cpu").decode([bad, good])
        assert isinstance(results[0], Exception)
        np.testing.assert_array_equal(results[1].numpy(), views[0].pixel_array)


def test_routing_sends_only_gpu_syntaxes_with_a_reason(pydicom_data, cbis_cases):
    assert encode_route(synthetic("planmed", 14)).why_cpu == FALLBACK_NATIVE
    rle = pydicom.dcmread(next(iter(sorted(cbis_cases.rglob("*.dcm")))))
    assert encode_route(rle).why_cpu == FALLBACK_RLE
    assert encode_route(pydicom.dcmread(pydicom_data / "693_J2KR.dcm")).why_cpu == FALLBACK_SIGNED
    assert encode_route(pydicom.dcmread(pydicom_data / "US1_J2KR.dcm")).why_cpu == FALLBACK_COLOUR
    routed = encode_route(synthetic("hologic", 12))
    assert routed.why_cpu == "" and routed.codestream[:4] == b"\xff\x4f\xff\x51"  # SOC, SIZ


def test_dali_stretch_is_detected_and_undone():
    rng = np.random.default_rng(0)
    for precision in (10, 12, 14, 15):
        raw = torch.from_numpy(rng.integers(0, 1 << precision, size=(64, 48)).astype(np.int32))
        stretched = (raw.double() * multiplier(precision)).round().to(torch.int32)  # the GPU's documented output
        undone, found = undo_stretch(stretched, precision)
        assert found and torch.equal(undone, raw)
        kept, found = undo_stretch(raw, precision)  # what the CPU backend returns: left alone
        assert not found and torch.equal(kept, raw)
    full = torch.from_numpy(rng.integers(0, 1 << 16, size=(8, 8)).astype(np.int32))
    assert undo_stretch(full, 16) == (full, False)


def test_auto_says_why_it_falls_back_to_the_cpu():
    choice = choose_decoder("auto", "cuda")
    if not torch.cuda.is_available():
        assert choice.name == "cpu" and "(" in choice.reason
    assert choose_decoder("cpu").name == "cpu"

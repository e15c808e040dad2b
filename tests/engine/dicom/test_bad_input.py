"""Bad input inside an otherwise good folder: each bad file recorded with its reason,
every good view still found, nothing crashes (discovery, decode and preview)."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from mammo_batch.engine.cli import cli
from mammo_batch.engine.dicom import DecodeError, discover
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.studies import group_studies
from mammo_batch.synth import make_view_dataset, phantom_view

SIZE = (128, 64)


def mg_view(**kwargs) -> pydicom.Dataset:
    image = phantom_view(np.random.default_rng(5), (192, 160), "L", "CC")
    return make_view_dataset(image, "hologic", "L", "CC", **kwargs)


def save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory, pydicom_test_files, pydicom_data) -> tuple[Path, dict[str, str]]:
    """A good 4-view study plus one file per kind of trouble; returns {file name: reason}."""
    root = tmp_path_factory.mktemp("bad")
    study = dict(accession_number="000777", patient_id="SYN777")
    for lat in "LR":
        for view in ("CC", "MLO"):
            image = phantom_view(np.random.default_rng(ord(lat)), (192, 160), lat, view)
            ds = make_view_dataset(image, "hologic", lat, view, **study)
            save(ds, root / "good" / f"{lat}{view}.dcm")
    expected: dict[str, str] = {}

    def bad(name: str, reason: str) -> Path:
        expected[name] = reason
        return root / "bad" / name

    bad("empty.dcm", "empty_file").parent.mkdir(parents=True)
    (root / "bad" / "empty.dcm").write_bytes(b"")
    bad("notes.txt", "not_dicom").write_text("not an image\n")
    shutil.copy(pydicom_test_files / "dicomdirtests" / "DICOMDIR", bad("DICOMDIR", "dicomdir"))
    shutil.copy(pydicom_test_files / "test-SR.dcm", bad("report.dcm", "no_pixel_data"))

    native = mg_view(transfer_syntax="ExplicitVRLittleEndian")
    data = save(native, root / "tmp.dcm").read_bytes()
    bad("truncated_native.dcm", "truncated").write_bytes(data[: len(data) // 2])
    data = save(mg_view(transfer_syntax="JPEG2000Lossless"), root / "tmp.dcm").read_bytes()
    bad("truncated_j2k.dcm", "truncated").write_bytes(data[: len(data) * 2 // 3])

    ds = mg_view()
    del ds.PixelData
    save(ds, bad("no_pixels.dcm", "no_pixel_data"))

    ds = mg_view()
    del ds.ImageLaterality
    save(ds, bad("no_laterality.dcm", "unknown_laterality"))

    ds = mg_view()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2.1"
    ds.PresentationIntentType = "FOR PROCESSING"
    save(ds, bad("for_processing.dcm", "for_processing"))

    ds = mg_view()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # valid, but no decoder installed
    save(ds, bad("mpeg2.dcm", "unsupported_transfer_syntax"))

    rgb = pydicom.dcmread(pydicom_data / "SC_rgb.dcm")
    rgb.Modality, rgb.ImageLaterality = "MG", "L"  # an RGB secondary capture tagged MG
    save(rgb, bad("rgb.dcm", "not_grayscale"))

    frames = pydicom.dcmread(pydicom_data / "emri_small.dcm")  # 10 frames
    frames.Modality, frames.ImageLaterality = "MG", "R"
    save(frames, bad("multiframe.dcm", "multi_frame"))

    # Never looked at: hidden files and macOS resource forks.
    shutil.copy(root / "good" / "LCC.dcm", root / "bad" / ".hidden.dcm")
    save(native, root / "bad" / "__MACOSX" / "._LCC.dcm")
    (root / "tmp.dcm").unlink()
    return root, expected


def test_every_bad_file_has_its_reason_and_good_views_survive(folder):
    root, expected = folder
    records = discover([root], workers=2, chunksize=2)  # a real process pool
    by_name = {Path(r.path).name: r for r in records}
    assert ".hidden.dcm" not in by_name and "._LCC.dcm" not in by_name
    assert {name: by_name[name].reason for name in expected} == expected
    for name in expected:
        assert by_name[name].status in ("skipped", "failed") and by_name[name].detail
    good = [r for r in records if r.scorable]
    assert sorted(Path(r.path).name for r in good) == ["LCC.dcm", "LMLO.dcm", "RCC.dcm", "RMLO.dcm"]
    studies, _ = group_studies(records)
    [study] = [s for s in studies if s.scorable]
    assert study.key == "000777" and {k: len(v) for k, v in study.breasts().items()} == {"L": 2, "R": 2}


def test_corrupt_codestream_fails_at_decode_with_a_clear_error(tmp_path):
    ds = mg_view(transfer_syntax="JPEG2000Lossless")
    frame = bytearray(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1).__next__())
    frame[len(frame) // 3 :] = bytes(len(frame) - len(frame) // 3)  # zeros in the codestream
    ds.PixelData = pydicom.encaps.encapsulate([bytes(frame)])
    path = save(ds, tmp_path / "corrupt.dcm")
    [record] = discover([path], workers=1)
    assert record.scorable  # the header is fine: only decoding can tell
    with pytest.raises(DecodeError):
        prepare_file(path, [SIZE])


def test_preview_writes_the_good_views_and_records_the_rest(folder, tmp_path):
    root, expected = folder
    out = tmp_path / "preview"
    result = CliRunner().invoke(cli, ["preview", str(root), "--out", str(out), "--size", "128x64",
                                      "--workers", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "index.csv").open()))
    rendered = [r for r in rows if r["status"] == "ok"]
    assert len(rendered) == 4 and all(Path(r["png"]).exists() for r in rendered)
    assert (out / "study_0001" / "sheet.png").exists()
    skipped = {Path(r["path"]).name: r["error"].split(":")[0] for r in rows if r["status"] == "skipped"}
    assert skipped == expected  # every other file, with its reason
    assert len(rows) == len(rendered) + len(skipped)


def test_inspect_json_reports_problems(folder):
    root, expected = folder
    result = CliRunner().invoke(cli, ["inspect", str(root), "--json", "--workers", "1"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    problems = document["summary"]["problems"]
    assert {reason: info["count"] for reason, info in problems.items()} == Counter(expected.values())
    assert document["summary"]["status"]["ok"] == 4

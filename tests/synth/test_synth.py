"""Synthetic studies: determinism, variants, round trips, labels, manifest, layouts, lesions."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.uid import JPEG2000Lossless

from mammo_batch.engine.cli.synth import synth
from mammo_batch.synth import (
    LABEL_COLUMNS,
    MANIFEST_COLUMNS,
    TRANSFER_SYNTAXES,
    VARIANTS,
    VIEW_CODES,
    BreastParams,
    draw_lesion,
    make_view_dataset,
    phantom_view,
    plan_studies,
    write_dataset,
    write_studies,
)
from mammo_batch.synth.rle import encode_rle_frame

SIZE = (128, 104)  # rows, columns: small for speed, still every feature visible
N_STUDIES = 8  # >= 6 variants, and enough for every awkward case to be forced in


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synth")
    summary = write_studies(out, N_STUDIES, seed=3, size=SIZE)
    return summary, _read_csv(summary.labels_csv), _read_csv(summary.manifest_csv)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _canonical(ds: pydicom.Dataset, chest_wall_side: str) -> np.ndarray:
    """Stored pixels back to the phantom's sense: MONOCHROME2, chest wall on the left."""
    pixels = ds.pixel_array.astype(np.int64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = (1 << ds.BitsStored) - 1 - pixels
    return pixels[:, ::-1] if chest_wall_side == "right" else pixels


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buffer = io.BytesIO()
    write_dataset(ds, buffer)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


# --- determinism -----------------------------------------------------------------------


def test_same_arguments_give_identical_bytes_whatever_the_worker_count(tmp_path: Path):
    first = write_studies(tmp_path / "a", 4, seed=11, size=SIZE)
    second = write_studies(tmp_path / "b", 4, seed=11, size=SIZE, workers=2)
    files_a, files_b = _files(first.out_dir), _files(second.out_dir)
    assert len(files_a) == first.n_files + 2  # + labels.csv and manifest.csv
    assert files_a == files_b


def test_another_seed_gives_other_studies(tmp_path: Path):
    a = _read_csv(write_studies(tmp_path / "a", 3, seed=1, size=SIZE).manifest_csv)
    b = _read_csv(write_studies(tmp_path / "b", 3, seed=2, size=SIZE).manifest_csv)
    assert {r["sop_instance_uid"] for r in a}.isdisjoint({r["sop_instance_uid"] for r in b})


# --- variants and encodings ------------------------------------------------------------


def test_every_variant_is_used_and_every_file_reads_back(dataset):
    summary, _, manifest = dataset
    assert {r["variant"] for r in manifest} == set(VARIANTS)
    for row in manifest:
        ds = pydicom.dcmread(summary.out_dir / row["path"])
        assert ds.SOPInstanceUID == row["sop_instance_uid"]
        assert ds.file_meta.TransferSyntaxUID == row["transfer_syntax_uid"]
        assert ds.PhotometricInterpretation == row["photometric"]
        assert ds.pixel_array.shape == SIZE
        assert int(ds.pixel_array.max()) < (1 << ds.BitsStored)
        # The chest wall is where the manifest says: that edge carries the breast.
        image = _canonical(ds, row["chest_wall_side"]).astype(float)
        band = SIZE[1] // 10
        assert image[:, :band].mean() > 3 * image[:, -band:].mean()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_make_view_dataset_is_a_lossless_round_trip(variant: str, side: str):
    image = phantom_view(np.random.default_rng(0), SIZE, "L", "MLO", bits_stored=12)
    ds = _roundtrip(make_view_dataset(image, variant, "L", "MLO", side))
    assert np.array_equal(_canonical(ds, side), image)


@pytest.mark.parametrize("syntax", TRANSFER_SYNTAXES, ids=lambda uid: uid.keyword)
def test_every_transfer_syntax_is_lossless(syntax):
    image = phantom_view(np.random.default_rng(1), SIZE, "R", "CC", bits_stored=14)
    for variant in ("planmed", "hologic"):  # MONOCHROME1 and MONOCHROME2
        ds = _roundtrip(make_view_dataset(image, variant, "R", "CC", transfer_syntax=syntax))
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(_canonical(ds, "left"), image)
    by_keyword = make_view_dataset(image, "hologic", "R", "CC", transfer_syntax=syntax.keyword)
    assert by_keyword.file_meta.TransferSyntaxUID == syntax


def _pydicom_rle(pixels: np.ndarray) -> bytes:
    bits = pixels.dtype.itemsize * 8
    return RLELosslessEncoder.encode(
        pixels,
        encoding_plugin="pydicom",
        rows=pixels.shape[0],
        columns=pixels.shape[1],
        samples_per_pixel=1,
        bits_allocated=bits,
        bits_stored=bits,
        pixel_representation=0,
        photometric_interpretation="MONOCHROME2",
        number_of_frames=1,
    )


def test_rle_encoder_matches_pydicoms_byte_for_byte():
    rng = np.random.default_rng(0)
    arrays = [
        phantom_view(rng, SIZE, "L", "MLO", bits_stored=16),
        phantom_view(rng, SIZE, "R", "CC", bits_stored=12),
        np.zeros((3, 300), np.uint16),  # replicate runs longer than 128, across rows
        np.full((2, 129), 7, np.uint8),  # a 128-run plus a lone byte
        rng.integers(0, 256, (5, 300), dtype=np.uint8),  # literal runs longer than 128
        np.repeat(rng.integers(0, 3, (6, 40)), rng.integers(1, 9, 40), axis=1).astype(np.uint8),
    ]
    for pixels in arrays:
        assert encode_rle_frame(pixels) == _pydicom_rle(pixels)


def test_variant_tags():
    image = phantom_view(np.random.default_rng(2), SIZE, "R", "MLO", bits_stored=12)
    tags = {v: _roundtrip(make_view_dataset(image, v, "R", "MLO", "right")) for v in VARIANTS}

    hologic = tags["hologic"]
    assert hologic.file_meta.TransferSyntaxUID == JPEG2000Lossless
    assert len(hologic.WindowCenter) == len(hologic.WindowWidth) == 2
    assert hologic.VOILUTFunction == "LINEAR"
    assert hologic.ImageLaterality == "R" and hologic.ViewPosition == "MLO"
    assert list(hologic.PatientOrientation) == ["P", "F"]
    assert hologic.FieldOfViewHorizontalFlip == "NO"  # right breast, chest wall right

    planmed = tags["planmed"]
    assert planmed.PhotometricInterpretation == "MONOCHROME1"
    assert planmed.BitsStored == 14 and "WindowCenter" in planmed
    assert not planmed.file_meta.TransferSyntaxUID.is_compressed

    assert tags["sigmoid"].VOILUTFunction == "SIGMOID"
    assert tags["sigmoid"].file_meta.TransferSyntaxUID.keyword == "JPEGLSLossless"

    rle = tags["rle"]
    assert rle.BitsStored == 16 and rle.Laterality == "R"
    for absent in (
        "ImageLaterality",
        "ViewPosition",
        "PatientOrientation",
        "WindowCenter",
        "VOILUTSequence",
        "SeriesDescription",
    ):
        assert absent not in rle, absent
    assert rle.ViewCodeSequence[0].CodeValue == VIEW_CODES["MLO"][0]

    implicit = tags["implicit"]
    assert implicit.file_meta.TransferSyntaxUID.keyword == "ImplicitVRLittleEndian"
    assert implicit.BitsStored == 12 and "WindowCenter" not in implicit
    assert implicit.ViewPosition == ""  # present but empty: the code sequence carries it
    assert implicit.RescaleSlope == 1 and implicit.RescaleIntercept == 0
    item = implicit.VOILUTSequence[0]
    assert list(item.LUTDescriptor) == [4096, 0, 16]
    stored = implicit.pixel_array.ravel()
    shown = pydicom.pixels.apply_voi_lut(implicit.pixel_array, implicit).ravel()
    assert shown.max() > 60000  # the LUT's 16-bit output range is used
    assert np.all(np.diff(shown[np.argsort(stored, kind="stable")].astype(np.int64)) >= 0)

    for ds in tags.values():
        assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"
        assert ds.PatientName == "SYNTHETIC^PATIENT"


def test_flipped_variant_faces_the_other_way_and_says_so(dataset):
    summary, _, manifest = dataset
    flipped = [r for r in manifest if r["variant"] == "flipped"]
    assert flipped
    for row in flipped:
        ds = pydicom.dcmread(summary.out_dir / row["path"], stop_before_pixels=True)
        expected = "left" if row["laterality"] == "R" else "right"  # against the convention
        assert row["chest_wall_side"] == expected
        assert ds.PatientOrientation[0] == ("A" if expected == "left" else "P")
        assert ds.FieldOfViewHorizontalFlip == "YES"


def test_view_codes_are_cid_4014():
    assert VIEW_CODES["CC"][0] == "399162004"
    assert VIEW_CODES["MLO"][0] == "399368009"
    assert VIEW_CODES["ML"][0] == "399260004"
    assert VIEW_CODES["XCCL"][0] == "399192008"


# --- labels, manifest, layouts ---------------------------------------------------------


def test_labels_csv_is_spr_format(dataset):
    summary, labels, _ = dataset
    with summary.labels_csv.open() as handle:
        assert handle.readline().strip() == ",".join(LABEL_COLUMNS)
    assert len(labels) == N_STUDIES
    assert len({r["AccessionNumber"] for r in labels}) == N_STUDIES
    for row in labels:
        assert len(row["AccessionNumber"]) == 6 and row["AccessionNumber"].isdigit()
        assert row["PatientID"].startswith("SYN") and row["PatientID"][3:].isdigit()
        assert row["Laterality"] in {"N", "L", "R", "B"}
        assert row["target"] == ("0" if row["Laterality"] == "N" else "1")
    assert sum(r["target"] == "1" for r in labels) == round(0.3 * N_STUDIES)
    assert summary.n_positive == round(0.3 * N_STUDIES)


def test_positive_rate_is_honoured():
    for rate in (0.0, 0.25, 1.0):
        plans = plan_studies(40, seed=5, positive_rate=rate)
        assert sum(bool(p.lesion_lateralities) for p in plans) == round(rate * 40)
    labels = Counter(p.label for p in plan_studies(400, seed=5, positive_rate=0.5))
    assert labels["N"] == 200 and labels["B"] > 0 and labels["L"] > 0 and labels["R"] > 0


def test_manifest_matches_the_files(dataset):
    summary, labels, manifest = dataset
    with summary.manifest_csv.open() as handle:
        assert handle.readline().strip() == ",".join(MANIFEST_COLUMNS)
    on_disk = set(_files(summary.out_dir)) - {"labels.csv", "manifest.csv"}
    assert on_disk == {r["path"] for r in manifest}
    assert len({r["sop_instance_uid"] for r in manifest}) == len(manifest) == summary.n_files
    label_of = {r["AccessionNumber"]: r for r in labels}
    assert {r["accession_number"] for r in manifest} == set(label_of)
    for row in manifest:
        ds = pydicom.dcmread(summary.out_dir / row["path"], stop_before_pixels=True)
        assert ds.AccessionNumber == row["accession_number"]
        assert ds.PatientID == row["patient_id"] == label_of[row["accession_number"]]["PatientID"]
        assert ds.StudyInstanceUID == row["study_instance_uid"]
        assert ds.SeriesInstanceUID == row["series_instance_uid"]
        assert ds.get("ImageLaterality", ds.get("Laterality")) == row["laterality"]
        assert ds.ViewCodeSequence[0].CodeValue == VIEW_CODES[row["view"]][0]
        assert ds.BitsStored == int(row["bits_stored"])
        breasts = {"N": "", "L": "L", "R": "R", "B": "LR"}[label_of[row["accession_number"]]["Laterality"]]
        assert (row["lesion"] == "yes") == (row["laterality"] in breasts)


def test_study_shapes_cover_the_awkward_cases(dataset):
    _, labels, manifest = dataset
    per_study = {}
    for row in manifest:
        per_study.setdefault(row["accession_number"], []).append(row)
    lateralities = [{r["laterality"] for r in rows} for rows in per_study.values()]
    assert {"L", "R"} in lateralities and any(len(s) == 1 for s in lateralities)
    views = [Counter((r["laterality"], r["view"]) for r in rows) for rows in per_study.values()]
    assert any(max(c.values()) > 1 for c in views)  # a repeated view
    assert any({v for _, v in c} & {"ML", "XCCL"} for c in views)  # an extra view
    studies_per_patient = Counter(r["PatientID"] for r in labels)
    twice = [p for p, n in studies_per_patient.items() if n == 2]
    assert twice
    dates = {r["study_date"] for r in manifest if r["patient_id"] == twice[0]}
    assert len(dates) == 2


def test_both_layouts_are_present(dataset):
    summary, _, manifest = dataset
    accession = [r for r in manifest if r["path"].endswith(".dcm")]
    nested = [r for r in manifest if not r["path"].endswith(".dcm")]
    assert accession and nested
    for row in accession:
        assert row["path"] == f"{row['accession_number']}/{row['sop_instance_uid']}.dcm"
    for row in nested:
        patient, study, series, image = row["path"].split("/")
        assert patient == row["patient_id"]
        assert study.startswith("STUDY") and series.startswith("SERIES")
        assert image.startswith("IM") and "." not in image
    # A nested study spans one folder per series, and is still one study.
    folders = {}
    for row in nested:
        folders.setdefault(row["study_instance_uid"], set()).add(row["path"].rsplit("/", 1)[0])
    assert any(len(f) > 1 for f in folders.values())


def test_single_layouts(tmp_path: Path):
    for layout in ("accession", "nested"):
        rows = _read_csv(write_studies(tmp_path / layout, 2, 0, SIZE, layout=layout).manifest_csv)
        assert all(r["path"].endswith(".dcm") == (layout == "accession") for r in rows)


# --- anatomy and lesions ---------------------------------------------------------------


def test_lesions_change_only_the_affected_breast_in_every_view(tmp_path: Path):
    # Pixels are seeded per (study, view), not by the labels: the same seed with and
    # without positives differs exactly in the views of the lesion-bearing breasts.
    clean = write_studies(tmp_path / "clean", 4, seed=8, size=SIZE, positive_rate=0.0)
    sick = write_studies(tmp_path / "sick", 4, seed=8, size=SIZE, positive_rate=1.0)
    rows = _read_csv(sick.manifest_csv)
    assert {r["lesion"] for r in rows} == {"yes", "no"}
    affected_views = set()
    for row in rows:
        before = pydicom.dcmread(clean.out_dir / row["path"]).pixel_array.astype(np.int64)
        after = pydicom.dcmread(sick.out_dir / row["path"]).pixel_array.astype(np.int64)
        if row["lesion"] == "no":
            assert np.array_equal(before, after)
            continue
        change = np.abs(after - before)
        assert change.max() > 0.05 * ((1 << int(row["bits_stored"])) - 1)
        affected_views.add((row["accession_number"], row["laterality"], row["view"]))
    breasts = {(acc, lat) for acc, lat, _ in affected_views}
    for acc, lat in breasts:  # visible in both the CC and the MLO of that breast
        assert {(acc, lat, "CC"), (acc, lat, "MLO")} <= affected_views


@pytest.mark.parametrize("kind", ["mass", "calcs"])
def test_lesion_sits_at_a_consistent_depth_in_cc_and_mlo(kind: str):
    size, breast = (512, 416), BreastParams(depth=0.65, half_height=0.35, density=0.4)
    lesion = draw_lesion(np.random.default_rng(4), difficulty=0.3, kind=kind)
    centres = []
    for view in ("CC", "MLO"):
        plain = phantom_view(np.random.default_rng(9), size, "L", view, breast=breast)
        marked = phantom_view(np.random.default_rng(9), size, "L", view, [lesion], breast=breast)
        change = marked.astype(np.int64) - plain
        assert change.min() >= 0 and change.max() > 0.1 * 4095
        ys, xs = np.nonzero(change > 0.05 * 4095)
        centres.append(xs.mean() / (breast.depth * size[1]))  # depth in breast units
    assert abs(centres[0] - centres[1]) < 0.15


def test_difficulty_lowers_lesion_size_and_contrast():
    rng_easy, rng_hard = np.random.default_rng(1), np.random.default_rng(1)
    easy = draw_lesion(rng_easy, 0.0, "mass")
    hard = draw_lesion(rng_hard, 1.0, "mass")
    assert hard.radius < easy.radius and hard.contrast < easy.contrast


def test_mlo_shows_the_pectoral_muscle_where_cc_has_none():
    size, breast = (256, 208), BreastParams(depth=0.65, half_height=0.35, density=0.3)
    cc = phantom_view(np.random.default_rng(3), size, "R", "CC", breast=breast)
    mlo = phantom_view(np.random.default_rng(3), size, "R", "MLO", breast=breast)
    corner = (slice(0, size[0] // 8), slice(0, size[1] // 12))  # upper chest-wall corner
    assert mlo[corner].mean() > cc[corner].mean() + 0.3 * 4095


def test_phantom_is_quantised_to_bits_stored_and_has_a_separate_marker():
    image = phantom_view(np.random.default_rng(0), (256, 208), "L", "CC", bits_stored=14)
    assert image.dtype == np.uint16 and int(image.max()) < 1 << 14
    # The marker: bright pixels in the top corner on the nipple side, away from the breast.
    corner = image[: 256 // 8, -208 // 6 :]
    assert (corner > 0.9 * (1 << 14)).sum() > 10
    assert image[256 // 2, -1] < 0.1 * (1 << 14)  # background between breast and edge


# --- CLI -------------------------------------------------------------------------------


def test_cli_writes_studies(tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        synth,
        [
            str(out),
            "--studies",
            "2",
            "--seed",
            "4",
            "--size",
            "128x104",
            "--layout",
            "nested",
            "--variant",
            "rle",
            "--positive-rate",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = _read_csv(out / "manifest.csv")
    assert rows and {r["variant"] for r in rows} == {"rle"}
    assert sum(r["target"] == "1" for r in _read_csv(out / "labels.csv")) == 1


def test_cli_rejects_a_bad_size(tmp_path: Path):
    result = CliRunner().invoke(synth, [str(tmp_path / "x"), "--size", "big"])
    assert result.exit_code == 2 and "HxW" in result.output

"""Training data: labels, image labels, folds, the view index and the preprocessing cache.

Real synthetic DICOM studies at a small size, real files on disk, no mocks. No torch.
"""

from __future__ import annotations

import csv
import logging
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest

from mammo_batch.engine.dicom.decode import DecodeError
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.synth import plan_studies, write_studies
from mammo_batch.train.cache import PreprocessCache
from mammo_batch.train.dataset_index import build_index
from mammo_batch.train.folds import make_folds, read_folds, write_folds
from mammo_batch.train.labels import LabelsError, StudyLabel, image_label, read_labels

SIZE = (192, 160)  # stored image rows x columns: small, every branch of the pixel path still runs
MODEL_SIZE = (96, 48)
HEADER = "AccessionNumber,PatientID,Laterality,target\n"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory):
    return write_studies(tmp_path_factory.mktemp("studies"), 16, seed=21, size=SIZE)


@pytest.fixture(scope="module")
def manifest(synth) -> list[dict[str, str]]:
    with synth.manifest_csv.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def index(synth):
    return build_index(synth.out_dir, read_labels(synth.labels_csv), workers=1)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- labels -------------------------------------------------------------------------------


def test_read_labels_keeps_accession_strings(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "train.csv", "\ufeff" + HEADER.replace("\n", ",Extra\n")
                      + "000123,P1,N,0,x\n000124,P1,L,1,y\n 7,P2 ,B,1,z\n")
    labels = read_labels(csv_path)
    assert list(labels) == ["000123", "000124", "7"]
    assert labels["000123"] == StudyLabel("000123", "P1", "N", 0)
    assert labels["000124"] == StudyLabel("000124", "P1", "L", 1)
    assert labels["7"].patient_id == "P2"


@pytest.mark.parametrize("text, message", [
    ("AccessionNumber,PatientID,target\n001,P,0\n", "missing column(s) Laterality"),
    ("", "empty file"),
    (HEADER + "001,P,N,0\n002,P,X,1\n", "line 3: Laterality must be one of N/L/R/B, not 'X'"),
    (HEADER + "001,P,N,0\n002,P,L,2\n", "line 3: target must be 0 or 1, not '2'"),
    (HEADER + "001,P,N,0\n002,P,L,1.0\n", "line 3: target must be 0 or 1"),
    (HEADER + "001,P,N,0\n002,P,N,1\n", "line 3: Laterality N contradicts target 1"),
    (HEADER + "001,P,N,0\n002,P,R,0\n", "line 3: Laterality R contradicts target 0"),
    (HEADER + "001,P,N,0\n,P,N,0\n", "line 3: empty AccessionNumber"),
    (HEADER + "001,P,N,0\n002,,N,0\n", "line 3: empty PatientID"),
    (HEADER + "001,P,N,0\n001,Q,N,0\n", "line 3: duplicate AccessionNumber '001'"),
])
def test_read_labels_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    csv_path = _write(tmp_path / "bad_labels.csv", text)
    with pytest.raises(LabelsError) as info:
        read_labels(csv_path)
    assert str(csv_path) in str(info.value)
    assert message in str(info.value)


def test_read_synthetic_labels(synth, manifest) -> None:
    labels = read_labels(synth.labels_csv)
    assert len(labels) == synth.n_studies
    assert sum(label.target for label in labels.values()) == synth.n_positive
    assert set(labels) == {row["accession_number"] for row in manifest}
    assert all(len(a) == 6 and a.isdigit() for a in labels)  # zero-padded, as written


@pytest.mark.parametrize("study, left, right", [("N", 0, 0), ("B", 1, 1), ("L", 1, 0), ("R", 0, 1)])
def test_image_label_rule(study: str, left: int, right: int) -> None:
    label = StudyLabel("000001", "P", study, int(study != "N"))
    assert (image_label(label, "L"), image_label(label, "R")) == (left, right)


def test_image_label_needs_a_breast() -> None:
    with pytest.raises(ValueError, match="laterality"):
        image_label(StudyLabel("000001", "P", "B", 1), "")


# --- folds --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_labels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StudyLabel]:
    """56 studies of 50 patients (some screened twice), ~30% recalled, via a real CSV."""
    rows = [f"{p.accession_number},{p.patient_id},{p.label},{int(p.label != 'N')}\n"
            for p in plan_studies(56, seed=11, positive_rate=0.3)]
    return read_labels(_write(tmp_path_factory.mktemp("folds") / "train.csv", HEADER + "".join(rows)))


def test_folds_group_patients_and_balance_targets(many_labels) -> None:
    folds = make_folds(many_labels, k=4, seed=67)
    assert set(folds) == set(many_labels) and set(folds.values()) == {0, 1, 2, 3}
    patient_folds = defaultdict(set)
    for accession, fold in folds.items():
        patient_folds[many_labels[accession].patient_id].add(fold)
    assert all(len(f) == 1 for f in patient_folds.values())
    assert any(sum(1 for a in many_labels if many_labels[a].patient_id == p) > 1 for p in patient_folds)
    overall = np.mean([label.target for label in many_labels.values()])
    for fold in range(4):
        targets = [many_labels[a].target for a, f in folds.items() if f == fold]
        assert 0 < sum(targets) < len(targets)
        assert abs(np.mean(targets) - overall) <= 0.15


def test_folds_are_deterministic(many_labels) -> None:
    folds = make_folds(many_labels, seed=67)
    assert make_folds(many_labels, seed=67) == folds
    reordered = dict(reversed(list(many_labels.items())))
    assert make_folds(reordered, seed=67) == folds  # row order of the labels file does not matter
    assert make_folds(many_labels, seed=68) != folds


def test_folds_csv_round_trip(many_labels, tmp_path: Path) -> None:
    folds = make_folds(many_labels)
    path = tmp_path / "folds.csv"
    write_folds(path, many_labels, folds)
    assert read_folds(path) == folds
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["AccessionNumber", "PatientID", "target", "fold"]
    assert [r["AccessionNumber"] for r in rows] == list(many_labels)  # leading zeros kept
    assert os.listdir(tmp_path) == ["folds.csv"]  # no temp file left


def test_folds_need_enough_patients() -> None:
    labels = {f"00000{i}": StudyLabel(f"00000{i}", f"P{i % 3}", "N", 0) for i in range(9)}
    with pytest.raises(ValueError, match="from 3 patient"):
        make_folds(labels, k=4)


# --- index --------------------------------------------------------------------------------


def test_index_has_every_scorable_view_with_the_seed_label(synth, manifest, index) -> None:
    labels = read_labels(synth.labels_csv)
    assert len(index) == synth.n_files == len(manifest)
    by_path = {row["path"]: row for row in manifest}
    for item in index:
        row = by_path[Path(item.path).relative_to(synth.out_dir).as_posix()]
        assert (item.accession_number, item.laterality, item.view) == (
            row["accession_number"], row["laterality"], row["view"])
        assert item.study_key == item.accession_number
        assert item.label == image_label(labels[item.accession_number], item.laterality)
        assert item.label == (row["lesion"] == "yes")  # the planted lesions agree with the rule
        assert item.target == labels[item.accession_number].target
    assert {i.label for i in index} == {0, 1}
    assert list(index) == sorted(index, key=lambda i: (i.study_key, i.path))
    summary = index.summary
    assert summary.n_matched == summary.n_labelled == summary.n_image_studies == synth.n_studies
    assert summary.labelled_without_images == summary.images_without_label == ()
    assert summary.n_files_without_study == 2  # labels.csv and manifest.csv, not DICOM


def test_index_reports_unmatched_studies(synth, caplog: pytest.LogCaptureFixture) -> None:
    labels = read_labels(synth.labels_csv)
    dropped = next(iter(labels))
    del labels[dropped]
    labels["999999"] = StudyLabel("999999", "NOBODY", "N", 0)
    with caplog.at_level(logging.WARNING, logger="mammo_batch.train.dataset_index"):
        index = build_index(synth.out_dir, labels, workers=1)
    assert index.summary.labelled_without_images == ("999999",)
    assert index.summary.images_without_label == (dropped,)
    assert dropped not in {i.accession_number for i in index}
    assert "1 labelled studies have no scorable images" in caplog.text
    assert "1 image studies have no label" in caplog.text
    assert "999999" not in caplog.text  # counts in the log, identifiers only in the summary


def test_index_counts_views_the_policy_skips(synth, manifest, tmp_path: Path) -> None:
    """A For Processing view is not indexed but counted; a study with no scorable view is
    reported as labelled without images; study_key="folder" matches `<Accession>/` folders."""
    rows = [r for r in manifest if r["path"].count("/") == 1]  # the accession layout
    first, second = rows[0]["accession_number"], next(
        r["accession_number"] for r in rows if r["accession_number"] != rows[0]["accession_number"])
    keep = [r for r in rows if r["accession_number"] in (first, second)]
    for row in keep:
        (tmp_path / row["path"]).parent.mkdir(exist_ok=True)
        ds = pydicom.dcmread(synth.out_dir / row["path"])
        if row["accession_number"] == second or row is keep[0]:
            ds.PresentationIntentType = "FOR PROCESSING"
        ds.save_as(tmp_path / row["path"])
    labels = {a: label for a, label in read_labels(synth.labels_csv).items() if a in (first, second)}
    n_first = sum(r["accession_number"] == first for r in keep)
    for mode in ("auto", "folder"):
        summary = build_index(tmp_path, labels, study_key=mode, workers=1).summary
        assert summary.n_views == n_first - 1
        assert summary.not_scorable_reasons == {"for_processing": len(keep) - n_first + 1}
        assert summary.labelled_without_images == (second,)
        assert summary.n_matched == 1 and summary.n_image_studies == 2


# --- cache --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def paths(index) -> list[str]:
    return [item.path for item in index][:8]


def _pass(cache: PreprocessCache, paths: list[str]) -> list[np.ndarray]:
    return [cache.get(p) for p in paths]


def test_cache_second_epoch_decodes_nothing(paths, tmp_path: Path) -> None:
    settings = PreprocessSettings()
    first = PreprocessCache(tmp_path, settings, MODEL_SIZE)
    arrays = _pass(first, paths)
    assert (first.hits, first.misses) == (0, len(paths))
    for path, array in zip(paths, arrays, strict=True):  # exactly the engine's pixel path
        assert array.shape == MODEL_SIZE and array.dtype == np.uint8
        np.testing.assert_array_equal(array, prepare_file(path, [MODEL_SIZE], settings).inputs[MODEL_SIZE])
    second = PreprocessCache(tmp_path, settings, MODEL_SIZE)
    again = _pass(second, paths)
    assert (second.hits, second.misses) == (len(paths), 0)
    for a, b in zip(arrays, again, strict=True):
        np.testing.assert_array_equal(a, b)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == len(paths)  # one entry per view, no temp files left behind
    assert all(p.suffix == ".npy" and not p.name.startswith(".") for p in files)


@pytest.mark.parametrize("settings, size", [
    (PreprocessSettings(window="minmax"), MODEL_SIZE),
    (PreprocessSettings(crop=False), MODEL_SIZE),
    (PreprocessSettings(dtype="float32"), MODEL_SIZE),
    (PreprocessSettings(), (64, 32)),
])
def test_cache_changed_setting_misses(paths, tmp_path: Path, settings, size) -> None:
    _pass(PreprocessCache(tmp_path, PreprocessSettings(), MODEL_SIZE), paths[:2])
    other = PreprocessCache(tmp_path, settings, size)
    arrays = _pass(other, paths[:2])
    assert (other.hits, other.misses) == (0, 2)
    assert arrays[0].shape == size and arrays[0].dtype == np.dtype(settings.dtype)


def test_cache_touched_file_misses(synth, tmp_path: Path) -> None:
    source = next(p for p in synth.out_dir.rglob("*.dcm"))
    view = tmp_path / "view.dcm"
    view.write_bytes(source.read_bytes())
    cache = PreprocessCache(tmp_path / "cache", PreprocessSettings(), MODEL_SIZE)
    before, key = cache.get(view), cache.key(view)
    stat = view.stat()
    os.utime(view, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.key(view) != key
    np.testing.assert_array_equal(cache.get(view), before)
    assert (cache.hits, cache.misses) == (0, 2)
    cache.get(view)
    assert cache.hits == 1


def test_cache_warm_in_parallel_equals_serial(paths, tmp_path: Path) -> None:
    serial = _pass(PreprocessCache(tmp_path / "serial", PreprocessSettings(), MODEL_SIZE), paths)
    cache = PreprocessCache(tmp_path / "warm", PreprocessSettings(), MODEL_SIZE)
    assert cache.warm(paths, workers=2) == len(paths)
    assert cache.warm(paths, workers=2) == 0  # already there
    warmed = _pass(cache, paths)
    assert (cache.hits, cache.misses) == (len(paths), 0)
    for a, b in zip(serial, warmed, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list((tmp_path / "warm").rglob("*.tmp"))


def test_cache_decode_error_names_the_file(paths, tmp_path: Path) -> None:
    bad = _write(tmp_path / "broken.dcm", "not a DICOM file")
    cache = PreprocessCache(tmp_path / "cache", PreprocessSettings(), MODEL_SIZE)
    with pytest.raises(DecodeError, match="broken.dcm"):
        cache.get(bad)
    assert cache.warm([bad, paths[0]], workers=1) == 1
    assert list(cache.warm_failures) == [str(bad)]
    assert "DecodeError" in cache.warm_failures[str(bad)]

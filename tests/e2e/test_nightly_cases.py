"""The nightly state's known failure cases, each through the real CLI (issue: the file is the unit of truth).

Every test reproduces what a user saw go wrong night after night on one `--out`: a key that changes,
a study split over nightly folders, a switched bundle, a damaged duplicate, a stopped run, patient
identifiers in a report, and another modality's header-only images. Expectations are written out
here from the files the test made, not computed with the engine's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle

from mammo_batch.synth import make_view_dataset, phantom_view

SIZE = (128, 104)
MEMBERS = [dict(name="wide", height=64, width=32, weight=8.0, bias=-3.0)]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), MEMBERS, threshold=0.5)


def score(*args: str | Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", *map(str, args), "--quiet",
               "--workers", "1"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def view(path: Path, laterality: str, view_name: str, seed: int, **ids) -> Path:
    image = phantom_view(np.random.default_rng(seed), SIZE, laterality, view_name)
    ds = make_view_dataset(image, "hologic", laterality, view_name, **ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def exam(folder: Path, patient: str, accession: str, uid: str, seed: int, sides: str = "LR") -> list[Path]:
    """One CC view per side in `sides` (SOPInstanceUIDs from the seed: distinct images, distinct UIDs)."""
    return [view(folder / f"{side}CC.dcm", side, "CC", seed + i, patient_id=patient, accession_number=accession,
                 study_instance_uid=uid, sop_instance_uid=f"{uid}.{seed}.{i + 1}") for i, side in enumerate(sides)]


def rows(path: Path) -> dict[str, dict]:
    return {row["study_key"]: row for row in pq.read_table(path).to_pylist()}


def view_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_a_key_filled_in_place_moves_the_files_and_retires_the_old_key(bundle, tmp_path):
    folder = tmp_path / "studies" / "exam"
    files = exam(folder, "P1", "", "1.2.840.1", seed=1)
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    assert score(tmp_path / "studies", "--out", out, "--models", bundle).returncode == 0
    assert list(rows(out)) == ["1.2.840.1"]  # no accession yet: keyed by the StudyInstanceUID
    for path in files:  # the RIS fills the AccessionNumber in place
        ds = pydicom.dcmread(path)
        ds.AccessionNumber = "ACC7"
        ds.save_as(path)
    second = score(tmp_path / "studies", "--out", out, "--models", bundle, "--views", views)
    assert second.returncode == 0, second.stderr
    assert list(rows(out)) == ["ACC7"] and rows(out)["ACC7"]["n_views"] == 2
    paths = [v["path"] for v in view_rows(views)]
    assert sorted(paths) == sorted(str(p.resolve()) for p in files)  # every file once
    assert "1.2.840.1 merged into ACC7" in second.stdout + second.stderr


def test_a_second_accession_of_one_study_instance_uid_is_one_study(bundle, tmp_path):
    root = tmp_path / "studies"
    exam(root / "a", "P1", "ACC1", "1.2.840.5", seed=3, sides="L")
    out = tmp_path / "scores.parquet"
    assert score(root, "--out", out, "--models", bundle).returncode == 0
    exam(root / "b", "P1", "ACC2", "1.2.840.5", seed=4, sides="R")
    assert score(root, "--out", out, "--models", bundle).returncode == 0
    got = rows(out)
    assert list(got) == ["ACC1"]  # the smallest accession names the study
    assert got["ACC1"]["n_views"] == 2 and got["ACC1"]["left_score"] is not None \
        and got["ACC1"]["right_score"] is not None


def test_a_study_split_over_nightly_folders_keeps_the_earlier_views(bundle, tmp_path):
    day1, day2 = tmp_path / "incoming" / "day1", tmp_path / "incoming" / "day2"
    exam(day1 / "x", "P2", "ACC9", "1.2.840.9", seed=5, sides="L")
    exam(day2 / "x", "P2", "ACC9", "1.2.840.9", seed=6, sides="R")
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    assert score(day1, "--out", out, "--models", bundle).returncode == 0
    assert score(day2, "--out", out, "--models", bundle, "--views", views).returncode == 0
    study = rows(out)["ACC9"]
    assert study["n_views"] == 2 and study["left_score"] is not None and study["right_score"] is not None
    assert {Path(v["path"]).parent.parent.name for v in view_rows(views)} == {"day1", "day2"}


def test_kept_studies_keep_their_own_bundle_threshold_and_member_columns(bundle, tmp_path):
    exam(tmp_path / "a" / "x", "P3", "ACCA", "1.2.840.11", seed=7)
    exam(tmp_path / "b" / "y", "P4", "ACCB", "1.2.840.12", seed=8)
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    assert score(tmp_path / "a", "--out", out, "--models", bundle).returncode == 0
    before = rows(out)["ACCA"]
    other = write_test_bundle(tmp_path / "other", [dict(name="narrow", height=64, width=32, weight=2.0)],
                              threshold=0.01, name="other-bundle")
    assert score(tmp_path / "b", "--out", out, "--models", other, "--views", views).returncode == 0
    got = rows(out)
    assert got["ACCA"]["bundle_id"] == before["bundle_id"] != got["ACCB"]["bundle_id"]
    assert (got["ACCA"]["threshold"], got["ACCA"]["recall"]) == (0.5, before["recall"])
    assert got["ACCB"]["threshold"] == 0.01 and got["ACCB"]["recall"] is True
    columns = pq.read_schema(views).names
    assert "prob_wide" in columns and "prob_narrow" in columns  # the old members' column is kept
    by_study = {v["study_key"]: v for v in view_rows(views)}
    assert by_study["ACCA"]["prob_wide"] is not None and by_study["ACCA"]["prob_narrow"] is None


def test_a_damaged_duplicate_does_not_hide_the_intact_copy(bundle, tmp_path):
    root = tmp_path / "studies"
    intact = exam(root / "z_intact", "P5", "ACC5", "1.2.840.13", seed=9, sides="L")[0]
    damaged = root / "a_damaged" / "LCC.dcm"  # first by path
    damaged.parent.mkdir(parents=True)
    ds = pydicom.dcmread(intact)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([bytes(range(256)) * 4])  # the header reads, decoding fails
    ds.save_as(damaged)
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    result = score(root, "--out", out, "--models", bundle, "--views", views)
    assert result.returncode == 0, result.stderr
    study = rows(out)["ACC5"]
    assert (study["status"], study["n_views"]) == ("ok", 1)
    by_path = {Path(v["path"]).parent.name: v for v in view_rows(views)}
    assert by_path["z_intact"]["status"] == "ok"
    assert (by_path["a_damaged"]["status"], by_path["a_damaged"]["reason"]) == ("skipped", "duplicate")


def test_a_stopped_run_counts_what_completed_and_says_so(bundle, tmp_path):
    root = tmp_path / "studies"
    for i in range(4):
        exam(root / f"s{i}", f"P{i}", f"ACC{i}", f"1.2.840.2{i}", seed=20 + i, sides="L")
    out, report = tmp_path / "scores.parquet", tmp_path / "report.html"
    result = score(root, "--out", out, "--models", bundle, "--max-studies", "1", "--report", report)
    assert result.returncode == 0, result.stderr
    assert "stopped at --max-studies after 1 of 4 studies" in result.stdout + result.stderr
    metadata = json.loads(pq.read_schema(out).metadata[b"mammo_batch"])
    assert metadata["counts"]["scored"] == 1 and "after 1 of 4" in metadata["stopped"]
    assert list(rows(out)) == ["ACC0"]  # the others were not scored: no row claims they were
    assert "This run was stopped early" in report.read_text()
    finished = score(root, "--out", out, "--models", bundle)
    assert finished.returncode == 0 and sorted(rows(out)) == ["ACC0", "ACC1", "ACC2", "ACC3"]


def test_the_report_shows_no_patient_identifier_and_redacts_on_request(bundle, tmp_path):
    root = tmp_path / "studies"
    exam(root / "one", "PATIENT-ALPHA-77", "SHARED", "1.2.840.31", seed=30, sides="L")
    exam(root / "two", "PATIENT-BETA-88", "SHARED", "1.2.840.32", seed=31, sides="R")
    broken = root / "two" / "RCC.dcm"
    broken.write_bytes(broken.read_bytes()[:2000])  # a failure, so the study is listed in the report
    out, views, report = tmp_path / "scores.parquet", tmp_path / "views.parquet", tmp_path / "report.html"
    score(root, "--out", out, "--models", bundle, "--views", views, "--report", report)
    keys = list(rows(out))
    assert len(keys) == 2 and all(k.startswith("SHARED|patient:") for k in keys)
    for text in (report.read_text(), "\n".join(keys)):
        assert "PATIENT-ALPHA-77" not in text and "PATIENT-BETA-88" not in text
    redacted = tmp_path / "shared.html"
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "report", str(out), "--views", str(views),
               "--out", str(redacted), "--redact"]
    assert subprocess.run(command, capture_output=True, text=True, timeout=120).returncode == 0
    page = redacted.read_text()
    assert "SHARED" not in page and str(root) not in page and "Redacted" in page


def test_header_only_images_of_other_modalities_are_skipped_not_failed(bundle, tmp_path, pydicom_test_files):
    root = tmp_path / "export"
    exam(root / "mg", "P6", "ACC6", "1.2.840.41", seed=40, sides="L")
    ct = pydicom.dcmread(pydicom_test_files / "CT_small.dcm")
    del ct.PixelData  # a DICOMDIR export's CT stub
    (root / "ct").mkdir()
    ct.save_as(root / "ct" / "stub.dcm")
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    result = score(root, "--out", out, "--models", bundle, "--views", views)
    assert result.returncode == 0, result.stderr
    stub = next(v for v in view_rows(views) if v["path"].endswith("stub.dcm"))
    assert (stub["status"], stub["reason"]) == ("skipped", "not_mammogram")
    assert rows(out)["ACC6"]["status"] == "ok"


def test_a_missing_state_file_rescores_instead_of_nulling_kept_rows(bundle, tmp_path):
    root = tmp_path / "studies"
    exam(root / "x", "P7", "ACC7", "1.2.840.51", seed=50)
    out = tmp_path / "scores.parquet"
    assert score(root, "--out", out, "--models", bundle).returncode == 0
    first = rows(out)["ACC7"]
    for store in (Path(f"{out}.views.parquet"), Path(f"{out}.files.parquet")):
        store.unlink()
    again = score(root, "--out", out, "--models", bundle)
    assert again.returncode == 0 and "1 scored" in again.stdout + again.stderr
    row = rows(out)["ACC7"]
    assert row["status"] == "ok" and row["score"] == pytest.approx(first["score"], abs=1e-6)


def test_a_moved_folder_is_gone_under_one_root_and_found_under_the_other(bundle, tmp_path):
    night1 = tmp_path / "r1"
    exam(night1 / "x", "P8", "ACC8", "1.2.840.61", seed=60)
    out, views = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    assert score(night1, "--out", out, "--models", bundle).returncode == 0
    (tmp_path / "r2").mkdir()
    shutil.move(str(night1 / "x"), str(tmp_path / "r2" / "x"))
    assert score(night1, tmp_path / "r2", "--out", out, "--models", bundle, "--views", views).returncode == 0
    paths = [v["path"] for v in view_rows(views)]
    assert len(paths) == 2 and all("/r2/" in p for p in paths)
    assert rows(out)["ACC8"]["n_views"] == 2

"""`score --sr-out`: one DICOM SR per scored study, read back independently and checked against
scores.parquet / the views file, validated by DCMTK (dsrdump) and dicom3tools (dciodvfy); a rerun
writes no SR for an unchanged study and supersedes the SR of a changed one."""

from __future__ import annotations

import json
import logging
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle
from pydicom.filebase import DicomBytesIO
from sr_reading import library_images, measurement_groups

import mammo_batch
from mammo_batch.engine.results.store import views_store_path
from mammo_batch.synth import write_studies

sr_module = pytest.importorskip("mammo_batch.engine.pacs.sr", reason="needs the pacs extra (highdicom)")
MANIFEST, write_srs = sr_module.MANIFEST, sr_module.write_srs

MEMBERS = [dict(name="wide", height=96, width=48, weight=8.0, bias=-3.0),
           dict(name="upper", height=64, width=32, weight=6.0, bias=-2.0, region=(0, 32, 0, 16))]
SR_NAME = re.compile(r"^sr-\d{8}\.dcm$")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    """3 synthetic studies scored once with --sr-out."""
    root = tmp_path_factory.mktemp("sr")
    write_studies(root / "studies", 3, seed=0, size=(256, 208))
    bundle = write_test_bundle(root / "bundle", MEMBERS, threshold=0.5)
    out = root / "scores.parquet"
    mammo_batch.score([root / "studies"], out=out, models=bundle, sr_out=root / "sr", workers=1, progress=False)
    return {"root": root, "out": out, "bundle": bundle, "sr": root / "sr"}


def sr_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.dcm"))


def test_one_sr_per_scored_study_with_the_scores_of_the_parquet(run):
    scores = pq.read_table(run["out"]).to_pandas()
    views = pq.read_table(views_store_path(run["out"])).to_pandas()
    files = sr_files(run["sr"])
    assert len(files) == (scores["status"].isin(["ok", "partial"])).sum() == 3
    assert all(SR_NAME.match(f.name) for f in files)  # never built from tag values
    by_study = {pydicom.dcmread(f).StudyInstanceUID: pydicom.dcmread(f) for f in files}
    for row in scores.itertuples():
        sr = by_study[row.study_instance_uid]
        assert sr.Modality == "SR" and sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
        assert (sr.PatientID, sr.AccessionNumber) == (row.patient_id, row.accession_number)
        ok = views[(views.study_key == row.study_key) & (views.status == "ok")]
        source = pydicom.dcmread(ok.path.iloc[0], stop_before_pixels=True)
        assert sr.PatientName == source.PatientName and sr.StudyDate == source.StudyDate
        evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                    for series in s.ReferencedSeriesSequence for i in series.ReferencedSOPSequence}
        assert evidence == set(ok.sop_instance_uid)
        # The image library describes each image that has the attributes it needs (some files have no
        # PatientOrientation: they are referenced by their breast's group only).
        oriented = {uid for uid, path in zip(ok.sop_instance_uid, ok.path, strict=True)
                    if len(pydicom.dcmread(path, stop_before_pixels=True).get("PatientOrientation") or []) == 2}
        assert library_images(sr) == oriented
        groups = measurement_groups(sr)
        assert groups["study"]["Recall score"] == pytest.approx(row.score, abs=1e-12)
        assert groups["study"]["Recall threshold (recall = score >= threshold)"] == 0.5
        assert groups["study"]["Recall (study score at or above the threshold)"] == ("Yes" if row.recall else "No")
        for side, name, score in (("L", "left breast", row.left_score), ("R", "right breast", row.right_score)):
            breast = ok[ok.laterality == side]
            group = groups[name]
            assert group["Breast score"] == pytest.approx(score, abs=1e-12)
            assert sorted(group["images"]) == sorted(breast.sop_instance_uid)
            members = group["Ensemble member mean probability over the breast's views"]
            assert members == pytest.approx([breast.prob_wide.mean(), breast.prob_upper.mean()], abs=1e-6)
            expected = dict(zip(breast.sop_instance_uid, breast.prob, strict=True))
            assert group["by image"] == pytest.approx(expected, abs=1e-6)


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="DCMTK is not installed (apt-get install dcmtk)")
def test_dcmtk_reads_the_sr_and_dciodvfy_finds_no_error(run):
    for path in sr_files(run["sr"]):
        dump = subprocess.run(["dsrdump", "-Ei", str(path)], capture_output=True, text=True, timeout=60)
        assert dump.returncode == 0, dump.stderr
        assert "Comprehensive 3D SR Document" in dump.stdout and '"Recall score"' in dump.stdout
        assert "Error" not in dump.stderr
        if shutil.which("dciodvfy"):
            check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
            errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
            assert not errors, errors


def test_unchanged_rows_get_no_sr_and_a_changed_row_supersedes_its_sr(run, tmp_path):
    sr = tmp_path / "sr"
    shutil.copytree(run["sr"], sr)
    before = {p.name: p.read_bytes() for p in sr_files(sr)}
    counts = write_srs(run["out"], views_store_path(run["out"]), sr)  # the same outputs again
    assert (counts.written, counts.unchanged) == (0, 3)
    assert {p.name: p.read_bytes() for p in sr_files(sr)} == before

    out = tmp_path / "scores.parquet"  # a second night: one study changes, the others do not
    shutil.copy(run["out"], out)
    scores = pq.read_table(out)
    changed = scores.to_pandas()
    changed.loc[0, "score"] = 0.99
    changed.loc[0, "recall"] = True
    table = pa.Table.from_pandas(changed, schema=scores.schema, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(scores.schema.metadata), out)
    counts = write_srs(out, views_store_path(run["out"]), sr)
    assert (counts.written, counts.superseded, counts.unchanged) == (1, 1, 2)

    manifest = json.loads((sr / MANIFEST).read_text())
    entry = manifest[changed.loc[0, "study_key"]]
    new = pydicom.dcmread(sr / entry["file"])
    old = pydicom.dcmread(DicomBytesIO(before[entry["file"]]))
    assert new.InstanceNumber == old.InstanceNumber + 1 == 2
    assert new.SeriesInstanceUID == old.SeriesInstanceUID and new.SOPInstanceUID != old.SOPInstanceUID
    predecessor = new.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert predecessor.ReferencedSOPInstanceUID == old.SOPInstanceUID
    assert measurement_groups(new)["study"]["Recall score"] == 0.99
    assert [p.name for p in sr_files(sr)] == sorted(before)  # replaced in place: one current SR per study
    assert {p.name: p.read_bytes() for p in sr_files(sr) if p.name != entry["file"]} == \
        {k: v for k, v in before.items() if k != entry["file"]}


def test_sr_out_that_is_a_file_is_a_usage_error(run, tmp_path):
    (tmp_path / "taken").write_text("x")
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(run["root"] / "studies"), "--out",
               str(tmp_path / "s.parquet"), "--models", str(run["bundle"]), "--sr-out", str(tmp_path / "taken"),
               "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--sr-out" in result.stderr



def test_nightly_reruns_through_the_api_rewrite_only_changed_studies(run, tmp_path):
    out, sr = tmp_path / "scores.parquet", tmp_path / "sr"
    options = dict(out=out, models=run["bundle"], sr_out=sr, workers=1, progress=False)
    mammo_batch.score([run["root"] / "studies"], **options)
    first = {p.name: p.read_bytes() for p in sr_files(sr)}
    mammo_batch.score([run["root"] / "studies"], **options)  # nothing changed tonight
    assert {p.name: p.read_bytes() for p in sr_files(sr)} == first
    mammo_batch.score([run["root"] / "studies"], rescore=True, **options)  # rescored: new scored_at, same results
    assert {p.name: p.read_bytes() for p in sr_files(sr)} == first
    mammo_batch.score([run["root"] / "studies"], threshold=0.01, **options)  # every decision changes
    for path in sr_files(sr):
        sr_now = pydicom.dcmread(path)
        assert sr_now.InstanceNumber == 2 and "PredecessorDocumentsSequence" in sr_now
        assert measurement_groups(sr_now)["study"]["Recall (study score at or above the threshold)"] == "Yes"


def test_no_patient_name_or_birth_date_in_the_logs(run, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    write_srs(run["out"], views_store_path(run["out"]), tmp_path / "sr")
    views = pq.read_table(views_store_path(run["out"])).to_pandas()
    for path in views[views.status == "ok"].path:
        source = pydicom.dcmread(path, stop_before_pixels=True)
        for value in (str(source.PatientName), str(source.get("PatientBirthDate", ""))):
            assert value and value not in caplog.text


def test_a_push_that_reaches_no_one_fails_and_is_retried_next_time(run, tmp_path):
    sr = tmp_path / "sr"
    shutil.copytree(run["sr"], sr)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "push", str(sr), f"dicom://NOBODY@127.0.0.1:{port}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3 and "3 failed" in result.stderr
    assert not list(sr.glob("pushed-*.json")) or json.loads(next(sr.glob("pushed-*.json")).read_text()) == []


def test_a_process_pool_writes_the_same_srs(run, tmp_path):
    one = write_srs(run["out"], views_store_path(run["out"]), tmp_path / "one", workers=1)
    pooled = write_srs(run["out"], views_store_path(run["out"]), tmp_path / "pool", workers=2,
                       pool_from=1)
    assert one.written == pooled.written == 3
    manifests = [json.loads((tmp_path / d / MANIFEST).read_text()) for d in ("one", "pool")]
    assert {k: (v["hash"], v["file"]) for k, v in manifests[0].items()} == \
        {k: (v["hash"], v["file"]) for k, v in manifests[1].items()}
    for key, entry in manifests[0].items():
        groups = [measurement_groups(pydicom.dcmread(tmp_path / d / entry["file"])) for d in ("one", "pool")]
        for group in groups:  # tracking UIDs differ by design; the values must not
            for items in group.values():
                items.pop("Tracking Unique Identifier", None)
        assert groups[0] == groups[1], key

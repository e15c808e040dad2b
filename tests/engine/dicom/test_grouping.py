"""Study grouping: one patient per study, accession OR StudyInstanceUID links, deterministic keys,
each file once by real path, each SOPInstanceUID scored once per study, folder keys by real path.
Expectations are written by hand from the identifiers the test puts in the files."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from dicom_files import write_view

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.studies import group_studies


def layout(studies) -> dict[str, list[str]]:
    """study key -> sorted file names of its scorable views."""
    return {s.key: sorted(Path(v.path).name for v in s.scorable) for s in studies}


def test_two_patients_sharing_an_accession_are_split_and_flagged(tmp_path):
    write_view(tmp_path / "a" / "p1_lcc.dcm", "P1", "ACC9", "1.2.840.1", "L", "CC")
    write_view(tmp_path / "a" / "p1_rcc.dcm", "P1", "ACC9", "1.2.840.1", "R", "CC")
    write_view(tmp_path / "b" / "p2_lcc.dcm", "P2", "ACC9", "1.2.840.2", "L", "CC")
    write_view(tmp_path / "b" / "p3_lcc.dcm", "P3", "ACC5", "1.2.840.3", "L", "CC")
    studies, orphans = group_studies(discover([tmp_path], workers=1))
    assert not orphans
    # the key carries a short hash of the PatientID, never the value (keys reach reports and logs)
    p1, p2 = (f"ACC9|patient:{hashlib.sha256(f'mammo-batch patient:{p}'.encode()).hexdigest()[:10]}"
              for p in ("P1", "P2"))
    assert layout(studies) == {p1: ["p1_lcc.dcm", "p1_rcc.dcm"], p2: ["p2_lcc.dcm"], "ACC5": ["p3_lcc.dcm"]}
    by_key = {s.key: s for s in studies}
    assert by_key[p1].patient_id == "P1" and by_key[p2].patient_id == "P2"
    assert by_key[p1].reason == "patient_conflict" and by_key["ACC5"].reason == ""


def test_a_blank_accession_joins_its_exam_through_the_study_uid(tmp_path):
    """Union of both links, across folders: UID links B to A, accession links C to A."""
    write_view(tmp_path / "x" / "a.dcm", "P1", "ACC1", "1.2.840.10", "L", "CC")
    write_view(tmp_path / "y" / "b.dcm", "P1", "", "1.2.840.10", "L", "MLO")
    write_view(tmp_path / "z" / "c.dcm", "P1", "ACC1", "1.2.840.11", "R", "CC")
    write_view(tmp_path / "z" / "d.dcm", "P1", "", "1.2.840.12", "R", "MLO")  # its own exam
    studies, _ = group_studies(discover([tmp_path], workers=1))
    assert layout(studies) == {"ACC1": ["a.dcm", "b.dcm", "c.dcm"], "1.2.840.12": ["d.dcm"]}


def test_keys_do_not_depend_on_order_workers_or_spilling(tmp_path):
    from mammo_batch.engine.dicom.catalog import HeaderCatalog

    for i in range(12):
        write_view(tmp_path / f"s{i % 3}" / f"v{i}.dcm", f"P{i % 3}", f"A{i % 3}", f"1.2.9.{i % 3}",
                   "LR"[i % 2], "CC")
    one = layout(group_studies(discover([tmp_path / "s0", tmp_path / "s1", tmp_path / "s2"], workers=1))[0])
    catalog = HeaderCatalog.from_records(discover([tmp_path / "s2", tmp_path / "s1", tmp_path / "s0"],
                                                  workers=2, chunksize=1), batch_rows=2, spill_rows=3)
    assert catalog.spilled
    assert layout(group_studies(catalog)[0]) == one == {
        f"A{p}": sorted(f"v{i}.dcm" for i in range(12) if i % 3 == p) for p in range(3)}


def test_partitioned_linking_equals_in_memory_linking():
    """Bucketed on disk (many small buckets) and in memory: the same components and conflicts."""
    from mammo_batch.engine.dicom.links import LinkTable, hash64

    rng = np.random.default_rng(0)
    n = 3000
    patient = hash64(f"P{i}" for i in rng.integers(0, 400, n))
    accession = hash64(f"A{i}" if i % 5 else "" for i in rng.integers(0, 900, n))
    uid = hash64(f"U{i}" if i % 7 else "" for i in rng.integers(0, 900, n))
    results = []
    for bucket_rows in (n, 97):
        table = LinkTable(n, bucket_rows=bucket_rows)
        for start in range(0, n, 250):
            part = slice(start, start + 250)
            table.add(start, patient[part], accession[part], uid[part])
        results.append(table.components())
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    # Independent check of the union: rows of one study share a patient; linked rows share a study.
    study = results[0][0]
    assert ((study == -1) == ((accession == 0) & (uid == 0))).all()
    for i in np.flatnonzero(study != -1)[::37]:
        same = (patient == patient[i]) & (((accession == accession[i]) & (accession != 0))
                                          | ((uid == uid[i]) & (uid != 0)))
        assert (study[same] == study[i]).all()
        assert (patient[study == study[i]] == patient[i]).all()


def test_each_file_once_by_real_path(tmp_path, monkeypatch):
    """`score dir dir/sub/file` (either order, relative and absolute): one record per file."""
    cc = write_view(tmp_path / "d" / "sub" / "CC.dcm", "P1", "A1", "1.2.3.4", "L", "CC")
    write_view(tmp_path / "d" / "sub" / "MLO.dcm", "P1", "A1", "1.2.3.4", "L", "MLO")
    write_view(tmp_path / "d" / "RCC.dcm", "P1", "A1", "1.2.3.4", "R", "CC")
    monkeypatch.chdir(tmp_path)
    everything = ["CC.dcm", "MLO.dcm", "RCC.dcm"]
    cases = {(str(tmp_path / "d"), str(cc)): everything, (str(cc), "d"): everything,
             ("d", str(tmp_path / "d"), "d/sub"): everything, (str(cc), "d/sub/CC.dcm"): ["CC.dcm"]}
    for paths, names in cases.items():
        records = list(discover(paths, workers=1))
        assert sorted(Path(r.path).name for r in records) == names, paths
        [study], _ = group_studies(records)
        assert len(study.scorable) == len(names)


def test_a_copied_image_is_scored_once_and_the_copy_recorded(tmp_path):
    original = write_view(tmp_path / "a" / "LCC.dcm", "P1", "A1", "1.2.3.4", "L", "CC", sop_uid="1.2.3.4.5")
    write_view(tmp_path / "a" / "RCC.dcm", "P1", "A1", "1.2.3.4", "R", "CC")
    shutil.copy(original, tmp_path / "b_copy.dcm")
    [study], _ = group_studies(discover([tmp_path], workers=1))
    assert sorted(Path(v.path).name for v in study.scorable) == ["LCC.dcm", "RCC.dcm"]
    [copy] = [v for v in study.views if not v.scorable]
    assert (Path(copy.path).name, copy.status, copy.reason) == ("b_copy.dcm", "skipped", "duplicate")
    assert str(original) in copy.detail


def test_folder_keys_are_real_paths(tmp_path, monkeypatch):
    for lat in "LR":
        write_view(tmp_path / "base" / "case1" / f"{lat}.dcm", f"P-{lat}", "", f"1.2.{ord(lat)}", lat)
    os.symlink(tmp_path / "base", tmp_path / "alias")
    monkeypatch.chdir(tmp_path)
    keys = [[s.key for s in group_studies(discover([p], workers=1), "folder")[0]]
            for p in ("base", str(tmp_path / "base"), "alias", "./base/../base")]
    assert keys == [[str((tmp_path / "base" / "case1").resolve())]] * 4


def test_unknown_mode_is_refused(tmp_path):
    from mammo_batch.engine.studies import plan_studies

    write_view(tmp_path / "a.dcm", "P1", "A1", "1.2.3")
    with pytest.raises(ValueError, match="study key"):
        plan_studies(discover([tmp_path], workers=1), "patient")

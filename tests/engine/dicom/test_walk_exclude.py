"""Discovery's `exclude`: the engine's own outputs inside an input folder are never read nor reported
(the scores file, its lock, its journal folder, the report), compared by real path, however they are
reached (a link, another spelling of the folder). Real DICOM files, real links."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.dicom.discover import iter_candidate_files


@pytest.fixture
def root(tmp_path: Path, make_studies) -> Path:
    """Two synthetic studies, and outputs of a run written inside the folder. The scores file is a
    copy of a real DICOM view, so that reading it by mistake would make it a scorable view."""
    root = tmp_path / "studies"
    shutil.copytree(make_studies(2, seed=4), root)
    a_view = sorted(root.rglob("*.dcm"))[0]
    shutil.copy(a_view, root / "scores.parquet")
    (root / "scores.parquet.lock").write_text("4242\n")
    (root / "scores.parquet.journal").mkdir()
    shutil.copy(a_view, root / "scores.parquet.journal" / "part-00001.scores.parquet")
    (root / "report.html").write_text("<html></html>")
    return root


def outputs(root: Path) -> list[Path]:
    return [root / "scores.parquet", root / "scores.parquet.lock", root / "scores.parquet.journal",
            root / "report.html", root / "views.parquet"]  # views.parquet does not exist yet: fine


def paths(records) -> set[str]:
    return {r.path for r in records}


def test_outputs_inside_an_input_folder_are_neither_read_nor_reported(root: Path):
    everything = paths(discover([root], workers=1))
    own = {str(root / "scores.parquet"), str(root / "scores.parquet.lock"), str(root / "report.html"),
           str(root / "scores.parquet.journal" / "part-00001.scores.parquet")}
    assert own <= everything  # without exclude the walk reads them (the defect)
    kept = discover([root], workers=1, exclude=outputs(root))
    assert paths(kept) == everything - own
    assert all(r.scorable for r in kept if r.path.endswith(".dcm"))


def test_exclusion_is_by_real_path_through_links_and_other_spellings(root: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(root / "scores.parquet", elsewhere / "linked_scores.dcm")  # a file link to an output
    os.symlink(root / "scores.parquet.journal", elsewhere / "journal_link")  # a folder link
    spelled = tmp_path / "spelled"
    os.symlink(root, spelled)  # the output named through another path to the same folder
    excluded = [spelled / p.name for p in outputs(root)]
    found = {str(p) for p in iter_candidate_files([root, elsewhere], exclude=excluded)}
    assert not any("scores.parquet" in p or p.endswith("report.html") for p in found), found
    assert len([p for p in found if p.endswith(".dcm")]) == len(list(root.rglob("*.dcm")))


def test_an_excluded_input_is_not_walked(root: Path):
    assert list(iter_candidate_files([root / "scores.parquet.journal"],
                                     exclude=[root / "scores.parquet.journal"])) == []

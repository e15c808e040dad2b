"""What the commands print, through the real CLI: `score` puts its summary on stdout (so
`score ... > nightly.log` keeps it) and nothing else there; `preview` counts and lists every file it
did not render, with its reason (discovery failures, duplicates, files that are not DICOM)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dicom_files import write_view


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def folder(make_studies, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Two synthetic studies plus one file of each kind preview must not render: path -> reason."""
    root = tmp_path_factory.mktemp("mixed") / "studies"
    shutil.copytree(make_studies(2, seed=6), root)
    a_view = sorted(root.rglob("*.dcm"))[0]
    extra = root / "extra"
    extra.mkdir()
    (extra / "cut.dcm").write_bytes(a_view.read_bytes()[: a_view.stat().st_size // 2])
    (extra / "notes.txt").write_text("not an image\n")
    shutil.copy(a_view, a_view.with_name("copy_of_a_view.dcm"))  # the same SOPInstanceUID twice
    write_view(extra / "huge.dcm", "P9", "ACC9", "1.2.9", Rows=12000, Columns=12000)
    expected = {str(extra / "cut.dcm"): "truncated", str(extra / "notes.txt"): "not_dicom",
                str(a_view.with_name("copy_of_a_view.dcm")): "duplicate", str(extra / "huge.dcm"): "too_large"}
    return root, expected


def test_score_prints_its_summary_on_stdout_and_progress_on_stderr(make_bundle, make_studies, tmp_path):
    out = tmp_path / "scores.parquet"
    result = cli("score", str(make_studies(2, seed=6)), "--models", str(make_bundle()), "--out", str(out),
                 "--workers", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("runtime: ")
    assert any(line.startswith("2 studies: ") for line in lines)
    assert lines[-1] == f"wrote {out}"
    assert "wrote " not in result.stderr and "2 studies: " not in result.stderr


def test_preview_lists_every_file_it_did_not_render_with_its_reason(folder, tmp_path):
    root, expected = folder
    synth_csvs = {str(p): "not_dicom" for p in root.glob("*.csv")}  # labels.csv, manifest.csv
    result = cli("preview", str(root), "--out", str(tmp_path / "preview"), "--size", "128x64", "--workers", "1")
    assert result.returncode == 0, result.stderr
    with (tmp_path / "preview" / "index.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    skipped = {r["path"]: r["error"].split(":")[0] for r in rows if r["status"] == "skipped"}
    assert skipped == {**expected, **synth_csvs}
    rendered = [r for r in rows if r["status"] == "ok"]
    assert rendered and all(r["png"] for r in rendered)
    [line] = result.stdout.splitlines()
    n = len(expected) + len(synth_csvs)
    assert f"{n} not rendered: " in line
    for reason in ("truncated", "not_dicom", "duplicate", "too_large"):
        count = list({**expected, **synth_csvs}.values()).count(reason)
        assert f"{reason} {count}" in line


def test_preview_into_a_folder_inside_its_input_never_reads_its_own_output(make_studies, tmp_path):
    root = tmp_path / "studies"
    shutil.copytree(make_studies(2, seed=6), root)
    out = root / "preview"
    for _ in range(2):  # the second run finds the first run's PNGs and index.csv under its input
        result = cli("preview", str(root), "--out", str(out), "--size", "128x64", "--workers", "1")
        assert result.returncode == 0, result.stderr
    with (out / "index.csv").open() as handle:
        listed = [row["path"] for row in csv.DictReader(handle)]
    assert listed and not [p for p in listed if Path(p).is_relative_to(out)]

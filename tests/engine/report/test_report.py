"""The nightly report: a real run with failures (score through the CLI), then `mammo-batch report`;
the page's numbers are checked against the Parquet files it was made from."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle

from mammo_batch.engine.report import ReportError, write_report
from mammo_batch.synth import write_studies

MEMBERS = [dict(name="m", fold=0, height=64, width=32, dtype="uint8", weight=8.0, bias=-3.0, region=None)]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", *args],
                          capture_output=True, text=True, timeout=300)


class Tables(HTMLParser):
    """Every <table id=...> of a page as a list of rows of cell texts; every <img src>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Tables:
    parser = Tables()
    parser.feed(page)
    return parser


def counts(parser: Tables, table_id: str, key_columns: int = 1) -> dict:
    rows = parser.tables[table_id][1:]  # below the header
    return {tuple(r[:key_columns]) if key_columns > 1 else r[0]: int(r[key_columns]) for r in rows}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, Path, dict[str, set[str]]]:
    """A scored run with a partial and a failed study, a non-DICOM file and a truncated file."""
    root = tmp_path_factory.mktemp("report")
    studies = root / "studies"
    write_studies(studies, 5, seed=11, size=(192, 160), variants=["hologic"], layout="accession")
    folders = sorted(p for p in studies.iterdir() if p.is_dir())
    phi: dict[str, set[str]] = {"names": set(), "ids": set()}
    for number, path in enumerate(sorted(studies.rglob("*.dcm"))):
        ds = pydicom.dcmread(path)
        ds.PatientName = f"ZZTESTNAME^PERSON{number:03d}"  # values that must never reach the page
        phi["names"].add(str(ds.PatientName))
        phi["ids"].add(str(ds.PatientID))
        ds.save_as(path)
    _corrupt(sorted(folders[0].glob("*.dcm"))[0])  # -> partial
    for path in folders[1].glob("*.dcm"):  # -> failed
        _corrupt(path)
    data = sorted(folders[2].glob("*.dcm"))[0].read_bytes()
    (folders[2] / "cut.dcm").write_bytes(data[: len(data) // 2])  # a truncated extra view
    (folders[2] / "notes.txt").write_text("not an image\n")
    bundle = write_test_bundle(root / "bundle", MEMBERS, threshold=0.5)
    scores, views = root / "scores.parquet", root / "views.parquet"
    result = cli("score", str(studies), "--models", str(bundle), "--out", str(scores),
                 "--views", str(views), "--quiet", "--workers", "2")
    assert result.returncode == 3, result.stderr
    return studies, scores, views, phi


def _corrupt(path: Path) -> None:
    """The header reads, the J2K codestream is garbage: a decode failure."""
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([bytes(range(256)) * 4])
    ds.save_as(path)


def test_the_report_holds_the_counts_of_the_parquet_files(run, tmp_path):
    _, scores_path, views_path, _ = run
    out = tmp_path / "report.html"
    result = cli("report", str(scores_path), "--views", str(views_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = parse(out.read_text(encoding="utf-8"))
    scores = pq.read_table(scores_path).to_pandas()
    views = pq.read_table(views_path).to_pandas()

    assert counts(page, "study-status") == scores["status"].value_counts().to_dict()
    assert {"ok", "partial", "failed"} <= set(counts(page, "study-status"))
    assert counts(page, "view-status") == views["status"].value_counts().to_dict()
    not_ok = views[views["status"] != "ok"]
    expected_reasons = not_ok.groupby(["status", "reason"]).size().to_dict()
    assert counts(page, "reasons", key_columns=2) == expected_reasons
    assert {("failed", "decode_error"), ("skipped", "not_dicom")} <= set(expected_reasons)

    scored = scores[scores["score"].notna()]
    [all_row] = [r for r in page.tables["recall"][1:] if r[0] == "all"]
    assert int(all_row[1]) == len(scored) and int(all_row[2]) == int(scored["recall"].sum())
    assert all_row[3] == f"{100 * scored['recall'].mean():.1f}%"

    failed = views[views["status"] == "failed"]
    listed = page.tables["failed-files"][1:]
    assert sorted(r[0] for r in listed) == sorted(failed["path"])
    assert {r[1] for r in listed} == set(failed["reason"])
    bad_studies = scores[scores["status"].isin(["failed", "partial"])]
    assert sorted(r[0] for r in page.tables["failed-studies"][1:]) == sorted(bad_studies["study_key"])

    run_rows = dict(r for r in page.tables["run"][1:])
    metadata_bundle = scores_path and pq.read_schema(scores_path).metadata[b"mammo_batch"].decode()
    assert run_rows["bundle"] in metadata_bundle and run_rows["runtime"].startswith("onnxruntime")
    assert int(run_rows["views scored this run"]) == int(scores["n_views"].sum())
    assert float(run_rows["views/s"]) > 0


def test_the_page_is_self_contained_and_carries_no_patient_identifiers(run, tmp_path):
    _, scores_path, views_path, phi = run
    text = write_report(scores_path, tmp_path / "r.html", views_path).read_text(encoding="utf-8")
    page = parse(text)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not {"script", "link", "iframe"} & page.tags  # nothing fetched when the page opens
    assert "http://" not in text and "https://" not in text
    for value in phi["names"] | phi["ids"] | {n.replace("^", " ") for n in phi["names"]}:
        assert value not in text
    assert "ZZTESTNAME" not in text


def test_without_views_the_page_says_what_is_missing(run, tmp_path):
    _, scores_path, _, _ = run
    page = write_report(scores_path, tmp_path / "r.html").read_text(encoding="utf-8")
    scores = pq.read_table(scores_path).to_pandas()
    assert counts(parse(page), "study-status") == scores["status"].value_counts().to_dict()
    assert "No views.parquet given" in page and "Vendor unknown" in page


def test_a_file_that_is_not_results_is_refused(tmp_path):
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    with pytest.raises(ReportError, match="expected schema"):
        write_report(other, tmp_path / "r.html")
    result = cli("report", str(other), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_vendors_throughput_and_slowest_when_the_files_carry_them(tmp_path):
    """Columns today's engine does not write yet (manufacturer, per-view seconds, per-study
    scored_at): the report uses them as soon as they are there."""
    from datetime import datetime, timedelta, timezone

    import pyarrow as pa

    from mammo_batch.engine.results.files import with_run_metadata
    from mammo_batch.engine.results.schema import SCORES_SCHEMA

    start = datetime(2026, 1, 1, 1, 0, tzinfo=timezone.utc)
    studies = [dict(study_key=f"{i:06d}", patient_id=f"PID{i}", score=i / 10, recall=i >= 5,
                    n_views=4, n_views_skipped=0, status="ok", error="",
                    scored_at=start + timedelta(seconds=60 * i)) for i in range(10)]
    scores = pa.Table.from_pylist(studies, schema=SCORES_SCHEMA)
    metadata = {"bundle_id": "b@1", "timings": {"discovery_s": 5.0, "scoring_s": 600.0},
                "counts": {"scored": 10}, "started_at": "2026-01-01T00:59:55+00:00"}
    pq.write_table(with_run_metadata(scores, metadata), tmp_path / "s.parquet")
    vendors = ["HOLOGIC"] * 6 + ["Planmed"] * 4
    views = pa.table({"path": [f"/d/{i}.dcm" for i in range(10)],
                      "study_key": [s["study_key"] for s in studies], "status": ["ok"] * 10,
                      "reason": [""] * 10, "detail": [""] * 10, "manufacturer": vendors,
                      "seconds": [float(i) for i in range(10)]})
    pq.write_table(views, tmp_path / "v.parquet")
    page = parse(write_report(tmp_path / "s.parquet", tmp_path / "r.html", tmp_path / "v.parquet")
                 .read_text(encoding="utf-8"))
    recall = {r[0]: (int(r[1]), int(r[2])) for r in page.tables["recall"][1:]}
    assert recall == {"all": (10, 5), "HOLOGIC": (6, 1), "Planmed": (4, 4)}
    throughput = page.tables["throughput"][1:]
    assert sum(int(r[1]) for r in throughput) == 10 and sum(int(r[2]) for r in throughput) == 40
    assert [r[0] for r in page.tables["slowest"][1:4]] == ["/d/9.dcm", "/d/8.dcm", "/d/7.dcm"]
    assert dict(r for r in page.tables["run"][1:])["views/s"] == f"{40 / 600:.2f}"

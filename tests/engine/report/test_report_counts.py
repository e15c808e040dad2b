"""The report's "Failed files (N)" heading and its "first 200 of N" note, on results whose counts are
known by construction: N counts failed files only (never skipped ones), the table lists at most 200."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mammo_batch.engine.report import write_report
from mammo_batch.engine.results.files import with_run_metadata
from mammo_batch.engine.results.schema import SCORES_SCHEMA

LISTED = 200  # what the page promises to list (README, "report")


def write_results(folder: Path, failed: int, skipped: int, ok: int) -> tuple[Path, Path]:
    scored_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    studies = [dict(study_key="000001", patient_id="P1", score=0.5, recall=True, n_views=ok,
                    n_views_skipped=skipped, status="partial", error="", scored_at=scored_at)]
    scores = folder / "scores.parquet"
    pq.write_table(with_run_metadata(pa.Table.from_pylist(studies, schema=SCORES_SCHEMA),
                                     {"bundle_id": "b@1", "counts": {"scored": 1}}), scores)
    statuses = ["failed"] * failed + ["skipped"] * skipped + ["ok"] * ok
    reasons = {"failed": "decode_error", "skipped": "for_processing", "ok": ""}
    views = folder / "views.parquet"
    pq.write_table(pa.table({"path": [f"/d/{i:04d}.dcm" for i in range(len(statuses))],
                             "study_key": ["000001"] * len(statuses), "status": statuses,
                             "reason": [reasons[s] for s in statuses], "detail": [""] * len(statuses)}), views)
    return scores, views


def failed_heading(page: str) -> int:
    (count,) = re.findall(r"<h2>Failed files \((\d+)\)</h2>", page)
    return int(count)


def listed_paths(page: str) -> list[str]:
    table = re.split(r"id=['\"]failed-files['\"]", page, maxsplit=1)[1].split("</table>", 1)[0]
    return re.findall(r"/d/\d{4}\.dcm", table)


@pytest.mark.parametrize("failed, skipped", [(230, 60), (5, 60), (200, 1)])
def test_failed_files_heading_counts_failed_files_only_and_notes_the_first_200(tmp_path, failed, skipped):
    scores, views = write_results(tmp_path, failed=failed, skipped=skipped, ok=10)
    page = write_report(scores, tmp_path / "report.html", views).read_text(encoding="utf-8")
    assert failed_heading(page) == failed
    listed = listed_paths(page)
    assert len(listed) == min(failed, LISTED)
    assert set(listed) <= {f"/d/{i:04d}.dcm" for i in range(failed)}  # failed files, never skipped ones
    note = f"The first {LISTED} of {failed}."
    assert (note in page) == (failed > LISTED)

"""`write_srs`: the finished outputs of a scoring run -> one DICOM SR per scored study whose results changed.

The SR folder keeps a manifest (`manifest.json`): study_key -> the hash of what its SR shows, the SR's
file name, SOPInstanceUID and InstanceNumber. A study whose shown content is unchanged gets no new SR;
a changed one gets a new instance in the same series (series UID derived from the StudyInstanceUID),
InstanceNumber + 1, a new SOPInstanceUID, its predecessor in PredecessorDocumentsSequence; the new file
replaces the previous one in the folder (the PACS keeps both). File names are `sr-<counter>.dcm`,
never built from tag values. Only studies with a score (status ok or partial) get an SR.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.pacs.sr_content import SrIdentity, StudyResult, build_sr, series_uid_for
from mammo_batch.engine.results.files import fsync_dir, read_run_metadata, temp_name

log = logging.getLogger("mammo_batch.sr")

MANIFEST = "manifest.json"
SCORED = ("ok", "partial")
MEMBER_PREFIX = "prob_"
# The scores columns a row key is made of: a study whose key is unchanged is not looked at again.
ROW_KEY_COLUMNS = ("scored_at", "score", "recall", "left_score", "right_score", "bundle_id", "engine_version",
                   "threshold")


@dataclass
class SrCounts:
    written: int = 0  # new studies and superseding versions
    superseded: int = 0  # of `written`: those replacing an earlier SR
    unchanged: int = 0
    not_scored: int = 0  # failed / skipped studies: nothing to report
    no_source: int = 0  # no readable source file left to copy the patient/study modules from
    failed: int = 0  # highdicom refused the study's sources (logged; retried next time)

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def write_srs(scores_parquet: str | os.PathLike, views_parquet: str | os.PathLike,
              sr_dir: str | os.PathLike, workers: int = 1, pool_from: int = 0) -> SrCounts:
    """Write an SR into `sr_dir` for each scored study of `scores_parquet` whose shown content changed
    since the last call on the same folder; returns the counts (also logged). `workers`: processes
    building SRs (0: one per core), used from `pool_from` SRs on (0: 8 per process: each process pays
    1-2 s of imports).

    Cost: one columnar pass over the scores (a row key per study, compared with the manifest), then
    Python work only for the studies whose row key changed: O(changed studies), not O(history)."""
    sr_dir = Path(sr_dir)
    sr_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(sr_dir)
    threshold = read_run_metadata(scores_parquet).get("arguments", {}).get("threshold")
    table = pq.read_table(scores_parquet)
    scored = table.filter(pc.fill_null(pc.and_(pc.is_in(table["status"], pa.array(SCORED)),
                                               pc.is_finite(table["score"])), False))
    counts = SrCounts(not_scored=table.num_rows - scored.num_rows)
    row_keys = _row_keys(scored, threshold)
    keys = scored["study_key"].to_pylist()
    changed = [i for i, (key, row_key) in enumerate(zip(keys, row_keys, strict=True))
               if manifest.get(key, {}).get("row_key") != row_key]
    counts.unchanged = len(keys) - len(changed)
    candidates = scored.take(pa.array(changed, pa.int64()))
    jobs = _jobs(candidates, [row_keys[i] for i in changed], threshold, views_parquet, manifest, counts)
    try:
        for job, (outcome, detail) in zip(jobs, _make_all(jobs, sr_dir, workers, pool_from), strict=True):
            _record(manifest, job, outcome, detail, counts)
    finally:
        _write_manifest(sr_dir, manifest)  # what was written so far stays known, even after an error
    log.info("SR: %d written (%d superseding an earlier one), %d unchanged, %d not scored, %d without source "
             "files, %d refused, in %s", counts.written, counts.superseded, counts.unchanged, counts.not_scored,
             counts.no_source, counts.failed, sr_dir)
    return counts


@dataclass(frozen=True)
class _Job:
    """One SR to write: the study's results, its content hash and row key, its manifest entry, its file."""

    result: StudyResult
    digest: str
    row_key: str
    entry: dict | None
    name: str


def _jobs(candidates: pa.Table, row_keys: list[str], threshold: float | None, views_parquet: str | os.PathLike,
          manifest: dict[str, Any], counts: SrCounts) -> list[_Job]:
    """The candidates whose shown content changed (a rescored study with the same results has none)."""
    views_by_study = _views_by_study(views_parquet, candidates["study_key"])
    members = _members(views_parquet)
    names = _names(manifest)
    jobs = []
    for row, row_key in zip(candidates.to_pylist(), row_keys, strict=True):
        row_threshold = row.get("threshold", threshold)  # per row where the store keeps it
        if row_threshold is None:
            raise ValueError("the scores file records no threshold: cannot state the recall rule")
        result = StudyResult(row, float(row_threshold), views_by_study.get(row["study_key"], []), members)
        digest, entry = content_hash(result), manifest.get(row["study_key"])
        if entry is not None and entry["hash"] == digest:
            entry["row_key"] = row_key
            counts.unchanged += 1
        else:
            jobs.append(_Job(result, digest, row_key, entry, entry["file"] if entry else next(names)))
    return jobs


def _make_all(jobs: list[_Job], sr_dir: Path, workers: int, pool_from: int) -> Iterator[tuple[str, Any]]:
    workers = workers or os.cpu_count() or 1
    make = partial(_make_sr, sr_dir)
    if workers < 2 or len(jobs) < (pool_from or 8 * workers):
        yield from map(make, jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(make, jobs, chunksize=max(1, len(jobs) // (4 * workers)))


def _make_sr(sr_dir: Path, job: _Job) -> tuple[str, Any]:
    """Build and save one SR: ("written", its manifest entry), ("no_source", None) or ("failed", why)."""
    sources = _sources(job.result)
    if not sources:
        return "no_source", None
    previous = _read_previous(sr_dir, job.entry)
    number = job.entry["instance_number"] + 1 if job.entry else 1
    study_uid = next(iter(sources.values())).StudyInstanceUID
    identity = SrIdentity(series_uid_for(study_uid), generate_uid(), number)
    try:
        sr = build_sr(job.result, sources, identity, previous)
    except (ValueError, TypeError, AttributeError) as error:  # real headers break strict rules: one study
        return "failed", safe_error(error)
    _save(sr, sr_dir / job.name)
    return "written", {"hash": job.digest, "row_key": job.row_key, "file": job.name,
                       "sop_instance_uid": identity.sop_instance_uid, "instance_number": number,
                       "series_instance_uid": identity.series_instance_uid}


def _record(manifest: dict[str, Any], job: _Job, outcome: str, detail: Any, counts: SrCounts) -> None:
    if outcome == "written":
        manifest[job.result.row["study_key"]] = detail
        counts.written += 1
        counts.superseded += job.entry is not None
    elif outcome == "no_source":
        counts.no_source += 1
    else:
        counts.failed += 1
        log.warning("SR: a changed study got no SR (%s); it is tried again next run", detail)


def _row_keys(scored: pa.Table, threshold: float | None) -> list[str]:
    """Per row, its scores-row values that a new SR would follow (scored_at: rescored; the rest: re-derived)."""
    if not scored.num_rows:
        return []
    columns = [pc.fill_null(pc.cast(scored[name], pa.string()), "-") for name in ROW_KEY_COLUMNS
               if name in scored.column_names]
    joined = pc.binary_join_element_wise(*columns, "|").to_pylist()
    return [f"{key}|{threshold!r}" for key in joined]


def content_hash(result: StudyResult) -> str:
    """What the SR shows (scores, decision, threshold, bundle, engine, views): not when it was scored."""
    row = result.row
    shown = {
        "study": [row.get(c) for c in ("score", "recall", "left_score", "right_score", "bundle_id",
                                       "engine_version")],
        "threshold": result.threshold,
        "views": sorted(json.dumps([v.get("sop_instance_uid"), v.get("laterality"), v.get("view"), v.get("prob"),
                                    [v.get(MEMBER_PREFIX + m) for m in result.members]], default=str)
                        for v in result.views),
    }
    return hashlib.sha256(json.dumps(shown, sort_keys=True, default=str).encode()).hexdigest()


def _views_by_study(views_parquet: str | os.PathLike, study_keys: pa.ChunkedArray) -> dict[str, list[dict]]:
    table = pq.read_table(views_parquet)
    table = table.filter(pc.fill_null(pc.and_(pc.is_in(table["study_key"], study_keys.combine_chunks()),
                                              pc.equal(table["status"], "ok")), False))
    by_study: dict[str, list[dict]] = {}
    seen: set[tuple[str, str]] = set()
    for view in table.to_pylist():
        uid = view.get("sop_instance_uid")
        if uid and (view["study_key"], uid) not in seen:  # duplicate copies of one image: shown once
            seen.add((view["study_key"], uid))
            by_study.setdefault(view["study_key"], []).append(view)
    return by_study


def _members(views_parquet: str | os.PathLike) -> list[str]:
    names = pq.read_schema(views_parquet).names
    return [n[len(MEMBER_PREFIX):] for n in names if n.startswith(MEMBER_PREFIX)]


def _sources(result: StudyResult) -> dict[str, Dataset]:
    """SOPInstanceUID -> header of each scored view's file (no pixels); files gone or unreadable left out."""
    sources = {}
    for view in result.views:
        try:
            dataset = pydicom.dcmread(view["path"], stop_before_pixels=True)
        except (OSError, InvalidDicomError, ValueError):
            continue
        if dataset.get("SOPInstanceUID") == view["sop_instance_uid"]:  # the file still is that image
            sources[view["sop_instance_uid"]] = dataset
    return sources


def _read_previous(sr_dir: Path, entry: Mapping | None) -> Dataset | None:
    if entry is None:
        return None
    try:
        return pydicom.dcmread(sr_dir / entry["file"])
    except (OSError, InvalidDicomError):
        log.warning("the previous SR %s is gone: its successor references none", entry["file"])
        return None


def _names(manifest: Mapping[str, Any]) -> Iterator[str]:
    """Unused file names sr-00000001.dcm, sr-00000002.dcm ... (a counter, never a tag value)."""
    used = {entry["file"] for entry in manifest.values()}
    number = len(manifest)
    while True:
        number += 1
        if f"sr-{number:08d}.dcm" not in used:
            yield f"sr-{number:08d}.dcm"


def _save(dataset: Dataset, path: Path) -> None:
    temporary = path.with_name(temp_name(path))
    dataset.save_as(temporary, enforce_file_format=True)
    os.replace(temporary, path)


def _read_manifest(sr_dir: Path) -> dict[str, Any]:
    path = sr_dir / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _write_manifest(sr_dir: Path, manifest: Mapping[str, Any]) -> None:
    path = sr_dir / MANIFEST
    temporary = path.with_name(temp_name(path))
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)
    fsync_dir(sr_dir)


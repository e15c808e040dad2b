"""Group view records into studies and breasts.

A study is the files of one patient linked by a shared AccessionNumber or StudyInstanceUID (the
union of both links: a file with a blank AccessionNumber joins its exam through the UID), and
never spans two PatientIDs: a value shared by several patients is a conflict, split into one
study per patient and flagged (`Study.reason`). A study may be spread over folders and a folder
may hold several studies. `accession` or `study-uid` link by one identifier only; `folder`
groups by real parent folder instead (also split by patient), for exports laid out one study per
folder whose identifiers are not trustworthy (CBIS-DDSM gives every image its own UID).

Keys are deterministic: the smallest AccessionNumber of the study, else its smallest
StudyInstanceUID (or the real folder path), with `|patient:<hash>` appended for a conflict (a short
hash of the PatientID: keys reach reports and logs, patient identifiers must not).
Within a study each SOPInstanceUID is scored once; the other copies are skipped as `duplicate`.

Grouping works on a HeaderCatalog in bounded memory (`plan_studies`), and studies are formed one
at a time from a sequential pass over it (`StudyPlan.studies()`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.dicom.links import NO_STUDY, LinkTable, hash64
from mammo_batch.engine.dicom.policy import STUDY_REASONS, skip
from mammo_batch.engine.dicom.record import ViewRecord

log = logging.getLogger("mammo_batch.studies")

STUDY_KEYS = ("auto", "accession", "study-uid", "folder")
CONFLICT = "patient_conflict"


@dataclass
class Study:
    key: str
    views: list[ViewRecord] = field(default_factory=list)
    reason: str = ""  # a code from policy.STUDY_REASONS, e.g. "patient_conflict"; empty when none
    detail: str = ""

    def _first(self, attribute: str) -> str:
        return next((getattr(v, attribute) for v in self.views if getattr(v, attribute)), "")

    @property
    def patient_id(self) -> str:
        return self._first("patient_id")

    @property
    def accession_number(self) -> str:
        return self._first("accession_number")

    @property
    def study_instance_uid(self) -> str:
        return self._first("study_instance_uid")

    @property
    def study_date(self) -> str:
        return self._first("study_date")

    @property
    def scorable(self) -> list[ViewRecord]:
        return [v for v in self.views if v.scorable]

    def breasts(self) -> dict[str, list[ViewRecord]]:
        """Scorable views by laterality ("L", "R"), in file order."""
        out: dict[str, list[ViewRecord]] = {}
        for view in self.scorable:
            out.setdefault(view.laterality, []).append(view)
        return dict(sorted(out.items()))


class StudyPlan:
    """Which catalog rows form which study; studies are built on demand, one pass each."""

    def __init__(self, catalog: HeaderCatalog, mode: str, study: np.ndarray, conflicted: np.ndarray):
        self.catalog, self.mode = catalog, mode
        self._study, self._conflicted = study, conflicted
        ids = np.unique(study[study != NO_STUDY])
        self.n_studies = len(ids)
        self.n_conflicts = int(conflicted[ids].sum()) if len(ids) else 0
        self.n_orphans = int((study == NO_STUDY).sum())

    def __len__(self) -> int:
        return self.n_studies

    def studies(self) -> Iterator[Study]:
        """Every study, each yielded once its last file has been read (so a study split across
        folders is complete); memory holds only the studies still open in the pass."""
        valid = np.flatnonzero(self._study != NO_STUDY)
        last = np.full(len(self._study), -1, dtype=np.int32)
        np.maximum.at(last, self._study[valid], valid.astype(np.int32))
        del valid
        open_views: dict[int, list[ViewRecord]] = {}
        for row, record in enumerate(self.catalog):
            study_id = int(self._study[row])
            if study_id == NO_STUDY:
                continue
            open_views.setdefault(study_id, []).append(record)
            if last[study_id] == row:
                yield make_study(open_views.pop(study_id), self.mode, bool(self._conflicted[study_id]))

    def row_keys(self) -> pa.Array:
        """The study key of every catalog row, in catalog order ("" for a row of no study): the keys
        `studies()` gives, computed with Arrow group-bys instead of one Python object per file."""
        columns = ["path", "patient_id", "accession_number", "study_instance_uid"]
        rows = pa.Table.from_batches(list(self.catalog.batches(columns)), schema=_KEY_SCHEMA)
        rows = rows.append_column("sid", pa.array(self._study, pa.int32()))
        blank = pa.scalar(None, pa.string())
        for name in columns[1:]:
            rows = rows.set_column(rows.schema.get_field_index(name), name,
                                   pc.if_else(pc.equal(rows[name], ""), blank, rows[name]))
        per_study = rows.filter(pc.not_equal(rows["sid"], NO_STUDY)).group_by("sid", use_threads=False).aggregate(
            [(name, "min") for name in columns])
        keys = _base_keys(per_study, self.mode)
        conflicted = pa.array(self._conflicted[per_study["sid"].to_numpy()], pa.bool_()) if len(keys) else \
            pa.array([], pa.bool_())
        keys = [conflict_key(key, patient or "") if flag else key
                for key, patient, flag in zip(keys, per_study["patient_id_min"].to_pylist(),
                                              conflicted.to_pylist(), strict=True)]
        lookup = pa.table({"sid": per_study["sid"], "study_key": pa.array(keys, pa.string())})
        order = pa.array(np.arange(len(rows), dtype=np.int64))
        joined = rows.select(["sid"]).append_column("row", order).join(lookup, "sid", join_type="left outer")
        joined = joined.sort_by("row")
        return pc.fill_null(joined["study_key"], "").combine_chunks()

    def orphans(self) -> Iterator[ViewRecord]:
        """Files that belong to no study (no identifier for this mode)."""
        for row, record in enumerate(self.catalog):
            if self._study[row] == NO_STUDY:
                yield record


def plan_studies(catalog: HeaderCatalog, mode: str = "auto") -> StudyPlan:
    """Link the catalog's rows into studies (see the module docstring); logs conflicts, no values."""
    if mode not in STUDY_KEYS:
        raise ValueError(f"study key must be one of {STUDY_KEYS}, not {mode!r}")
    links = LinkTable(len(catalog), spill_dir=catalog.spill_dir)
    row = 0
    for batch in catalog.batches(["path", "patient_id", "accession_number", "study_instance_uid"]):
        columns = batch.to_pydict()
        a, b = _link_values(columns, mode)
        # The folder key is for exports whose identifiers are not trusted, PatientID included
        # (CBIS-DDSM writes the view into it): one folder, one study.
        patients = [""] * batch.num_rows if mode == "folder" else columns["patient_id"]
        links.add(row, hash64(patients) | np.uint64(1), hash64(a), hash64(b))
        row += batch.num_rows
    plan = StudyPlan(catalog, mode, *links.components())
    if plan.n_conflicts:
        log.warning("%d studies split by PatientID: %s", plan.n_conflicts, STUDY_REASONS[CONFLICT])
    return plan


def group_studies(records: Iterable[ViewRecord] | HeaderCatalog,
                  mode: str = "auto") -> tuple[list[Study], list[ViewRecord]]:
    """(studies, records that belong to no study), as lists: for callers that want them all."""
    catalog = records if isinstance(records, HeaderCatalog) else HeaderCatalog.from_records(records)
    plan = plan_studies(catalog, mode)
    return list(plan.studies()), list(plan.orphans())


def make_study(views: list[ViewRecord], mode: str, conflicted: bool) -> Study:
    """A study from its views (one patient): its key, and duplicates marked."""
    key = _base_key(views, mode)
    study = Study(key, views)
    if conflicted:
        study.key = conflict_key(key, views[0].patient_id)
        study.reason, study.detail = CONFLICT, STUDY_REASONS[CONFLICT]
    _mark_duplicates(views)
    return study


def conflict_key(key: str, patient_id: str) -> str:
    """The key of one patient's part of a study whose identifiers are shared by several patients."""
    return f"{key}|patient:{patient_hash(patient_id)}"


def patient_hash(patient_id: str) -> str:
    """A short, stable pseudonym of a PatientID (not anonymisation: IDs are few and guessable)."""
    return hashlib.sha256(f"mammo-batch patient:{patient_id}".encode()).hexdigest()[:10]


def _link_values(columns: dict[str, list[str]], mode: str) -> tuple[list[str], list[str]]:
    n = len(columns["path"])
    blank = [""] * n
    if mode == "folder":
        return [os.path.dirname(p) for p in columns["path"]], blank
    accession = columns["accession_number"] if mode in ("auto", "accession") else blank
    uid = columns["study_instance_uid"] if mode in ("auto", "study-uid") else blank
    return accession, uid


_KEY_SCHEMA = pa.schema([(name, pa.string()) for name in
                         ("path", "patient_id", "accession_number", "study_instance_uid")])


def _base_keys(per_study: pa.Table, mode: str) -> list[str]:
    """`_base_key` over a table of per-study minimums (path, accession, UID: blanks as nulls)."""
    if mode == "folder":
        return [os.path.dirname(path) for path in per_study["path_min"].to_pylist()]
    uid = per_study["study_instance_uid_min"]
    if mode == "study-uid":
        return pc.fill_null(uid, "").to_pylist()
    return pc.fill_null(pc.coalesce(per_study["accession_number_min"], uid), "").to_pylist()


def _base_key(views: list[ViewRecord], mode: str) -> str:
    if mode == "folder":
        return os.path.dirname(views[0].path)
    accessions = sorted({v.accession_number for v in views if v.accession_number})
    uids = sorted({v.study_instance_uid for v in views if v.study_instance_uid})
    if mode == "study-uid" or not accessions:
        return uids[0]
    return accessions[0]


def _mark_duplicates(views: list[ViewRecord]) -> None:
    """Scorable copies of one SOPInstanceUID: the first by path is scored, the others skipped."""
    kept: dict[str, ViewRecord] = {}
    for view in sorted(views, key=lambda v: v.path):
        if not view.scorable or not view.sop_instance_uid:
            continue
        first = kept.setdefault(view.sop_instance_uid, view)
        if first is not view:
            skip(view, "duplicate", f"the same image (SOPInstanceUID) as {first.path}")

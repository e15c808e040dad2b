"""Group view records into studies and breasts.

A study is keyed by AccessionNumber, else StudyInstanceUID (DESIGN.md); a study may be
spread over folders and a folder may hold several studies. `folder` groups by parent
folder instead, for exports laid out one study per folder whose identifiers are not
trustworthy (e.g. CBIS-DDSM gives every image its own StudyInstanceUID).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mammo_batch.engine.dicom.record import ViewRecord

STUDY_KEYS = ("auto", "accession", "study-uid", "folder")


@dataclass
class Study:
    key: str
    views: list[ViewRecord] = field(default_factory=list)

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


def study_key(record: ViewRecord, mode: str = "auto") -> str:
    """The study a record belongs to; "" when the file carries no usable identifier."""
    if mode == "folder":
        return str(Path(record.path).parent)
    if mode == "accession":
        return record.accession_number
    if mode == "study-uid":
        return record.study_instance_uid
    if mode == "auto":
        return record.accession_number or record.study_instance_uid
    raise ValueError(f"study key must be one of {STUDY_KEYS}, not {mode!r}")


def group_studies(records: Iterable[ViewRecord], mode: str = "auto") -> tuple[list[Study], list[ViewRecord]]:
    """(studies in first-seen order, records that belong to no study)."""
    studies: dict[str, Study] = {}
    orphans: list[ViewRecord] = []
    for record in records:
        key = study_key(record, mode)
        if not key:
            orphans.append(record)
            continue
        studies.setdefault(key, Study(key)).views.append(record)
    return list(studies.values()), orphans

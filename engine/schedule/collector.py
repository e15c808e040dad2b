"""Track every view of every study in flight; hand back a study once all its views are back."""

from __future__ import annotations

from dataclasses import dataclass, field

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.studies import Study


@dataclass
class ViewResult:
    record: ViewRecord
    member_probs: dict[str, float] = field(default_factory=dict)  # member name -> probability
    error: str = ""  # decode / preprocess failure, empty when fine

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass
class StudyResult:
    study: Study
    fingerprint: str
    views: list[ViewResult]  # the study's scorable views, scored or failed


@dataclass
class _Open:
    study: Study
    fingerprint: str
    view_ids: list[int]
    outstanding: int


class StudyCollector:
    """Views are identified by an int id handed out here; members report per view."""

    def __init__(self, member_names: list[str]) -> None:
        self.members = list(member_names)
        self._views: dict[int, ViewResult] = {}
        self._owner: dict[int, int] = {}
        self._open: dict[int, _Open] = {}
        self._next_view = 0
        self._next_study = 0
        self._done: list[StudyResult] = []

    def open_study(self, study: Study, fingerprint: str) -> list[tuple[int, ViewRecord]]:
        """Register a study; returns (view id, record) for each scorable view to prepare."""
        study_id, self._next_study = self._next_study, self._next_study + 1
        ids = []
        for record in study.scorable:
            view_id, self._next_view = self._next_view, self._next_view + 1
            self._views[view_id] = ViewResult(record)
            self._owner[view_id] = study_id
            ids.append(view_id)
        self._open[study_id] = _Open(study, fingerprint, ids, outstanding=len(ids))
        if not ids:
            self._close(study_id)
        return [(view_id, self._views[view_id].record) for view_id in ids]

    def fail_view(self, view_id: int, error: str) -> None:
        self._views[view_id].error = error
        self._view_done(view_id)

    def add_probability(self, view_id: int, member: str, probability: float) -> None:
        result = self._views[view_id]
        result.member_probs[member] = probability
        if len(result.member_probs) == len(self.members):
            self._view_done(view_id)

    def take_completed(self) -> list[StudyResult]:
        done, self._done = self._done, []
        return done

    @property
    def open_studies(self) -> int:
        return len(self._open)

    def _view_done(self, view_id: int) -> None:
        study_id = self._owner[view_id]
        self._open[study_id].outstanding -= 1
        if self._open[study_id].outstanding == 0:
            self._close(study_id)

    def _close(self, study_id: int) -> None:
        entry = self._open.pop(study_id)
        views = [self._views.pop(v) for v in entry.view_ids]
        for view_id in entry.view_ids:
            del self._owner[view_id]
        self._done.append(StudyResult(entry.study, entry.fingerprint, views))

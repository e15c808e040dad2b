"""Track every view of every study in flight; hand back a study once all its views are back.

Views are identified by an int view id handed out here, and a result names its record by its
position in `study.views`: both survive a trip through another process (object ids do not).
"""

from __future__ import annotations

from dataclasses import dataclass

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.results.outcome import StudyResult, ViewResult
from mammo_batch.engine.studies import Study


@dataclass
class _Open:
    study: Study
    view_ids: dict[int, int]  # view id -> position in study.views
    outstanding: int


class StudyCollector:
    def __init__(self, member_names: list[str]) -> None:
        self.members = list(member_names)
        self._views: dict[int, ViewResult] = {}
        self._owner: dict[int, int] = {}
        self._open: dict[int, _Open] = {}
        self._next_view = 0
        self._next_study = 0
        self._done: list[StudyResult] = []

    def open_study(self, study: Study) -> list[tuple[int, ViewRecord]]:
        """Register a study; returns (view id, record) for each scorable view to prepare."""
        study_id, self._next_study = self._next_study, self._next_study + 1
        ids: dict[int, int] = {}
        for position, record in enumerate(study.views):
            if not record.scorable:
                continue
            view_id, self._next_view = self._next_view, self._next_view + 1
            self._views[view_id] = ViewResult(record)
            self._owner[view_id] = study_id
            ids[view_id] = position
        self._open[study_id] = _Open(study, ids, outstanding=len(ids))
        if not ids:
            self._close(study_id)
        return [(view_id, self._views[view_id].record) for view_id in ids]

    def fail_view(self, view_id: int, reason: str, error: str, seconds: float = 0.0) -> None:
        result = self._views[view_id]
        result.reason, result.error, result.seconds = reason, error, seconds
        self._view_done(view_id)

    def prepared(self, view_id: int, seconds: float) -> None:
        self._views[view_id].seconds = seconds

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
        views = {position: self._views.pop(view_id) for view_id, position in entry.view_ids.items()}
        for view_id in entry.view_ids:
            del self._owner[view_id]
        self._done.append(StudyResult(entry.study, views))

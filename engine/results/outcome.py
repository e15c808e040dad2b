"""What scoring produced for a study: its views' results, before they become table rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.studies import Study


@dataclass
class ViewResult:
    record: ViewRecord
    member_probs: dict[str, float] = field(default_factory=dict)  # member name -> probability
    reason: str = ""  # why it failed (a preparer REASON_* code), empty when fine
    error: str = ""  # the failure in words, never PHI
    seconds: float = 0.0  # decode + pixel path

    @property
    def failed(self) -> bool:
        return bool(self.reason)


@dataclass
class StudyResult:
    study: Study
    views: dict[int, ViewResult]  # position in study.views -> result, for each scorable view

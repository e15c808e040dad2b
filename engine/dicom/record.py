"""The view record: what discovery knows about one file, and why it is or is not scored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

# View status: "ok" passes the view policy and will be scored; "skipped" is a valid
# file the policy excludes (for processing, DBT, ...); "failed" could not be read.
STATUS_OK = "ok"
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"


@dataclass
class ViewRecord:
    """One file seen by discovery. Identifiers are empty strings when absent."""

    path: str
    status: str = STATUS_OK
    reason: str = ""  # a code from policy.REASONS; empty when ok, unless a warning is noted
    detail: str = ""  # a human-readable explanation, never PHI
    sop_instance_uid: str = ""
    patient_id: str = ""
    accession_number: str = ""
    study_instance_uid: str = ""
    study_date: str = ""
    modality: str = ""
    sop_class_uid: str = ""
    laterality: str = ""  # "L" | "R" | "" (unknown)
    view: str = ""  # "CC", "MLO", ... | "" (unknown)
    manufacturer: str = ""
    transfer_syntax: str = ""
    photometric: str = ""
    bits_stored: int = 0
    rows: int = 0
    columns: int = 0
    n_frames: int = 1
    presentation_intent: str = ""
    patient_orientation: list[str] = field(default_factory=list)
    fov_horizontal_flip: str = ""
    size: int = 0  # bytes, from the one stat taken when the header is read (the file's fingerprint)
    mtime_ns: int = 0

    @property
    def scorable(self) -> bool:
        return self.status == STATUS_OK

    def reject(self, status: str, reason: str, detail: str = "") -> ViewRecord:
        if self.scorable and self.reason:  # a noted warning stays in the detail
            detail = f"{detail}; {self.detail}"
        self.status, self.reason, self.detail = status, reason, detail
        return self

    def note(self, reason: str, detail: str) -> ViewRecord:
        """A reason that does not stop scoring (e.g. malformed but harmless header values)."""
        if not self.reason:
            self.reason, self.detail = reason, detail
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

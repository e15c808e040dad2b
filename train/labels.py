"""Study labels (the seed's train.csv) and the per-view training label derived from them.

The CSV is `AccessionNumber,PatientID,Laterality,target` (extra columns are ignored).
AccessionNumber stays a string: the SPR accessions are zero-padded ("000123") and must
match the DICOM tag exactly, so nothing here ever parses it as a number.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

REQUIRED_COLUMNS = ("AccessionNumber", "PatientID", "Laterality", "target")
LATERALITIES = ("N", "L", "R", "B")
BREASTS = ("L", "R")


class LabelsError(ValueError):
    """The labels CSV is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class StudyLabel:
    accession_number: str
    patient_id: str
    laterality: str  # N (no finding), L, R or B (both): where the recall finding is
    target: int  # 1 = recalled


def read_labels(csv_path: str | os.PathLike) -> dict[str, StudyLabel]:
    """AccessionNumber -> StudyLabel, in file order. Raises LabelsError on any bad row."""
    labels: dict[str, StudyLabel] = {}
    # utf-8-sig: spreadsheets often prepend a BOM, which would corrupt the first column name.
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        _check_columns(csv_path, reader.fieldnames)
        for row in reader:
            label = _parse_row(row, f"{csv_path}, line {reader.line_num}")
            if label.accession_number in labels:
                raise LabelsError(f"{csv_path}, line {reader.line_num}: "
                                  f"duplicate AccessionNumber {label.accession_number!r}")
            labels[label.accession_number] = label
    return labels


def image_label(study_label: StudyLabel, laterality: str) -> int:
    """The seed's rule: N -> 0, B -> 1, L/R -> 1 only for that breast's views."""
    if laterality not in BREASTS:
        raise ValueError(f"view laterality must be 'L' or 'R', not {laterality!r}")
    if study_label.laterality == "B":
        return 1
    return int(study_label.laterality == laterality)


def _check_columns(csv_path: str | os.PathLike, fieldnames: list[str] | None) -> None:
    if fieldnames is None:
        raise LabelsError(f"{csv_path}: empty file, expected a header {','.join(REQUIRED_COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
    if missing:
        raise LabelsError(f"{csv_path}: missing column(s) {', '.join(missing)}; "
                          f"header is {','.join(fieldnames)}")


def _parse_row(row: dict[str, str | None], where: str) -> StudyLabel:
    # Surrounding whitespace is trimmed (a stray space would break the match with the tag);
    # everything else, leading zeros included, is kept as written.
    values = {c: (row.get(c) or "").strip() for c in REQUIRED_COLUMNS}
    for column in ("AccessionNumber", "PatientID"):
        if not values[column]:
            raise LabelsError(f"{where}: empty {column}")
    laterality, target = values["Laterality"], values["target"]
    if laterality not in LATERALITIES:
        raise LabelsError(f"{where}: Laterality must be one of {'/'.join(LATERALITIES)}, not {laterality!r}")
    if target not in ("0", "1"):
        raise LabelsError(f"{where}: target must be 0 or 1, not {target!r}")
    if (laterality == "N") != (target == "0"):
        raise LabelsError(f"{where}: Laterality {laterality} contradicts target {target} "
                          "(N means target 0; L, R and B mean target 1)")
    return StudyLabel(values["AccessionNumber"], values["PatientID"], laterality, int(target))

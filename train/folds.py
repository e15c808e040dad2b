"""Patient-level stratified folds, and their CSV `AccessionNumber,PatientID,target,fold`.

Grouping by patient keeps a woman's two screening rounds in the same fold (otherwise the
validation AUC is inflated by near-duplicate anatomy); stratifying on the study target
keeps every fold's recall rate close to the overall one.
"""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mammo_batch.train.labels import StudyLabel

FOLD_COLUMNS = ("AccessionNumber", "PatientID", "target", "fold")
DEFAULT_K = 4
DEFAULT_SEED = 67  # the seed's random_state


def make_folds(labels: dict[str, StudyLabel], k: int = DEFAULT_K, seed: int = DEFAULT_SEED) -> dict[str, int]:
    """AccessionNumber -> fold in 0..k-1, deterministic for (labels, k, seed)."""
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    # Sorted, so the folds do not depend on the row order of the labels file.
    accessions = sorted(labels)
    patients = [labels[a].patient_id for a in accessions]
    n_patients = len(set(patients))
    if n_patients < k:
        raise ValueError(f"cannot make {k} patient-grouped folds from {n_patients} patient(s) "
                         f"({len(accessions)} studies): need at least {k} patients")
    targets = np.array([labels[a].target for a in accessions])
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds: dict[str, int] = {}
    for fold, (_, val) in enumerate(splitter.split(np.zeros(len(accessions)), targets, patients)):
        folds.update((accessions[i], fold) for i in val)
    return {a: folds[a] for a in labels}


def write_folds(path: str | os.PathLike, labels: dict[str, StudyLabel], folds: dict[str, int]) -> None:
    """Write the folds CSV atomically (temp file + rename), one row per labelled study."""
    missing = [a for a in labels if a not in folds]
    if missing:
        raise ValueError(f"{len(missing)} labelled studies have no fold, e.g. {missing[0]!r}")
    path = Path(path)
    # A unique name opened with "x" (not mkstemp): the file gets the umask's usual permissions.
    temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "x", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(FOLD_COLUMNS)
            for accession, label in labels.items():
                writer.writerow([accession, label.patient_id, label.target, folds[accession]])
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_folds(path: str | os.PathLike) -> dict[str, int]:
    """AccessionNumber (kept as a string) -> fold, from a CSV written by `write_folds`."""
    folds: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("AccessionNumber", "fold") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for row in reader:
            accession, fold = (row["AccessionNumber"] or "").strip(), (row["fold"] or "").strip()
            if not accession or not fold.isdigit():
                raise ValueError(f"{path}, line {reader.line_num}: need an AccessionNumber and a "
                                 f"non-negative integer fold, got {accession!r}, {fold!r}")
            if accession in folds:
                raise ValueError(f"{path}, line {reader.line_num}: duplicate AccessionNumber {accession!r}")
            folds[accession] = int(fold)
    return folds

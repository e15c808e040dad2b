"""Render a study plan to disk: DICOM files in a folder layout, labels.csv, manifest.csv.

Layouts (paths relative to the output folder):
    accession   <AccessionNumber>/<SOPInstanceUID>.dcm        (the SPR competition's)
    nested      <PatientID>/STUDY<n>/SERIES<s>/IM<k>          (no extension; a study spans
                                                               folders, a patient folder
                                                               can hold two studies)
    mixed       each study one way or the other (both appear from two studies on)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pydicom import FileDataset

from mammo_batch.synth.dicom_writer import make_view_dataset, write_dataset
from mammo_batch.synth.lesions import Lesion, draw_lesion
from mammo_batch.synth.phantom import BreastParams, phantom_view
from mammo_batch.synth.plan import (
    LESIONS,
    PATIENT,
    VIEW,
    StudyPlan,
    ViewPlan,
    plan_studies,
    stream,
)
from mammo_batch.synth.variants import get_variant
from mammo_batch.synth.views import LEFT, RIGHT, conventional_chest_wall_side

DEFAULT_SIZE = (3328, 2560)  # a real full-field detector, rows x columns
LABEL_COLUMNS = ("AccessionNumber", "PatientID", "Laterality", "target")
MANIFEST_COLUMNS = (
    "path",
    "accession_number",
    "patient_id",
    "study_instance_uid",
    "sop_instance_uid",
    "laterality",
    "view",
    "variant",
    "transfer_syntax_uid",
    "photometric",
    "chest_wall_side",
    "lesion",
    "series_instance_uid",
    "study_date",
    "bits_stored",
    "rows",
    "columns",
    "lesion_kind",
)


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    labels_csv: Path
    manifest_csv: Path
    n_studies: int
    n_patients: int
    n_files: int
    n_positive: int


@dataclass(frozen=True)
class _Job:
    """Everything one worker needs to render one study."""

    out_dir: Path
    seed: int
    size: tuple[int, int]
    difficulty: float
    study: StudyPlan


def write_studies(
    out_dir: Path,
    n_studies: int,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    difficulty: float = 0.3,
    positive_rate: float = 0.3,
    layout: str = "mixed",
    variants: Sequence[str] | None = None,
    workers: int = 1,
) -> SynthSummary:
    """Write ``n_studies`` synthetic screening studies under ``out_dir``, plus
    ``labels.csv`` (SPR train.csv format) and ``manifest.csv`` (one row per file).

    Same arguments -> byte-identical files, whatever ``workers`` (processes) is.
    Existing files with the same names are overwritten; others are left alone.
    """
    if len(size) != 2 or min(size) < 64:
        raise ValueError(f"size must be (rows, columns), each at least 64, got {size}")
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must be in [0, 1], got {difficulty}")
    plans = plan_studies(n_studies, seed, positive_rate, layout, variants)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [_Job(out_dir, seed, (int(size[0]), int(size[1])), difficulty, p) for p in plans]
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            per_study = list(pool.map(_render_study, jobs))
    else:
        per_study = [_render_study(job) for job in jobs]
    manifest = [row for rows in per_study for row in rows]
    labels = [_label_row(p) for p in plans]
    labels_csv, manifest_csv = out_dir / "labels.csv", out_dir / "manifest.csv"
    _write_csv(labels_csv, LABEL_COLUMNS, labels)
    _write_csv(manifest_csv, MANIFEST_COLUMNS, manifest)
    return SynthSummary(
        out_dir=out_dir,
        labels_csv=labels_csv,
        manifest_csv=manifest_csv,
        n_studies=len(plans),
        n_patients=len({p.patient_id for p in plans}),
        n_files=len(manifest),
        n_positive=sum(1 for p in plans if p.lesion_lateralities),
    )


def _render_study(job: _Job) -> list[dict[str, str]]:
    """Render and write every view of one study; return its manifest rows."""
    study, seed = job.study, job.seed
    breasts = _breasts(seed, study.patient_index)
    lesions = _lesions(seed, study, job.difficulty)
    rows = []
    for view in study.views:
        side = chest_wall_side(study.variant, view.laterality)
        image = phantom_view(
            stream(seed, VIEW, study.index, view.index),
            job.size,
            view.laterality,
            view.view,
            lesions.get(view.laterality, ()),
            breast=breasts[view.laterality],
            bits_stored=study.bits_stored,
            mirror_marker=side == RIGHT,
        )
        ds = make_view_dataset(
            image,
            study.variant,
            view.laterality,
            view.view,
            side,
            bits_stored=study.bits_stored,
            **_ids(study, view),
        )
        relative = relative_path(study, view)
        path = job.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write_dataset(ds, path)
        rows.append(_manifest_row(relative, study, view, side, ds, lesions))
    return rows


def chest_wall_side(variant: str, laterality: str) -> str:
    """Where the chest wall goes in the stored pixels for this variant and breast."""
    side = conventional_chest_wall_side(laterality)
    if get_variant(variant).flipped:
        side = LEFT if side == RIGHT else RIGHT
    return side


def relative_path(study: StudyPlan, view: ViewPlan) -> str:
    """The file's path under the output folder, POSIX style (see the module docstring)."""
    if study.layout == "accession":
        return f"{study.accession_number}/{view.sop_instance_uid}.dcm"
    return f"{study.patient_id}/STUDY{study.study_number}/SERIES{view.series_number}/IM{view.instance_number}"


def _breasts(seed: int, patient_index: int) -> dict[str, BreastParams]:
    """The patient's two breasts: similar size, density differing a little."""
    rng = stream(seed, PATIENT, patient_index)
    right = BreastParams.draw(rng)
    left = BreastParams(
        depth=right.depth * float(rng.uniform(0.95, 1.05)),
        half_height=right.half_height * float(rng.uniform(0.95, 1.05)),
        density=min(1.0, max(0.0, right.density + float(rng.uniform(-0.08, 0.08)))),
    )
    return {"R": right, "L": left}


def _lesions(seed: int, study: StudyPlan, difficulty: float) -> dict[str, tuple[Lesion, ...]]:
    """Both breasts' lesions are always drawn (stable streams); only the planned ones kept."""
    rng = stream(seed, LESIONS, study.index)
    drawn = {lat: draw_lesion(rng, difficulty) for lat in ("R", "L")}
    return {lat: (drawn[lat],) for lat in study.lesion_lateralities}


def _ids(study: StudyPlan, view: ViewPlan) -> dict[str, object]:
    return {
        "patient_id": study.patient_id,
        "patient_birth_date": study.patient_birth_date,
        "accession_number": study.accession_number,
        "study_instance_uid": study.study_instance_uid,
        "series_instance_uid": view.series_instance_uid,
        "sop_instance_uid": view.sop_instance_uid,
        "study_date": study.study_date,
        "study_time": study.study_time,
        "study_id": str(study.study_number),
        "series_number": view.series_number,
        "instance_number": view.instance_number,
    }


def _manifest_row(
    relative: str,
    study: StudyPlan,
    view: ViewPlan,
    side: str,
    ds: FileDataset,
    lesions: dict[str, tuple[Lesion, ...]],
) -> dict[str, str]:
    found = lesions.get(view.laterality, ())
    return {
        "path": relative,
        "accession_number": study.accession_number,
        "patient_id": study.patient_id,
        "study_instance_uid": study.study_instance_uid,
        "sop_instance_uid": view.sop_instance_uid,
        "laterality": view.laterality,
        "view": view.view,
        "variant": study.variant,
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "photometric": str(ds.PhotometricInterpretation),
        "chest_wall_side": side,
        "lesion": "yes" if found else "no",
        "series_instance_uid": view.series_instance_uid,
        "study_date": study.study_date,
        "bits_stored": str(ds.BitsStored),
        "rows": str(ds.Rows),
        "columns": str(ds.Columns),
        "lesion_kind": found[0].kind if found else "",
    }


def _label_row(study: StudyPlan) -> dict[str, str]:
    return {
        "AccessionNumber": study.accession_number,
        "PatientID": study.patient_id,
        "Laterality": study.label,
        "target": "1" if study.lesion_lateralities else "0",
    }


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)

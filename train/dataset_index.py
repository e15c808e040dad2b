"""The training index: one item per scorable view of a labelled study, with its image label.

Discovery, the view policy and study grouping are the engine's own (`discover`,
`group_studies`), so training sees exactly the views `score` would score. Mismatches
between the images and the labels are counted and logged, never dropped silently.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mammo_batch.engine.dicom.discover import discover
from mammo_batch.engine.studies import Study, group_studies
from mammo_batch.train.labels import StudyLabel, image_label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewItem:
    path: str
    study_key: str
    accession_number: str  # the labels' AccessionNumber this view was matched to
    patient_id: str  # the labels' PatientID (what the folds are grouped by)
    laterality: str  # L | R
    view: str  # CC, MLO, ...
    label: int  # image label (seed rule, `image_label`)
    target: int  # study target


@dataclass(frozen=True)
class IndexSummary:
    n_labelled: int  # studies in the labels
    n_image_studies: int  # studies found under images_dir
    n_matched: int  # labelled studies with at least one scorable view
    labelled_without_images: tuple[str, ...]  # accession numbers
    images_without_label: tuple[str, ...]  # engine study keys
    n_views: int  # scorable views indexed
    n_views_not_scorable: int  # views of matched studies the policy skipped or failed
    not_scorable_reasons: dict[str, int]
    n_files_without_study: int  # candidate files with no study key (non-DICOM files included)
    n_patient_mismatches: int  # matched studies whose DICOM PatientID differs from the labels'


class ViewIndex(list[ViewItem]):
    """A list of ViewItems that also carries the `summary` of how it was built."""

    summary: IndexSummary


def build_index(
    images_dir: str | os.PathLike,
    labels: dict[str, StudyLabel],
    study_key: str = "auto",
    workers: int = 0,
) -> ViewIndex:
    """Every scorable view of every labelled study under `images_dir`, sorted by (study, path).

    A study matches the label whose AccessionNumber equals its engine study key (with
    study_key="folder", the folder's name: the seed's `<AccessionNumber>/<SOP>.dcm` layout).
    """
    records = discover([images_dir], workers=workers)
    studies, orphans = group_studies(records, study_key)
    items: list[ViewItem] = []
    unlabelled: list[str] = []
    not_scorable: Counter[str] = Counter()
    mismatches = 0
    for study in studies:
        label = labels.get(_label_key(study, study_key))
        if label is None:
            unlabelled.append(study.key)
            continue
        items.extend(_items(study, label))
        not_scorable.update(v.reason for v in study.views if not v.scorable)
        mismatches += bool(study.patient_id) and study.patient_id != label.patient_id
    index = ViewIndex(sorted(items, key=lambda i: (i.study_key, i.path)))
    matched = {i.accession_number for i in index}  # a study whose views were all skipped has no images
    index.summary = IndexSummary(
        n_labelled=len(labels),
        n_image_studies=len(studies),
        n_matched=len(matched),
        labelled_without_images=tuple(a for a in labels if a not in matched),
        images_without_label=tuple(unlabelled),
        n_views=len(index),
        n_views_not_scorable=sum(not_scorable.values()),
        not_scorable_reasons=dict(not_scorable),
        n_files_without_study=len(orphans),
        n_patient_mismatches=mismatches,
    )
    _log_summary(index.summary)
    return index


def _label_key(study: Study, mode: str) -> str:
    return Path(study.key).name if mode == "folder" else study.key


def _items(study: Study, label: StudyLabel) -> list[ViewItem]:
    return [
        ViewItem(
            path=view.path,
            study_key=study.key,
            accession_number=label.accession_number,
            patient_id=label.patient_id,
            laterality=view.laterality,
            view=view.view,
            label=image_label(label, view.laterality),
            target=label.target,
        )
        for view in study.scorable
    ]


def _log_summary(s: IndexSummary) -> None:
    # Counts only: identifiers stay out of logs (DESIGN.md, Safety); they are in the summary.
    log.info("training index: %d views from %d of %d labelled studies (%d image studies found)",
             s.n_views, s.n_matched, s.n_labelled, s.n_image_studies)
    if s.labelled_without_images:
        log.warning("%d labelled studies have no scorable images", len(s.labelled_without_images))
    if s.images_without_label:
        log.warning("%d image studies have no label and are not used", len(s.images_without_label))
    if s.n_views_not_scorable:
        log.warning("%d views of labelled studies are not scorable: %s",
                    s.n_views_not_scorable, s.not_scorable_reasons)
    if s.n_patient_mismatches:
        log.warning("%d studies carry a PatientID that differs from the labels' (labels win)",
                    s.n_patient_mismatches)

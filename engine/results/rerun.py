"""Rerun rules: which studies a run scores, which it keeps, and what it re-derives.

- scored again: new studies, changed files (fingerprint), another bundle, another `config` (view
  filter, study key), failed or partial studies, studies whose view rows the store lacks, and
  everything with `rescore`;
- kept: the rest, whose rows are re-derived at the end from their stored view probabilities with
  this run's aggregation rules and threshold (no model run): the rows always match the metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from mammo_batch.engine.results.fingerprint import study_fingerprint
from mammo_batch.engine.results.schema import STUDY_FAILED, STUDY_PARTIAL
from mammo_batch.engine.results.store import PreviousStudy
from mammo_batch.engine.studies import Study

RETRIED_STATUSES = frozenset({STUDY_FAILED, STUDY_PARTIAL})  # rescored on every run


class Job(NamedTuple):
    study: Study
    fingerprint: str


def scoring_config(study_key: str, view_filter: Iterable[str] | None) -> str:
    """What besides the bundle decides a study's views; a change rescores the study."""
    views = ",".join(sorted(view_filter)) if view_filter else "*"
    return f"study_key={study_key};view_filter={views}"


def plan_reruns(studies: Iterable[Study], previous: dict[str, PreviousStudy], bundle_id: str, config: str,
                rescore: bool = False) -> tuple[list[Job], list[str]]:
    """(jobs to score, keys of studies kept as they are)."""
    jobs, kept = [], []
    for study in studies:
        fingerprint = study_fingerprint(v.path for v in study.views)
        before = previous.get(study.key)
        if not rescore and before is not None and _unchanged(before, fingerprint, bundle_id, config):
            kept.append(study.key)
        else:
            jobs.append(Job(study, fingerprint))
    return jobs, kept


def _unchanged(before: PreviousStudy, fingerprint: str, bundle_id: str, config: str) -> bool:
    return (before.fingerprint == fingerprint and before.bundle_id == bundle_id and before.config == config
            and before.has_views and before.status not in RETRIED_STATUSES)

"""Results of a scoring run: aggregation, output schemas, journal and final Parquet files, lock.

schema.py       the explicit Arrow schemas of scores.parquet and views.parquet, column names
aggregate.py    view probs -> breast and study scores, recall (Arrow compute, no row loops)
fingerprint.py  a stat-only fingerprint of a study's files (skip unchanged studies on a rerun)
lock.py         one writer per output: flock on `<out>.lock`
files.py        atomic Parquet writes, reads checked against the schemas
store.py        ResultStore: journal parts while running, final files at the end, resume
"""

from mammo_batch.engine.results.aggregate import (
    BREAST_AGGS,
    STUDY_AGGS,
    aggregate_studies,
    ensemble_mean,
    recall,
)
from mammo_batch.engine.results.files import ResultsFileError, read_run_metadata, read_scores, read_views
from mammo_batch.engine.results.fingerprint import study_fingerprint
from mammo_batch.engine.results.lock import OutputLock, OutputLocked
from mammo_batch.engine.results.schema import SCORES_SCHEMA, views_schema
from mammo_batch.engine.results.store import PreviousStudy, ResultStore

__all__ = [
    "BREAST_AGGS",
    "SCORES_SCHEMA",
    "STUDY_AGGS",
    "OutputLock",
    "OutputLocked",
    "PreviousStudy",
    "ResultStore",
    "ResultsFileError",
    "aggregate_studies",
    "ensemble_mean",
    "read_run_metadata",
    "read_scores",
    "read_views",
    "recall",
    "study_fingerprint",
    "views_schema",
]

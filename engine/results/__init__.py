"""Results of a scoring run: the nightly file-row state, derived views and studies, Parquet files, lock.

schema.py       the explicit Arrow schemas of scores.parquet and views.parquet, column names
aggregate.py    view probs -> breast and study scores, recall (Arrow compute, no row loops)
state.py        one row per file: reconciliation of tonight's catalog with the stored rows
night.py        plan a night (files to score, the bundle rule) and close it (new state, outputs)
derive.py       file rows -> views.parquet and scores.parquet (duplicates, each bundle's rules)
tables.py       scored studies -> file rows; Rules
lock.py         one writer per output: flock on `<out>.lock`
files.py        atomic Parquet writes, reads checked against the schemas
store.py        ResultStore: the state file, journal parts while running, outputs at the end, resume
"""

from mammo_batch.engine.results.aggregate import (
    BREAST_AGGS,
    STUDY_AGGS,
    aggregate_studies,
    ensemble_mean,
    recall,
)
from mammo_batch.engine.results.files import ResultsFileError, read_run_metadata, read_scores, read_views
from mammo_batch.engine.results.lock import OutputLock, OutputLocked
from mammo_batch.engine.results.schema import SCORES_SCHEMA, views_schema
from mammo_batch.engine.results.store import ResultStore

__all__ = [
    "BREAST_AGGS",
    "SCORES_SCHEMA",
    "STUDY_AGGS",
    "OutputLock",
    "OutputLocked",
    "ResultStore",
    "ResultsFileError",
    "aggregate_studies",
    "ensemble_mean",
    "read_run_metadata",
    "read_scores",
    "read_views",
    "recall",
    "views_schema",
]

"""The explicit Arrow schemas of scores.parquet and views.parquet (docs/scoring.md, "Outputs").

Column names are constants here so that the rest of the engine never spells them twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

# Key of the run metadata (a JSON document) in the Parquet key-value metadata.
METADATA_KEY = "mammo_batch"

# Columns shared by both files.
STUDY_KEY = "study_key"
PATIENT_ID = "patient_id"
ACCESSION_NUMBER = "accession_number"
STUDY_INSTANCE_UID = "study_instance_uid"
STATUS = "status"

# scores.parquet
STUDY_DATE = "study_date"
SCORE = "score"
RECALL = "recall"
LEFT_SCORE = "left_score"
RIGHT_SCORE = "right_score"
N_VIEWS = "n_views"
N_VIEWS_SKIPPED = "n_views_skipped"
ERROR = "error"
BUNDLE_ID = "bundle_id"
ENGINE_VERSION = "engine_version"
SCORED_AT = "scored_at"
FINGERPRINT = "fingerprint"
CONFIG = "config"  # what decides a study's views and probabilities besides the bundle (rerun rules)
LAST_SEEN = "last_seen"  # when a run last found the study's files
THRESHOLD = "threshold"  # the threshold `recall` was decided with (the row's own bundle's)

# views.parquet
PATH = "path"
SOP_INSTANCE_UID = "sop_instance_uid"
LATERALITY = "laterality"
VIEW = "view"
REASON = "reason"
DETAIL = "detail"
PROB = "prob"
MANUFACTURER = "manufacturer"
PREPARE_S = "prepare_s"  # seconds to decode and prepare the view
MEMBER_PROB_PREFIX = "prob_"

# Study status (scores.parquet); views use ok | skipped | failed.
STUDY_OK = "ok"
STUDY_PARTIAL = "partial"
STUDY_FAILED = "failed"
STUDY_SKIPPED = "skipped"
STUDY_STATUSES = (STUDY_OK, STUDY_PARTIAL, STUDY_FAILED, STUDY_SKIPPED)
VIEW_STATUSES = ("ok", "skipped", "failed")  # the values of dicom.record's STATUS_* constants

SCORES_SCHEMA = pa.schema(
    [
        pa.field(STUDY_KEY, pa.string()),
        pa.field(PATIENT_ID, pa.string()),
        pa.field(ACCESSION_NUMBER, pa.string()),
        pa.field(STUDY_INSTANCE_UID, pa.string()),
        pa.field(STUDY_DATE, pa.string()),
        pa.field(SCORE, pa.float64()),  # null unless ok/partial
        pa.field(RECALL, pa.bool_()),  # null unless ok/partial
        pa.field(LEFT_SCORE, pa.float64()),  # null when that breast has no scored view
        pa.field(RIGHT_SCORE, pa.float64()),
        pa.field(N_VIEWS, pa.int32()),  # scored views
        pa.field(N_VIEWS_SKIPPED, pa.int32()),  # skipped or failed files of the study
        pa.field(STATUS, pa.string()),
        pa.field(ERROR, pa.string()),
        pa.field(BUNDLE_ID, pa.string()),
        pa.field(ENGINE_VERSION, pa.string()),
        pa.field(SCORED_AT, pa.timestamp("ms", tz="UTC")),
        pa.field(FINGERPRINT, pa.string()),
        pa.field(CONFIG, pa.string()),
        pa.field(LAST_SEEN, pa.timestamp("ms", tz="UTC")),
        pa.field(THRESHOLD, pa.float64()),
    ]
)
# Columns added after the first release: files written before them read these as nulls.
ADDED_COLUMNS = frozenset({CONFIG, LAST_SEEN, MANUFACTURER, PREPARE_S, THRESHOLD, BUNDLE_ID})

# views.parquet columns before the per-member probabilities.
VIEWS_FIXED_FIELDS = (
    pa.field(PATH, pa.string()),
    pa.field(STUDY_KEY, pa.string()),
    pa.field(SOP_INSTANCE_UID, pa.string()),
    pa.field(PATIENT_ID, pa.string()),
    pa.field(ACCESSION_NUMBER, pa.string()),
    pa.field(STUDY_INSTANCE_UID, pa.string()),
    pa.field(LATERALITY, pa.string()),
    pa.field(VIEW, pa.string()),
    pa.field(MANUFACTURER, pa.string()),
    pa.field(STATUS, pa.string()),
    pa.field(REASON, pa.string()),
    pa.field(DETAIL, pa.string()),
    pa.field(PREPARE_S, pa.float32()),
    pa.field(BUNDLE_ID, pa.string()),  # the bundle whose members made this row's probabilities
)


def member_prob_column(member_name: str) -> str:
    """The views.parquet column holding one ensemble member's probability."""
    return MEMBER_PROB_PREFIX + member_name


def member_columns(schema: pa.Schema) -> list[str]:
    """The `prob_<member>` columns of a views or files schema, in order."""
    return [name for name in schema.names if name.startswith(MEMBER_PROB_PREFIX)]


def views_schema(member_names: Sequence[str]) -> pa.Schema:
    """The views.parquet schema for a bundle: fixed columns, `prob_<member>` per member, `prob`."""
    if isinstance(member_names, str):  # a lone name would be split into letters
        raise TypeError("member_names must be a sequence of names, not a string")
    if not member_names:
        raise ValueError("views_schema needs at least one member name")
    if len(set(member_names)) != len(member_names):
        raise ValueError(f"member names are not unique: {list(member_names)}")
    members = [pa.field(member_prob_column(name), pa.float32()) for name in member_names]
    return pa.schema([*VIEWS_FIXED_FIELDS, *members, pa.field(PROB, pa.float32())])

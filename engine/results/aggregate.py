"""From view probabilities to study scores (docs/scoring.md, "Aggregation").

view prob = mean over the ensemble members; breast = mean (or max) over its views; study = max (or mean)
over its breasts, or `max-image`: the max over all the study's views, ignoring breasts (what the seed
submitted). Everything is Arrow compute and group_by: no Python loop over rows or studies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.results.schema import (
    LATERALITY,
    LEFT_SCORE,
    PROB,
    RIGHT_SCORE,
    SCORE,
    STUDY_KEY,
)

BREAST_AGGS = ("mean", "max")
STUDY_AGGS = ("max", "mean", "max-image")
N_VIEWS_SCORED = "n_views_scored"

AGGREGATE_SCHEMA = pa.schema(
    [
        pa.field(STUDY_KEY, pa.string()),
        pa.field(LEFT_SCORE, pa.float64()),
        pa.field(RIGHT_SCORE, pa.float64()),
        pa.field(SCORE, pa.float64()),
        pa.field(N_VIEWS_SCORED, pa.int32()),
    ]
)

ArrayLike = pa.Array | pa.ChunkedArray


def check_option(name: str, value: str, choices: tuple[str, ...]) -> str:
    """Raise a ValueError naming the choices when `value` is not one of them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}: choose one of {', '.join(choices)}")
    return value


def aggregate_studies(views: pa.Table, breast: str = "mean", study: str = "max") -> pa.Table:
    """One row per study_key: left_score, right_score, score, n_views_scored (sorted by study_key).

    `views` holds scored views with at least study_key, laterality ("L"/"R") and prob. A null or NaN
    prob is not a score: it counts nowhere. A view of another laterality belongs to no breast: it counts
    in n_views_scored and in max-image only. A breast without a scored view has a null score.
    """
    check_option("breast aggregation", breast, BREAST_AGGS)
    check_option("study aggregation", study, STUDY_AGGS)
    views = _clean_views(views)

    # One prob column per breast, null on the other breast's rows: since aggregations skip nulls, a
    # single group_by gives both breast scores (null when the breast has no scored view) and the
    # study-wide count and max.
    for side, column in (("L", LEFT_SCORE), ("R", RIGHT_SCORE)):
        on_side = pc.fill_null(pc.equal(views[LATERALITY], side), False)
        views = views.append_column(column, pc.if_else(on_side, views[PROB], None))
    per_study = views.group_by(STUDY_KEY, use_threads=False).aggregate(
        [(LEFT_SCORE, breast), (RIGHT_SCORE, breast), (PROB, "count"), (PROB, "max")]
    )
    per_study = per_study.sort_by(STUDY_KEY)  # group order is first appearance: sort for a stable output

    left, right = per_study[f"{LEFT_SCORE}_{breast}"], per_study[f"{RIGHT_SCORE}_{breast}"]
    if study == "max-image":
        score = per_study[f"{PROB}_max"]
    elif study == "max":
        score = pc.max_element_wise(left, right, skip_nulls=True)
    else:
        score = _mean_ignoring_nulls([left, right])
    n_views = per_study[f"{PROB}_count"].cast(pa.int32())
    columns = [per_study[STUDY_KEY], left, right, score, n_views]
    return pa.Table.from_arrays(columns, schema=AGGREGATE_SCHEMA)


def _clean_views(views: pa.Table) -> pa.Table:
    """The three columns aggregation needs, prob as float64 with NaN turned into null."""
    missing = {STUDY_KEY, LATERALITY, PROB} - set(views.column_names)
    if missing:
        raise ValueError(f"views table lacks column(s) {sorted(missing)}")
    prob = views[PROB].cast(pa.float64())
    prob = pc.if_else(pc.is_nan(prob), pa.scalar(None, pa.float64()), prob)
    return pa.table(
        {
            STUDY_KEY: views[STUDY_KEY].cast(pa.string()),
            LATERALITY: views[LATERALITY].cast(pa.string()),
            PROB: prob,
        }
    )


def _mean_ignoring_nulls(columns: list[ArrayLike]) -> ArrayLike:
    """Element-wise mean of the non-null values; null where all are null."""
    total = pc.coalesce(columns[0], 0.0)
    count = pc.cast(pc.is_valid(columns[0]), pa.int32())
    for column in columns[1:]:
        total = pc.add(total, pc.coalesce(column, 0.0))
        count = pc.add(count, pc.cast(pc.is_valid(column), pa.int32()))
    # Dividing by a null count gives null, which is what an all-null row should get.
    count = pc.if_else(pc.equal(count, 0), pa.scalar(None, pa.int32()), count)
    return pc.divide(total, pc.cast(count, pa.float64()))


def ensemble_mean(member_probs: pa.Table | Mapping[str, ArrayLike | np.ndarray]) -> pa.Array:
    """The ensemble probability of each view: the mean over members (float32, like views.parquet).

    `member_probs` holds one column per member, one row per view. A view with a null member prob gets a
    null ensemble prob: a mean over fewer members would be a different model.
    """
    table = member_probs if isinstance(member_probs, pa.Table) else pa.table(dict(member_probs))
    if table.num_columns == 0:
        raise ValueError("ensemble_mean needs at least one member")
    columns = [column.cast(pa.float64()) for column in table.columns]
    total = columns[0]
    for column in columns[1:]:
        total = pc.add(total, column)
    mean = pc.divide(total, float(len(columns))).cast(pa.float32())
    return mean.combine_chunks() if isinstance(mean, pa.ChunkedArray) else mean


def recall(score: ArrayLike, threshold: float) -> ArrayLike:
    """Recall decision per study: score >= threshold (a null score stays null)."""
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    return pc.greater_equal(score, pa.scalar(float(threshold), pa.float64()))

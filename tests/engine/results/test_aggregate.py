"""Aggregation (docs/scoring.md, "Aggregation") against an independent pandas computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mammo_batch.engine.results.aggregate import (
    AGGREGATE_SCHEMA,
    BREAST_AGGS,
    STUDY_AGGS,
    aggregate_studies,
    ensemble_mean,
    recall,
)

SEEDS = (0, 1, 2, 3, 4)


def random_views(seed: int) -> pa.Table:
    """1-300 studies; both breasts or only one; 1-6 views per breast, views repeated; rows shuffled."""
    rng = np.random.default_rng(seed)
    n_studies = 1 if seed == 0 else int(rng.integers(1, 301))
    keys, sides, views = [], [], []
    for study in range(n_studies):
        breasts = ["L", "R", "LR"][rng.integers(0, 3)]
        for side in breasts:
            n_views = int(rng.integers(1, 7))
            keys += [f"S{study:04d}"] * n_views
            sides += [side] * n_views
            views += list(rng.choice(["CC", "MLO"], size=n_views))  # repeats: CC, CC, MLO, ...
    order = rng.permutation(len(keys))
    probs = rng.random(len(keys)).astype(np.float32)  # float32 like views.parquet
    return pa.table(
        {
            "study_key": pa.array(keys).take(order),
            "laterality": pa.array(sides).take(order),
            "view": pa.array(views).take(order),
            "prob": pa.array(probs),
        }
    )


def pandas_reference(views: pa.Table, breast: str, study: str) -> pd.DataFrame:
    """The same aggregation written the obvious pandas way, indexed and sorted by study_key."""
    df = views.to_pandas()
    df["prob"] = df["prob"].astype("float64")
    by_breast = df.groupby(["study_key", "laterality"])["prob"].agg(breast).unstack("laterality")
    by_breast = by_breast.reindex(columns=["L", "R"])  # a breast absent from every study: all NaN
    per_study = df.groupby("study_key")["prob"]
    if study == "max-image":
        score = per_study.max()
    elif study == "max":
        score = by_breast.max(axis=1)  # NaN (a missing breast) is skipped
    else:
        score = by_breast.mean(axis=1)
    return pd.DataFrame(
        {
            "left_score": by_breast["L"],
            "right_score": by_breast["R"],
            "score": score,
            "n_views_scored": per_study.size(),
        }
    ).sort_index()


def as_float(column: pa.ChunkedArray) -> np.ndarray:
    """Nulls as NaN, to compare with pandas."""
    return column.to_numpy(zero_copy_only=False).astype("float64")


@pytest.mark.parametrize("study", STUDY_AGGS)
@pytest.mark.parametrize("breast", BREAST_AGGS)
@pytest.mark.parametrize("seed", SEEDS)
def test_matches_pandas(seed: int, breast: str, study: str) -> None:
    views = random_views(seed)
    got = aggregate_studies(views, breast=breast, study=study)
    want = pandas_reference(views, breast, study)

    assert got.schema.equals(AGGREGATE_SCHEMA)
    assert got["study_key"].to_pylist() == list(want.index)
    for column in ("left_score", "right_score", "score"):
        np.testing.assert_allclose(as_float(got[column]), want[column].to_numpy(), rtol=1e-12, err_msg=column)
    assert got["n_views_scored"].to_pylist() == want["n_views_scored"].tolist()


def test_row_order_does_not_matter() -> None:
    views = random_views(1)
    shuffled = views.take(np.random.default_rng(9).permutation(views.num_rows))
    assert aggregate_studies(shuffled).equals(aggregate_studies(views))


def test_missing_breast_is_null_and_study_uses_the_other() -> None:
    views = pa.table(
        {"study_key": ["a", "a", "b"], "laterality": ["L", "L", "R"], "prob": [0.2, 0.4, 0.7]},
    )
    for study in ("max", "mean"):
        got = aggregate_studies(views, breast="mean", study=study).to_pydict()
        assert got["left_score"][0] == pytest.approx(0.3) and got["left_score"][1] is None
        assert got["right_score"][0] is None and got["right_score"][1] == pytest.approx(0.7)
        assert got["score"] == pytest.approx([0.3, 0.7])


def test_max_image_is_the_max_over_all_views() -> None:
    # Breast means are 0.5 and 0.1, so every breast-based rule gives less than the single 0.9 view.
    views = pa.table(
        {"study_key": ["s"] * 4, "laterality": ["L", "L", "R", "R"], "prob": [0.9, 0.1, 0.1, 0.1]},
    )
    assert aggregate_studies(views, study="max-image")["score"].to_pylist() == [0.9]
    assert aggregate_studies(views, breast="mean", study="max")["score"].to_pylist() == [0.5]
    for seed in SEEDS:
        views = random_views(seed)
        df = views.to_pandas()
        want = df.groupby("study_key")["prob"].max().astype("float64")
        for breast in BREAST_AGGS:  # the breast rule plays no part in max-image
            got = aggregate_studies(views, breast=breast, study="max-image")
            np.testing.assert_array_equal(as_float(got["score"]), want.to_numpy())


def test_null_nan_and_unknown_laterality() -> None:
    views = pa.table(
        {
            "study_key": ["s", "s", "s", "s", "t"],
            "laterality": ["L", "R", "R", "", "L"],
            "prob": pa.array([0.4, None, float("nan"), 0.8, None], pa.float32()),
        }
    )
    got = aggregate_studies(views, study="max").to_pydict()
    # Null and NaN probs are not scores; the view of unknown laterality is in no breast.
    assert got["study_key"] == ["s", "t"]
    assert got["left_score"][0] == pytest.approx(0.4) and got["left_score"][1] is None
    assert got["right_score"] == [None, None]
    assert got["score"][0] == pytest.approx(0.4) and got["score"][1] is None
    assert got["n_views_scored"] == [2, 0]
    image = aggregate_studies(views, study="max-image").to_pydict()
    assert image["score"][0] == pytest.approx(0.8) and image["score"][1] is None


def test_empty_views_give_an_empty_table() -> None:
    schema = pa.schema([("study_key", pa.string()), ("laterality", pa.string()), ("prob", pa.float32())])
    empty = schema.empty_table()
    got = aggregate_studies(empty, study="mean")
    assert got.num_rows == 0 and got.schema.equals(AGGREGATE_SCHEMA)


@pytest.mark.parametrize(
    ("kwargs", "choices"),
    [({"breast": "median"}, "mean, max"), ({"study": "min"}, "max, mean, max-image")],
)
def test_bad_option_names_the_choices(kwargs: dict[str, str], choices: str) -> None:
    with pytest.raises(ValueError, match=choices):
        aggregate_studies(random_views(0), **kwargs)


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="laterality"):
        aggregate_studies(pa.table({"study_key": ["a"], "prob": [0.1]}))


def test_ensemble_mean() -> None:
    members = {"fold0": np.array([0.1, 0.5, 0.9]), "fold1": pa.array([0.3, None, 0.7])}
    got = ensemble_mean(members)
    assert got.type == pa.float32()
    assert got.to_pylist()[0] == pytest.approx(0.2) and got.to_pylist()[2] == pytest.approx(0.8)
    assert got[1].as_py() is None  # one member missing: no ensemble prob
    assert ensemble_mean(pa.table({"a": [0.25, 0.75]})).to_pylist() == [0.25, 0.75]
    rng = np.random.default_rng(3)
    matrix = rng.random((50, 5))
    table = pa.table({f"m{i}": matrix[:, i] for i in range(5)})
    np.testing.assert_allclose(ensemble_mean(table).to_numpy(), matrix.mean(axis=1), rtol=1e-6)
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_mean({})


def test_recall() -> None:
    scores = pa.array([0.1, 0.5, None, 0.7])
    assert recall(scores, 0.5).to_pylist() == [False, True, None, True]
    assert recall(scores, 0).to_pylist() == [True, True, None, True]
    chunked = pa.chunked_array([[0.2], [0.9, None]])
    assert recall(chunked, 0.3).to_pylist() == [False, True, None]
    for bad in (float("nan"), float("inf"), "0.5", None, True):
        with pytest.raises(ValueError, match="threshold"):
            recall(scores, bad)  # type: ignore[arg-type]

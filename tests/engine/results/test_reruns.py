"""Rerun rules through the Python API (issue: reruns, views, statuses, stale rows).

What decides a study's row is part of the skip decision: aggregation and threshold changes re-derive
every row from stored view probabilities without a model run; another view filter or bundle rescores;
the store keeps per-view rows whatever `--views` said, so views.parquet always agrees with scores.
Expectations are computed here with pandas from views.parquet, not with the engine's aggregation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle

import mammo_batch
from mammo_batch import Ensemble, ScoreUsageError
from mammo_batch.engine.results.files import read_run_metadata
from mammo_batch.synth import make_view_dataset, phantom_view, write_studies

MEMBERS = [dict(name="wide", height=96, width=48, weight=8.0, bias=-3.0),
           dict(name="upper", height=64, width=32, weight=6.0, bias=-2.0, region=(0, 32, 0, 16))]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), MEMBERS, threshold=0.5)


@pytest.fixture(scope="module")
def ensemble(bundle) -> Ensemble:
    return Ensemble.load(bundle, runtime="onnx", threads=1)  # loaded once, reused by every call here


@pytest.fixture
def studies(tmp_path) -> Path:
    root = tmp_path / "studies"
    write_studies(root, 4, seed=5, size=(192, 160), layout="accession")
    return root


def score(studies, out, ensemble, **options):
    return mammo_batch.score([studies], out=out, models=ensemble, workers=2, progress=False, **options)


def table(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def expected_rows(views: pd.DataFrame, breast: str, study: str, threshold: float) -> pd.DataFrame:
    ok = views[views["status"] == "ok"]
    breasts = ok.groupby(["study_key", "laterality"])["prob"].agg(breast).unstack()
    score = breasts.mean(axis=1) if study == "mean" else breasts.max(axis=1)
    return pd.DataFrame({"score": score, "recall": score >= threshold})


def test_a_rule_change_rederives_every_row_without_scoring(studies, tmp_path, ensemble):
    out = tmp_path / "scores.parquet"
    first = score(studies, out, ensemble)
    assert first.scored == 4 and first.exit_code == 0 and first.views > 0
    again = score(studies, out, ensemble, threshold=0.9, study_agg="mean", views_out=tmp_path / "v.parquet")
    assert again.scored == 0 and again.kept == 4 and again.views == 0  # no model run
    rows = table(out).set_index("study_key").sort_index()
    want = expected_rows(table(tmp_path / "v.parquet"), "mean", "mean", 0.9).sort_index()
    np.testing.assert_allclose(rows["score"], want["score"], rtol=1e-6)
    assert (rows["recall"] == want["recall"]).all()
    arguments = read_run_metadata(out)["arguments"]
    assert arguments["threshold"] == 0.9 and arguments["study_agg"] == "mean"  # and the rows follow it


def test_a_view_filter_change_rederives_and_widening_scores_only_the_new_views(studies, tmp_path, ensemble):
    out = tmp_path / "scores.parquet"
    score(studies, out, ensemble)
    with pytest.raises(ScoreUsageError, match="CCC"):
        score(studies, out, ensemble, view_filter=frozenset({"CCC"}))
    only_cc = score(studies, out, ensemble, view_filter=frozenset({"CC"}), views_out=tmp_path / "v.parquet")
    assert only_cc.scored == 0 and only_cc.views == 0  # the CC views' probabilities are the file's: kept
    views = table(tmp_path / "v.parquet")
    assert set(views.loc[views["status"] == "ok", "view"]) == {"CC"}
    excluded = views[views["reason"] == "view_excluded"]
    assert len(excluded) and "CC" not in set(excluded["view"])
    rows = table(out).set_index("study_key")
    want = expected_rows(views, "mean", "max", 0.5)
    np.testing.assert_allclose(rows.loc[want.index, "score"], want["score"], rtol=1e-6)
    back = score(studies, out, ensemble)  # without the filter: the MLO views are scored again, only they
    assert back.scored == 4 and back.views == len(excluded)


def test_another_bundle_rescores_everything(studies, tmp_path, ensemble):
    out = tmp_path / "scores.parquet"
    score(studies, out, ensemble)
    other = write_test_bundle(tmp_path / "other", [dict(name="wide", height=96, width=48, weight=2.0)])
    assert score(studies, out, other).scored == 4
    assert score(studies, out, other).scored == 0


def test_views_are_kept_whatever_the_options_and_follow_changed_pixels(studies, tmp_path, ensemble):
    out, views_out = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    score(studies, out, ensemble)  # no --views
    score(studies, out, ensemble, views_out=views_out)  # nothing rescored, yet every file is there
    files = sorted(str(p.resolve()) for p in studies.rglob("*.dcm"))
    listed = table(views_out)["path"]
    assert sorted(listed[listed.str.endswith(".dcm")]) == files
    # change one image's pixels; rerun without --views, then export
    path = Path(files[0])
    patient = pydicom.dcmread(path, stop_before_pixels=True).PatientID
    ds = make_view_dataset(phantom_view(np.random.default_rng(99), (192, 160), "L", "CC"), "hologic", "L", "CC",
                           accession_number=path.parent.name, patient_id=patient)
    ds.save_as(path, enforce_file_format=True)
    assert score(studies, out, ensemble).scored == 1
    score(studies, out, ensemble, views_out=views_out)
    views, rows = table(views_out), table(out).set_index("study_key")
    want = expected_rows(views, "mean", "max", 0.5)
    np.testing.assert_allclose(rows.loc[want.index, "score"], want["score"], rtol=1e-6)


def test_a_truncated_view_makes_its_study_partial(studies, tmp_path, ensemble):
    folder = sorted(p for p in studies.iterdir() if p.is_dir())[0]
    victim = sorted(folder.glob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # cut inside PixelData
    summary = score(studies, tmp_path / "scores.parquet", ensemble)
    rows = table(tmp_path / "scores.parquet").set_index("study_key")
    row = rows.loc[folder.name]
    n_files = len(list(folder.glob("*.dcm")))
    assert row["status"] == "partial"
    assert row["n_views"] == n_files - 1 and row["n_views_skipped"] == 1
    assert "truncated" in row["error"]
    assert summary.exit_code == 3
    again = score(studies, tmp_path / "scores.parquet", ensemble)  # unchanged: nothing to decode again
    assert (again.scored, again.kept) == (0, 4) and again.counts == {"ok": 3, "partial": 1}
    assert again.exit_code == 3  # the study is still partial: the night says so every time


def test_rows_of_studies_whose_files_are_gone_are_kept_and_counted(studies, tmp_path, ensemble):
    out = tmp_path / "scores.parquet"
    score(studies, out, ensemble)
    before = table(out).set_index("study_key")
    gone = sorted(p for p in studies.iterdir() if p.is_dir())[0]
    shutil.rmtree(gone)
    summary = score(studies, out, ensemble)
    after = table(out).set_index("study_key")
    assert summary.output_counts["not_seen"] == 1 and gone.name in after.index
    assert after.loc[gone.name, "last_seen"] == before.loc[gone.name, "last_seen"]
    others = after.index.drop(gone.name)
    assert (after.loc[others, "last_seen"] > before.loc[others, "last_seen"]).all()

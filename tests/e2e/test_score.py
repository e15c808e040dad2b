"""`mammo-batch score` end to end: real DICOM files, real ONNX Runtime sessions, real
worker processes. Expected scores are computed independently (numpy + pandas)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import expected_probability, write_test_bundle

from mammo_batch.engine.bundle import load_bundle
from mammo_batch.engine.dicom import discover
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.studies import group_studies
from mammo_batch.synth import make_view_dataset, phantom_view, write_studies

MEMBERS = [
    dict(name="wide", fold=0, height=96, width=48, dtype="uint8", weight=8.0, bias=-3.0, region=None),
    dict(name="upper", fold=1, height=64, width=32, dtype="uint8", weight=6.0, bias=-2.0,
         region=(0, 32, 0, 16)),
]
STABLE = ["study_key", "patient_id", "accession_number", "study_date", "score", "recall",
          "left_score", "right_score", "n_views", "n_views_skipped", "status", "fingerprint"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), MEMBERS, threshold=0.5)


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("studies")
    write_studies(root, 8, seed=3, size=(192, 160))
    return root


def run_score(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", *args, "--quiet",
               "--workers", "2"]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def expected_views(root: Path, bundle_dir: Path) -> pd.DataFrame:
    """Per scorable view: the ensemble probability, computed without the scheduler."""
    bundle = load_bundle(bundle_dir)
    studies, _ = group_studies(discover([root], workers=1))
    rows = []
    for study in studies:
        for record in study.scorable:
            inputs = prepare_file(record.path, bundle.sizes, bundle.settings).inputs
            probs = [expected_probability(inputs[(m["height"], m["width"])][None], m["weight"],
                                          m["bias"], m["region"], m["dtype"])[0] for m in MEMBERS]
            rows.append({"study_key": study.key, "laterality": record.laterality,
                         "path": record.path, "prob": float(np.mean(probs))})
    return pd.DataFrame(rows)


def expected_scores(views: pd.DataFrame, breast: str = "mean", study: str = "max") -> pd.Series:
    if study == "max-image":
        return views.groupby("study_key")["prob"].max()
    breasts = views.groupby(["study_key", "laterality"])["prob"].agg(breast)
    return breasts.groupby("study_key").agg(study)


def read_scores(path: Path) -> pd.DataFrame:
    """The scores rows, without last_seen (every run that finds a study updates it)."""
    return pq.read_table(path).to_pandas().set_index("study_key").sort_index().drop(columns=["last_seen"])


def test_scores_match_an_independent_computation(studies, bundle, tmp_path):
    out, views_out = tmp_path / "scores.parquet", tmp_path / "views.parquet"
    result = run_score(str(studies), "--out", str(out), "--models", str(bundle),
                       "--views", str(views_out))
    assert result.returncode == 0, result.stderr
    assert "runtime: onnxruntime-cpu" in result.stdout
    scores = read_scores(out)
    expected_views_df = expected_views(studies, bundle)
    expected = expected_scores(expected_views_df)
    assert sorted(scores.index) == sorted(expected.index)
    np.testing.assert_allclose(scores.loc[expected.index, "score"], expected, atol=1e-5)
    assert (scores["status"] == "ok").all()
    assert (scores["recall"] == (scores["score"] >= 0.5)).all()
    views = pq.read_table(views_out).to_pandas()
    # every file seen has a row: the DICOMs and the two CSVs synth writes
    assert len(views) == len(list(p for p in studies.rglob("*") if p.is_file()))
    merged = views.merge(expected_views_df, on="path", suffixes=("", "_expected"))
    np.testing.assert_allclose(merged["prob"], merged["prob_expected"], atol=1e-5)
    assert {"prob_wide", "prob_upper"} <= set(views.columns)


@pytest.mark.parametrize("breast,study", [("max", "mean"), ("mean", "max-image")])
def test_aggregation_options(studies, bundle, tmp_path, breast, study):
    out = tmp_path / "scores.parquet"
    result = run_score(str(studies), "--out", str(out), "--models", str(bundle),
                       "--breast-agg", breast, "--study-agg", study, "--threshold", "0.6")
    assert result.returncode == 0, result.stderr
    scores = read_scores(out)
    expected = expected_scores(expected_views(studies, bundle), breast, study)
    np.testing.assert_allclose(scores.loc[expected.index, "score"], expected, atol=1e-5)
    assert (scores["recall"] == (scores["score"] >= 0.6)).all()


def corrupt_copy(source: Path, target: Path) -> None:
    """A J2K file whose codestream is garbage: the header reads, decoding fails.

    (A codestream that is merely cut short may still decode: OpenJPEG is lenient.)
    """
    ds = pydicom.dcmread(source)
    ds.PixelData = pydicom.encaps.encapsulate([bytes(range(256)) * 4])
    ds.save_as(target)


def test_bad_files_make_partial_and_failed_studies_without_losing_others(bundle, tmp_path):
    root = tmp_path / "studies"
    write_studies(root, 3, seed=5, size=(192, 160), variants=["hologic"], layout="accession")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    # study 0: one view damaged -> partial; study 1: every view damaged -> failed
    first = sorted(folders[0].glob("*.dcm"))[0]
    corrupt_copy(first, first)
    for path in folders[1].glob("*.dcm"):
        corrupt_copy(path, path)
    out = tmp_path / "scores.parquet"
    result = run_score(str(root), "--out", str(out), "--models", str(bundle))
    assert result.returncode == 3, result.stderr
    scores = read_scores(out)
    by_folder = {folder.name: scores.loc[folder.name] for folder in folders}
    assert by_folder[folders[0].name]["status"] == "partial"
    assert by_folder[folders[0].name]["error"].startswith("1 of ")
    assert by_folder[folders[1].name]["status"] == "failed"
    assert pd.isna(by_folder[folders[1].name]["score"])
    assert by_folder[folders[2].name]["status"] == "ok"


def test_rerun_skips_unchanged_and_rescores_changed_studies(bundle, tmp_path):
    root = tmp_path / "studies"
    write_studies(root, 4, seed=7, size=(192, 160), layout="accession")
    out = tmp_path / "scores.parquet"
    assert run_score(str(root), "--out", str(out), "--models", str(bundle)).returncode == 0
    first = read_scores(out)
    again = run_score(str(root), "--out", str(out), "--models", str(bundle))
    assert again.returncode == 0 and "4 unchanged" in again.stdout
    pd.testing.assert_frame_equal(read_scores(out), first)
    # a study gains a view: only that one is rescored
    folder = sorted(p for p in root.iterdir() if p.is_dir())[0]
    image = phantom_view(np.random.default_rng(1), (192, 160), "L", "CC")
    ds = make_view_dataset(image, "hologic", "L", "CC", accession_number=folder.name,
                           patient_id=first.loc[folder.name, "patient_id"])
    ds.save_as(folder / "extra.dcm", enforce_file_format=True)
    third = run_score(str(root), "--out", str(out), "--models", str(bundle))
    assert third.returncode == 0 and "3 unchanged" in third.stdout, third.stdout
    after = read_scores(out)
    assert after.loc[folder.name, "n_views"] == first.loc[folder.name, "n_views"] + 1
    assert after.loc[folder.name, "fingerprint"] != first.loc[folder.name, "fingerprint"]
    others = [k for k in first.index if k != folder.name]
    pd.testing.assert_frame_equal(after.loc[others], first.loc[others])


def test_kill_and_resume_gives_the_uninterrupted_result(bundle, tmp_path, studies):
    reference = tmp_path / "reference.parquet"
    assert run_score(str(studies), "--out", str(reference), "--models", str(bundle)).returncode == 0
    expected = read_scores(reference)[STABLE[1:]]
    for parts_before_kill in (0, 1, 3):
        out = tmp_path / f"killed{parts_before_kill}.parquet"
        journal = Path(f"{out}.journal")
        command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies),
                   "--out", str(out), "--models", str(bundle), "--quiet", "--workers", "2",
                   "--flush-every", "1", "--batch-size", "2"]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if len(list(journal.glob("part-*.scores.parquet"))) >= parts_before_kill:
                break
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)  # the scorer and its worker processes
        child.wait()
        resumed = run_score(str(studies), "--out", str(out), "--models", str(bundle))
        assert resumed.returncode == 0, resumed.stderr
        got = read_scores(out)
        assert got.index.is_unique
        pd.testing.assert_frame_equal(got[STABLE[1:]], expected, check_exact=False, atol=1e-6)
        assert not journal.exists()


def test_configuration_errors_exit_2(studies, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    missing = run_score(str(studies), "--out", str(out), "--models", str(tmp_path / "nope"))
    assert missing.returncode == 2
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    onnx_file = next(tampered.glob("*.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    result = run_score(str(studies), "--out", str(out), "--models", str(tampered))
    assert result.returncode == 2 and "sha256" in result.stderr.lower()
    no_models = subprocess.run(
        [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--out", str(out)],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                             if k != "MAMMO_BATCH_MODELS"})
    assert no_models.returncode == 2 and "--models" in no_models.stderr


def test_a_second_run_on_the_same_output_is_refused(studies, bundle, tmp_path):
    from mammo_batch.engine.results.lock import OutputLock

    out = tmp_path / "scores.parquet"
    with OutputLock(out):
        result = run_score(str(studies), "--out", str(out), "--models", str(bundle))
    assert result.returncode == 2 and "lock" in result.stderr.lower()

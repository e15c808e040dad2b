"""Drift in the nightly report: synthetic nights whose distribution shifts (one vendor's window changed)
and nights that do not; PSI and KS checked against independent computations (np.histogram, scipy)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mammo_batch.engine.report.drift import EXIT_DRIFT, RED, compute_drift, ks_2samp, psi
from mammo_batch.engine.results.files import with_run_metadata
from mammo_batch.engine.results.schema import SCORES_SCHEMA, views_schema

FIRST_NIGHT = datetime(2026, 3, 1, 22, tzinfo=timezone.utc)
VIEWS = [("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")]
VENDORS = ["HOLOGIC", "GE MEDICAL SYSTEMS"]


def write_nights(folder: Path, per_night: list[int], shift: float = 0.0, failed_tonight: float = 0.0,
                 seed: int = 0, prefix: str = "N") -> tuple[Path, Path]:
    """One nightly scores file (its history: one night per entry of `per_night`, the last is tonight) and
    its views file. Tonight, GE's view probabilities are raised by `shift` (a changed VOI window) and a
    share `failed_tonight` of the files fail."""
    rng = np.random.default_rng(seed)
    scores, views = [], []
    for night, count in enumerate(per_night):
        tonight = night == len(per_night) - 1
        for i in range(count):
            key, vendor = f"{prefix}{night}S{i:04d}", VENDORS[i % 2]
            probs = rng.beta(2, 6, len(VIEWS))
            if tonight and vendor == VENDORS[1]:
                probs = np.clip(probs + shift, 0, 1)
            status = ["failed" if tonight and rng.random() < failed_tonight else "ok" for _ in VIEWS]
            for (side, view), prob, st in zip(VIEWS, probs, status, strict=True):
                views.append({"path": f"/x/{key}/{side}{view}.dcm", "study_key": key, "laterality": side,
                              "view": view, "manufacturer": vendor, "status": st, "prob": float(prob)})
            score = max(np.mean(probs[:2]), np.mean(probs[2:]))
            scores.append({"study_key": key, "study_date": "20260301", "score": float(score),
                           "recall": bool(score >= 0.4), "status": "ok",
                           "scored_at": FIRST_NIGHT + timedelta(days=night, seconds=i % 50)})
    metadata = {"timings": {"discovery_s": 1.0, "scoring_s": 60.0}, "arguments": {"threshold": 0.4}}
    scores_path = folder / "scores.parquet"
    full = [{n: r.get(n) for n in SCORES_SCHEMA.names} for r in scores]
    pq.write_table(with_run_metadata(pa.Table.from_pylist(full, schema=SCORES_SCHEMA), metadata), scores_path)
    schema = views_schema(["m"])
    views_path = folder / "scores.parquet.views.parquet"  # the store's own views file beside it
    pq.write_table(pa.Table.from_pylist([{n: v.get(n) for n in schema.names} for v in views], schema=schema),
                   views_path)
    return scores_path, views_path


def report(scores: Path, views: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "report", str(scores), "--views",
                           str(views), "--out", str(out), *args], capture_output=True, text=True, timeout=120)


def hand_psi(reference: np.ndarray, tonight: np.ndarray) -> float:
    inner = np.unique(np.quantile(reference, [i / 10 for i in range(1, 10)]))
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    expected = np.histogram(reference, edges)[0] / len(reference)
    actual = np.histogram(tonight, edges)[0] / len(tonight)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(sum((a - e) * np.log(a / e) for a, e in zip(actual, expected, strict=True)))


@pytest.mark.parametrize("seed", range(5))
def test_psi_and_ks_match_independent_computations(seed):
    rng = np.random.default_rng(seed)
    reference, tonight = rng.beta(2, 6, 500 + seed * 37), rng.beta(2.5, 6, 200 + seed * 11)
    assert psi(reference, tonight) == pytest.approx(hand_psi(reference, tonight), rel=1e-12)
    stats = pytest.importorskip("scipy.stats")
    expected = stats.ks_2samp(reference, tonight).statistic
    d, p = ks_2samp(reference, tonight)
    assert d == pytest.approx(expected, abs=1e-12)
    # The p-value is the limiting Kolmogorov distribution's (scipy's `asymp` uses a finite-n one instead).
    m, n = len(reference), len(tonight)
    assert p == pytest.approx(stats.kstwobign.sf(expected * np.sqrt(m * n / (m + n))), rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_a_stable_night_is_green(tmp_path, seed):
    scores, views = write_nights(tmp_path, [200, 200, 200], seed=seed)
    result = report(scores, views, tmp_path / "r.html", "--fail-on-drift")
    assert result.returncode == 0, result.stderr
    assert "drift: green" in result.stderr
    page = (tmp_path / "r.html").read_text()
    assert "Drift: GREEN" in page and page.index("drift-status") < page.index("<h2>Run")


def test_a_vendor_whose_window_changed_is_red_and_fails_the_run_only_when_asked(tmp_path):
    scores, views = write_nights(tmp_path, [200, 200, 200], shift=0.25)
    drift = compute_drift(scores, views)
    checks = {c.name: c for c in drift.checks}
    assert drift.status == RED
    assert checks["study score: GE MEDICAL SYSTEMS"].status == RED
    assert checks["study score: HOLOGIC"].status == "green"  # the other vendor did not move
    assert checks["view prob: CC"].status == RED
    # Independent: the GE study scores of tonight vs the earlier nights, straight from the files.
    table = pq.read_table(scores).to_pandas()
    vendor = pq.read_table(views).to_pandas().groupby("study_key").manufacturer.first()
    ge = table[table.study_key.map(vendor) == VENDORS[1]]
    tonight = ge.study_key.str.startswith("N2")
    ge_check = checks["study score: GE MEDICAL SYSTEMS"]
    assert ge_check.psi == pytest.approx(hand_psi(ge.score[~tonight].to_numpy(), ge.score[tonight].to_numpy()),
                                         rel=1e-12)
    assert ge_check.psi >= 0.25 + 21.666 * (1 / 100 + 1 / 200)  # red: above the threshold plus the noise margin
    assert (checks["study score: GE MEDICAL SYSTEMS"].tonight_n, checks["study score: GE MEDICAL SYSTEMS"]
            .reference_n) == (100, 200)

    assert report(scores, views, tmp_path / "a.html").returncode == 0
    failing = report(scores, views, tmp_path / "b.html", "--fail-on-drift")
    assert failing.returncode == EXIT_DRIFT and "drift: red" in failing.stderr
    assert "Drift: RED" in (tmp_path / "b.html").read_text()


def test_failed_files_and_recall_against_the_target(tmp_path):
    scores, views = write_nights(tmp_path, [200, 200, 200], failed_tonight=0.3)
    checks = {c.name: c for c in compute_drift(scores, views, target_recall=0.05).checks}
    failed = checks["failed or skipped files"]
    assert failed.status == RED and failed.reference_value == 0.0 and 0.2 < failed.tonight_value < 0.4
    recall = checks["recall rate vs target"]
    table = pq.read_table(scores).to_pandas()
    assert recall.tonight_value == table[table.study_key.str.startswith("N2")].recall.mean()
    assert recall.status == ("red" if abs(recall.tonight_value - 0.05) > 0.05 else "amber")


def test_reference_files_extend_the_reference_and_small_groups_are_not_judged(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old_scores, _ = write_nights(tmp_path / "old", [300], seed=1, prefix="OLD")
    scores, views = write_nights(tmp_path / "new", [20], seed=2)  # only tonight, and few studies
    alone = compute_drift(scores, views)
    assert alone.status == "not judged"
    with_old = {c.name: c for c in compute_drift(scores, views, [old_scores]).checks}
    assert with_old["study score: all"].reference_n == 300
    assert with_old["study score: all"].status == "not judged"  # 20 tonight < 30
    assert with_old["view prob: CC"].status in ("green", "amber")  # 40 CC views tonight: judged


@pytest.mark.slow
def test_a_changed_voi_window_in_real_scoring_turns_the_line_red(tmp_path):
    """End to end: two nights scored into one nightly file; tonight every file's VOI window is narrowed
    (a changed VOI LUT at the modality), which the mean-intensity test models see."""
    import pydicom
    from onnx_members import write_test_bundle

    import mammo_batch
    from mammo_batch.synth import write_studies

    bundle = write_test_bundle(tmp_path / "bundle", [dict(name="m", height=64, width=32, weight=8.0, bias=-3.0)])
    out = tmp_path / "scores.parquet"
    write_studies(tmp_path / "night1", 20, seed=11, size=(128, 104))
    mammo_batch.score([tmp_path / "night1"], out=out, models=bundle, workers=1, progress=False)
    write_studies(tmp_path / "night2", 20, seed=12, size=(128, 104))
    for path in (tmp_path / "night2").rglob("*"):
        try:
            ds = pydicom.dcmread(path)
        except (pydicom.errors.InvalidDicomError, IsADirectoryError):
            continue
        if "WindowWidth" in ds:
            ds.WindowWidth = [float(w) * 0.4 for w in np.atleast_1d(ds.WindowWidth)]
            ds.save_as(path)
    time.sleep(2)  # the report tells tonight's rows by their scored_at
    mammo_batch.score([tmp_path / "night2"], out=out, models=bundle, workers=1, progress=False)
    drift = compute_drift(out, f"{out}.views.parquet")
    checks = {c.name: c for c in drift.checks}
    judged = [checks["view prob: CC"], checks["view prob: MLO"]]  # ~40 views a night each
    assert all(c.psi > 0.25 for c in judged), judged  # both moved; with ~40 a side the noise margin is ~1.2
    assert any(c.status == RED for c in judged) and drift.status == RED, judged

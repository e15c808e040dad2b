"""`mammo-batch threshold`: the operating point for a target recall rate over past scores.parquet files,
checked against a brute-force search written here (the highest observed score that still recalls at
least the target share)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onnx_members import write_test_bundle

from mammo_batch.engine.bundle import load_bundle
from mammo_batch.engine.results.schema import SCORES_SCHEMA
from mammo_batch.engine.results.threshold import ThresholdError, parse_window, threshold_for_recall

NIGHT = datetime(2026, 3, 1, 22, tzinfo=timezone.utc)


def write_scores(path: Path, rows: list[dict]) -> Path:
    full = [{name: row.get(name) for name in SCORES_SCHEMA.names} for row in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=SCORES_SCHEMA), path)
    return path


def night(path: Path, keys: list[str], scores: np.ndarray, dates: list[str], when: datetime,
          status: str = "ok") -> Path:
    return write_scores(path, [{"study_key": k, "study_date": d, "score": float(s), "recall": bool(s >= 0.5),
                                "status": status, "scored_at": when} for k, s, d in zip(keys, scores, dates,
                                                                                        strict=True)])


def brute_force(scores: np.ndarray, rate: float) -> float:
    candidates = [t for t in np.unique(scores) if (scores >= t).mean() >= rate - 1e-12]
    return float(max(candidates))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "threshold", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("rate", [0.01, 0.03, 0.05, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n", [1, 7, 100, 1000])
def test_threshold_is_the_highest_score_recalling_at_least_the_rate(rate, n):
    rng = np.random.default_rng(n)
    scores = np.round(rng.beta(2, 5, n), 3)  # rounded: ties happen
    threshold = threshold_for_recall(scores, rate)
    assert threshold == brute_force(scores, rate)
    assert (scores >= threshold).mean() >= rate - 1e-12


def test_cli_counts_each_study_once_in_the_window_and_ignores_unscored_rows(tmp_path):
    rng = np.random.default_rng(0)
    keys = [f"S{i:04d}" for i in range(400)]
    dates = [f"2026{1 + i % 4:02d}15" for i in range(400)]  # January .. April
    first = night(tmp_path / "n1.parquet", keys, rng.random(400), dates, NIGHT)
    rescored = rng.random(400)  # the next night holds the whole history again, rescored
    second = night(tmp_path / "n2.parquet", keys, rescored, dates, NIGHT + timedelta(days=1))
    failed = night(tmp_path / "n3.parquet", [f"F{i}" for i in range(50)], np.ones(50), ["20260215"] * 50,
                   NIGHT + timedelta(days=2), status="failed")
    result = cli(str(first), str(second), str(failed), "--recall-rate", "0.05", "--window", "2026-02-01..2026-03-31",
                 "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    in_window = np.array([s for s, d in zip(rescored, dates, strict=True) if "20260201" <= d <= "20260331"])
    assert answer["studies"] == len(in_window) == 200
    assert answer["threshold"] == brute_force(in_window, 0.05)
    assert answer["recalled"] == (in_window >= answer["threshold"]).sum() == 10
    assert answer["realised_rate"] == 0.05 and answer["window"] == "2026-02-01..2026-03-31"

    plain = cli(str(second), "--recall-rate", "0.05")
    assert plain.stdout.strip() == f"--threshold {brute_force(rescored, 0.05)!r}"
    assert "20 of 400 studies recalled (5.00%" in plain.stderr


def test_threshold_written_into_a_copy_of_the_bundle(tmp_path):
    scores = np.linspace(0.0, 1.0, 101)
    past = night(tmp_path / "past.parquet", [f"S{i}" for i in range(101)], scores, ["20260101"] * 101, NIGHT)
    bundle = write_test_bundle(tmp_path / "bundle", [dict(name="m", height=64, width=32)], threshold=0.5)
    result = cli(str(past), "--recall-rate", "0.1", "--bundle", str(bundle), "--out", str(tmp_path / "new"))
    assert result.returncode == 0, result.stderr
    copy = load_bundle(tmp_path / "new")
    assert copy.threshold == brute_force(scores, 0.1) == pytest.approx(0.9)
    assert load_bundle(bundle).threshold == 0.5  # the source is untouched
    rule = json.loads((tmp_path / "new" / "bundle.json").read_text())["provenance"]["threshold_rule"]
    assert rule["recall_rate"] == 0.1 and rule["studies"] == 101 and rule["recalled"] == 11
    assert rule["from_bundle"] == load_bundle(bundle).id and copy.id != load_bundle(bundle).id
    assert cli(str(past), "--recall-rate", "0.1", "--bundle", str(bundle), "--out",
               str(tmp_path / "new")).returncode == 2  # never overwrites


def test_bad_windows_rates_and_empty_windows_are_usage_errors(tmp_path):
    past = night(tmp_path / "past.parquet", ["A"], np.array([0.3]), ["20260101"], NIGHT)
    assert "no scored studies" in cli(str(past), "--recall-rate", "0.1", "--window", "2027-01-01..").stderr
    assert cli(str(past), "--recall-rate", "0").returncode == 2
    with pytest.raises(ThresholdError):
        parse_window("2026-03-01..2026-01-01")
    with pytest.raises(ThresholdError):
        parse_window("last week")

"""`mammo-batch demo` end to end at a tiny size (synthesize, train 2 folds, build, score), and the
training it rests on being repeatable: the same seed and thread count give the same model, bit for
bit, on one machine. No AUC threshold here (a tiny model on 12 studies proves nothing about
learning; tests/build/test_train_build.py checks that at the demo's size)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed")

import pyarrow.parquet as pq  # noqa: E402

from mammo_batch.engine.bundle import load_bundle  # noqa: E402
from mammo_batch.train.loop import TrainConfig, train_run  # noqa: E402

TINY = ["--studies", "12", "--test-studies", "6", "--folds", "2", "--epochs", "1",
        "--image-size", "256x208", "--size", "128x64"]


@pytest.mark.timeout(900)
def test_the_whole_demo_runs_at_a_tiny_size(tmp_path: Path):
    directory = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "mammo_batch", "demo", str(directory), *TINY],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = json.loads((directory / "report.json").read_text())
    assert report["studies"] == 6 and 0 <= report["study_auc"] <= 1
    scores = pq.read_table(directory / "scores.parquet").to_pylist()
    assert len(scores) == 6 and all(r["status"] == "ok" and r["score"] is not None for r in scores)
    bundle = load_bundle(directory / "bundle")
    assert [m.fold for m in bundle.members] == [0, 1]
    assert "SYNTHETIC DEMO" in bundle.description
    assert f"held-out study AUC {report['study_auc']:.3f}" in result.stdout


@pytest.mark.timeout(600)
def test_training_is_repeatable_bit_for_bit_with_a_fixed_seed_and_thread_count(make_studies, tmp_path):
    data = make_studies(16, seed=4, size=(256, 208), positive_rate=0.5)
    config = TrainConfig(epochs=2, batch_size=8, height=128, width=64, workers=1, threads=1, seed=3)
    runs = [tmp_path / "first", tmp_path / "second"]
    threads = torch.get_num_threads()
    for run in runs:
        train_run(config, data / "labels.csv", data, run, tmp_path / "cache")
    first, second = (torch.load(run / "best.pt", weights_only=True) for run in runs)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert (runs[0] / "oof.csv").read_text() == (runs[1] / "oof.csv").read_text()
    assert torch.get_num_threads() == threads  # training's thread count does not leak out

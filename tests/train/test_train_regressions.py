"""`train --ema --balanced --accumulate` really do what they say (issue 12, section 4): checked
through the command line against expectations computed here, not only that training ran."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the train extra is not installed")

from click.testing import CliRunner  # noqa: E402

from mammo_batch.synth import write_studies  # noqa: E402
from mammo_batch.train.cli import train  # noqa: E402

EPOCHS, BATCH, ACCUMULATE = 3, 4, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_studies(root, 24, seed=4, size=(256, 208))
    return root


def run_train(data: Path, out: Path, *options: str) -> tuple[list[dict], dict, dict]:
    args = ["--labels", str(data / "labels.csv"), "--images", str(data), "--size", "128x64",
            "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--workers", "1", "--no-augment",
            "--out", str(out), "--cache", str(out.parent / "cache"), *options]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    with (out / "metrics.csv").open() as handle:
        metrics = list(csv.DictReader(handle))
    summary = json.loads((out / "summary.json").read_text())
    return metrics, summary, torch.load(out / "last.pt", weights_only=True)


def test_ema_balanced_and_accumulation_take_effect(data, tmp_path, one_torch_thread):
    metrics, summary, last = run_train(data, tmp_path / "runs" / "on", "--ema", "0.9", "--balanced",
                                       "--accumulate", str(ACCUMULATE))
    n_train = summary["train_views"]

    # EMA: the averaged weights exist, differ from the raw ones, and are what best.pt holds.
    assert last["ema"] is not None, "--ema was ignored: no EMA weights in the checkpoint"
    differing = [k for k, v in last["model"].items()
                 if v.is_floating_point() and not torch.equal(v, last["ema"][k])]
    assert len(differing) >= len([v for v in last["model"].values() if v.is_floating_point()]) // 2
    best = torch.load(tmp_path / "runs" / "on" / "best.pt", weights_only=True)
    best_epoch = summary["best_epoch"]
    if best_epoch == EPOCHS - 1:  # saved after the last epoch: exactly the final EMA weights
        assert all(torch.equal(best[k], last["ema"][k]) for k in best)

    # Accumulation: ceil(batches / ACCUMULATE) optimizer steps per epoch, as AdamW itself counted.
    per_epoch = math.ceil(math.ceil(n_train / BATCH) / ACCUMULATE)
    adam_steps = {int(state["step"]) for state in last["optimizer"]["state"].values()}
    assert adam_steps == {EPOCHS * per_epoch}
    assert [int(row["optimizer_steps"]) for row in metrics] == [per_epoch] * EPOCHS

    # Balanced sampling: about half of the drawn views are positive, far from the natural rate.
    shares = [float(row["train_positive_share"]) for row in metrics]
    drawn = sum(shares) / len(shares)
    spread = 4 * math.sqrt(0.25 / (n_train * EPOCHS))  # 4 standard deviations of a fair draw
    assert abs(drawn - 0.5) < spread, (drawn, spread)


def test_without_the_options_nothing_of_it_happens(data, tmp_path, one_torch_thread):
    metrics, summary, last = run_train(data, tmp_path / "runs" / "off")
    n_train = summary["train_views"]
    assert last["ema"] is None
    adam_steps = {int(state["step"]) for state in last["optimizer"]["state"].values()}
    assert adam_steps == {EPOCHS * math.ceil(n_train / BATCH)}
    # Plain shuffling draws each training view once per epoch: the share is the natural rate.
    natural, counted = natural_positive_share(data, tmp_path / "runs" / "off")
    assert counted == n_train
    assert all(float(row["train_positive_share"]) == pytest.approx(natural, abs=1e-4) for row in metrics)
    assert abs(natural - 0.5) > 0.15  # so that the balanced test above means something


def natural_positive_share(data: Path, run: Path) -> tuple[float, int]:
    """Positive views among the training fold's views, from labels.csv, folds.csv and the manifest
    (the seed's rule: N -> 0, B -> 1, L/R -> that breast only)."""
    with (data / "labels.csv").open() as handle:
        labels = {row["AccessionNumber"]: row["Laterality"] for row in csv.DictReader(handle)}
    folds = {row["AccessionNumber"]: int(row["fold"]) for row in csv.DictReader((run / "folds.csv").open())}
    config = json.loads((run / "config.json").read_text())["config"]
    positives = total = 0
    for row in csv.DictReader((data / "manifest.csv").open()):
        accession = row["accession_number"]
        if folds.get(accession, config["fold"]) == config["fold"]:
            continue
        finding = labels[accession]
        positives += finding == "B" or finding == row["laterality"]
        total += 1
    return positives / total, total

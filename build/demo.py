"""`mammo-batch demo DIR`: the whole job on synthetic studies, end to end, on the CPU.

synthesize a training and a held-out set -> folds -> one tiny model per fold -> build the
bundle -> score the held-out set with the scoring API -> study AUC, recall rate,
throughput. The bundle says it is a synthetic demo, not a clinical model.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click
import pyarrow.parquet as pq
import torch

from mammo_batch.build.bundle import build_bundle
from mammo_batch.engine.api import ScoreSummary, score
from mammo_batch.engine.cli.options import parse_size
from mammo_batch.synth import write_studies
from mammo_batch.train.folds import make_folds, write_folds
from mammo_batch.train.labels import read_labels
from mammo_batch.train.loop import TrainConfig, train_run
from mammo_batch.train.metrics import auc

DEMO_DESCRIPTION = ("SYNTHETIC DEMO: tiny fold models trained on synthetic phantoms with planted "
                    "lesions by `mammo-batch demo`. Not a clinical model.")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--studies", type=click.IntRange(min=8), default=160, show_default=True,
              help="Synthetic training studies.")
@click.option("--test-studies", type=click.IntRange(min=4), default=60, show_default=True,
              help="Held-out synthetic studies to score.")
@click.option("--image-size", default="512x416", show_default=True, help="Synthetic image HxW.")
@click.option("--size", default="256x128", show_default=True, help="Model input HxW.")
@click.option("--folds", "n_folds", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--arch", default="tiny", show_default=True)
@click.option("--difficulty", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Lesion difficulty of the synthetic studies (0 = largest, most conspicuous).")
@click.option("--positive-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--window", type=click.Choice(["dicom", "minmax"]), default="minmax", show_default=True,
              help="VOI of the pixel path (minmax, as the seed: the files' tissue windows clip "
              "planted lesions together with dense tissue).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="torch threads for training and building: 1 is fastest for the tiny model on a "
              "busy CPU, and a fixed count makes the run repeatable on one machine.")
def demo(directory: Path, studies: int, test_studies: int, image_size: str, size: str, n_folds: int,
         epochs: int, arch: str, difficulty: float, positive_rate: float, window: str, seed: int,
         workers: int, threads: int) -> None:
    """Synthesize studies, train one model per fold, build the bundle, score held-out studies."""
    logging.getLogger("mammo_batch.train").setLevel(logging.INFO)
    started = time.monotonic()
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the build's exports and gates too, not only training
    try:
        _demo(directory, studies, test_studies, image_size, size, n_folds, epochs, arch, difficulty,
              positive_rate, window, seed, workers, threads, started)
    finally:
        torch.set_num_threads(torch_threads)


def _demo(directory: Path, studies: int, test_studies: int, image_size: str, size: str, n_folds: int,
          epochs: int, arch: str, difficulty: float, positive_rate: float, window: str, seed: int,
          workers: int, threads: int, started: float) -> None:
    image_hw, (height, width) = parse_size(image_size), parse_size(size)
    train_dir, test_dir = directory / "train", directory / "test"
    click.echo(f"1/4 synthesizing {studies} training and {test_studies} held-out studies")
    for folder, n, study_seed in ((train_dir, studies, seed), (test_dir, test_studies, seed + 1)):
        write_studies(folder, n, seed=study_seed, size=image_hw, difficulty=difficulty,
                      positive_rate=positive_rate, workers=workers or 2)
    labels = read_labels(train_dir / "labels.csv")
    folds_csv = directory / "folds.csv"
    write_folds(folds_csv, labels, make_folds(labels, n_folds, seed))

    runs = []
    for fold in range(n_folds):
        click.echo(f"2/4 training fold {fold + 1}/{n_folds} ({arch}, {height}x{width}, {epochs} epochs)")
        config = TrainConfig(arch=arch, height=height, width=width, fold=fold, n_folds=n_folds,
                             epochs=epochs, seed=seed, workers=workers, threads=threads, window=window)
        run = directory / "runs" / f"fold{fold}"
        summary = train_run(config, train_dir / "labels.csv", train_dir, run, directory / "cache",
                            folds_csv)
        click.echo(f"    fold {fold}: validation study AUC {summary['val_study_auc']:.3f}")
        runs.append(run)

    click.echo("3/4 building the bundle (ONNX + torch.export, parity checked)")
    # The FP16 and bf16 gates are recorded, never fatal (build/gates.py): a tiny fold whose FP16
    # copy misses on one CPU and not another cannot stop the demo, which scores with the FP32 ONNX.
    bundle = build_bundle(runs, directory / "bundle", name="synthetic-demo",
                          description=DEMO_DESCRIPTION)

    click.echo("4/4 scoring the held-out studies (mammo_batch.score)")
    scores_path = directory / "scores.parquet"
    scored = score([test_dir], out=scores_path, models=bundle, views_out=directory / "views.parquet",
                   rescore=True, workers=workers, progress=False)
    click.echo(f"    runtime: {scored.runtime}")
    report = held_out_report(scored, test_dir / "labels.csv")
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    (directory / "report.json").write_text(json.dumps(report, indent=2))
    click.echo(
        f"held-out study AUC {report['study_auc']:.3f} on {report['studies']} studies; recall rate "
        f"{report['recall_rate']:.2f} at threshold {report['threshold']:.3f}; scoring "
        f"{report['views_per_s']:.1f} views/s; total {report['wall_seconds']:.0f} s\n"
        f"bundle: {bundle}\nscores: {scores_path}\nviews: {directory / 'views.parquet'}\n"
        f"report: {directory / 'report.json'}")


def held_out_report(scored: ScoreSummary, labels_csv: Path) -> dict:
    """Study-level AUC and recall rate of a scoring run's output against a labels CSV."""
    table = pq.read_table(scored.out)
    labels = read_labels(labels_csv)
    rows = [r for r in table.to_pylist() if r["score"] is not None and r["study_key"] in labels]
    metadata = json.loads(pq.read_metadata(scored.out).metadata[b"mammo_batch"])
    return {
        "studies": len(rows),
        "study_auc": auc([labels[r["study_key"]].target for r in rows], [r["score"] for r in rows]),
        "recall_rate": sum(bool(r["recall"]) for r in rows) / max(1, len(rows)),
        "threshold": metadata["arguments"]["threshold"],  # the one score applied
        "views_per_s": scored.views_per_second,
        "runtime": scored.runtime,
    }

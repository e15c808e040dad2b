"""`mammo-batch train`: finetune one fold model (the `train` extra)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import click

from mammo_batch.engine.cli.options import parse_size
from mammo_batch.train.init_weights import InitWeightsError
from mammo_batch.train.loop import TrainConfig, train_run
from mammo_batch.train.metrics import constant_warning
from mammo_batch.train.models import create_model, list_archs


@click.command()
@click.option("--labels", "labels_csv", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Labels CSV in the seed's train.csv format.")
@click.option("--images", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of DICOM studies.")
@click.option("--arch", type=click.Choice(list_archs()), default="tiny", show_default=True)
@click.option("--size", default="256x128", show_default=True, help="Model input HxW.")
@click.option("--fold", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--n-folds", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--folds", "folds_csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Use these folds (a folds.csv) instead of making them.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The run folder (rerun with the same folder to resume).")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Preprocessing cache (default: OUT/../cache).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--accumulate", type=click.IntRange(min=1), default=1, show_default=True,
              help="Gradient accumulation steps.")
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--warmup-epochs", type=float, default=1.0, show_default=True)
@click.option("--balanced", is_flag=True, help="Sample positive and negative views equally.")
@click.option("--ema", type=float, default=0.0, show_default=True, help="EMA decay (0 = off).")
@click.option("--pos-weight", type=float, default=1.0, show_default=True)
@click.option("--window", type=click.Choice(["dicom", "minmax"]), default="dicom", show_default=True)
@click.option("--no-augment", is_flag=True)
@click.option("--amp", type=click.Choice(["auto", "bf16", "fp16", "off"]), default="auto",
              show_default=True, help="Mixed precision on CUDA.")
@click.option("--init", metavar="[FORMAT:]PATH",
              help="Initial weights: FORMAT:PATH with FORMAT one of mammo-clip, rsna-convnext, mirai, "
              "seed (docs/importers.md), or a bare path to a state dict (weights_only=True).")
@click.option("--trust-pickle", is_flag=True,
              help="Allow reading a whole pickled model (Mirai), or a checkpoint holding objects beyond "
              "plain data, with the restricted unpickler: it builds no foreign classes and runs no "
              "foreign code. Not needed for omegaconf configs, numpy scalars or argparse.Namespace.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="torch threads while training (0 = torch's default). A fixed count makes a run "
              "repeatable on one machine; 1 is fastest for small models on a busy CPU.")
def train(labels_csv: Path, images: Path, arch: str, size: str, fold: int, n_folds: int,
          folds_csv: Path | None, out: Path, cache_dir: Path | None, epochs: int, batch_size: int,
          accumulate: int, lr: float, weight_decay: float, warmup_epochs: float, balanced: bool,
          ema: float, pos_weight: float, window: str, no_augment: bool, amp: str,
          init: str | None, trust_pickle: bool, seed: int, workers: int, threads: int) -> None:
    """Finetune one fold model; model selection by study-level AUC on the held-out fold."""
    height, width = parse_size(size)
    config = TrainConfig(arch=arch, height=height, width=width, fold=fold, n_folds=n_folds,
                         epochs=epochs, batch_size=batch_size, accumulate=accumulate, lr=lr,
                         weight_decay=weight_decay, warmup_epochs=warmup_epochs, balanced=balanced,
                         ema=ema, pos_weight=pos_weight, seed=seed, workers=workers, threads=threads,
                         window=window, augment=not no_augment, amp=amp, init=init, trust_pickle=trust_pickle)
    logging.getLogger("mammo_batch.train").setLevel(logging.INFO)
    if init:
        _check_init(init, arch, trust_pickle)
    try:
        summary = train_run(config, labels_csv, images, out, cache_dir or out.parent / "cache",
                            folds_csv)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"fold {fold}: best study AUC {summary['val_study_auc']:.3f} at epoch "
               f"{summary['best_epoch'] + 1}; run in {out}")
    warning = constant_warning(_oof_probs(out / "oof.csv"))
    if warning:
        click.echo(f"Warning: {warning}", err=True)


def _oof_probs(path: Path) -> list[float]:
    with path.open() as handle:
        return [float(row["prob"]) for row in csv.DictReader(handle)]


def _check_init(spec: str, arch: str, trust_pickle: bool) -> None:
    """Read and fit the initial weights before any preprocessing: a bad file exits 2 at once."""
    try:
        create_model(arch, init=spec, trust_pickle=trust_pickle)
    except InitWeightsError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None

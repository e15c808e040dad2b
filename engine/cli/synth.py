"""`mammo-batch synth`: write synthetic screening studies as DICOM files."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from mammo_batch.synth import LAYOUTS, VARIANTS, write_studies
from mammo_batch.synth.variants import EXTRA_VARIANTS


def _size(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, int]:
    """'3328x2560' -> (3328, 2560) as (rows, columns)."""
    try:
        rows, cols = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 256x208, got {value!r}") from None
    if rows < 64 or cols < 64:
        raise click.BadParameter(f"each side must be at least 64 pixels, got {value!r}")
    return rows, cols


@click.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--studies",
    "n_studies",
    type=click.IntRange(0, 999_999),
    default=10,
    show_default=True,
    help="Number of studies to write.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Same seed and options -> byte-identical files.",
)
@click.option(
    "--size",
    default="3328x2560",
    show_default=True,
    callback=_size,
    help="Image size HxW (rows x columns); phantom features scale with it.",
)
@click.option(
    "--difficulty",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="0 = large, high-contrast lesions; 1 = small, faint ones.",
)
@click.option(
    "--positive-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="Fraction of studies with a planted lesion.",
)
@click.option(
    "--layout",
    type=click.Choice(LAYOUTS),
    default="mixed",
    show_default=True,
    help="accession: <Accession>/<SOPUID>.dcm; nested: <PatientID>/STUDYn/SERIESn/IMk; mixed: some of each.",
)
@click.option(
    "--variant",
    "variants",
    type=click.Choice(VARIANTS + EXTRA_VARIANTS),
    multiple=True,
    help="Only these vendor-like variants (repeatable; default: all but htj2k, which needs imagecodecs).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes rendering studies in parallel (output is the same).",
)
def synth(
    out: Path,
    n_studies: int,
    seed: int,
    size: tuple[int, int],
    difficulty: float,
    positive_rate: float,
    layout: str,
    variants: tuple[str, ...],
    workers: int,
) -> None:
    """Write synthetic screening mammography studies under OUT, with labels.csv (Kaggle SPR
    train.csv format) and manifest.csv (one row per file, ground truth for readers).

    No real patient data: names, IDs and dates are synthetic.
    """
    # openjpeg logs every tile it encodes at INFO; keep the command's output readable.
    logging.getLogger("openjpeg").setLevel(logging.WARNING)
    started = time.perf_counter()
    summary = write_studies(
        out,
        n_studies,
        seed,
        size=size,
        difficulty=difficulty,
        positive_rate=positive_rate,
        layout=layout,
        variants=variants or None,
        workers=workers,
    )
    click.echo(
        f"wrote {summary.n_files} files: {summary.n_studies} studies of {summary.n_patients} "
        f"patients ({summary.n_positive} positive) in {time.perf_counter() - started:.1f} s"
    )
    click.echo(f"labels:   {summary.labels_csv}")
    click.echo(f"manifest: {summary.manifest_csv}")

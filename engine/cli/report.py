"""`mammo-batch report scores.parquet [--views views.parquet] --out report.html`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammo_batch.engine.report import ReportError, write_report
from mammo_batch.engine.report.drift import EXIT_DRIFT, RED, compute_drift
from mammo_batch.engine.results.files import ResultsFileError

EXIT_USAGE = 2


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--views", "views", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The run's views.parquet: adds file counts, reasons and the failed files.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML page to write (one self-contained file).")
@click.option("--redact", is_flag=True,
              help="Show study keys and paths as short hashes (a report to share outside the site).")
@click.option("--reference", "references", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Past scores.parquet files for the drift reference (repeatable; their views files beside "
              "them are used when present). The file's own earlier nights are always part of it.")
@click.option("--target-recall", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="The programme's target recall rate, e.g. 0.05: tonight's rate is judged against it.")
@click.option("--fail-on-drift", is_flag=True, help=f"Exit {EXIT_DRIFT} when the drift line is red.")
def report(scores: Path, views: Path | None, out: Path, redact: bool, references: tuple[Path, ...],
           target_recall: float | None, fail_on_drift: bool) -> None:
    """Write the nightly report of a run: one HTML page, plots inside, no patient identifiers.

    A drift line (green / amber / red) heads the page: tonight's scores against the reference period
    (docs/pacs.md). Exit status: 0 written, 2 usage error, 4 drift red with --fail-on-drift.
    """
    try:
        drift = compute_drift(scores, views, references, target_recall)
        path = write_report(scores, out, views, redact=redact, drift=drift)
    except (ReportError, ResultsFileError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"wrote {path}; drift: {drift.status}", err=True)
    if fail_on_drift and drift.status == RED:
        sys.exit(EXIT_DRIFT)

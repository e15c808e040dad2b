"""`mammo-batch report scores.parquet [--views views.parquet] --out report.html`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammo_batch.engine.report import ReportError, write_report

EXIT_USAGE = 2


@click.command()
@click.argument("scores", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--views", "views", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The run's views.parquet: adds file counts, reasons and the failed files.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML page to write (one self-contained file).")
@click.option("--redact", is_flag=True,
              help="Show study keys and paths as short hashes (a report to share outside the site).")
def report(scores: Path, views: Path | None, out: Path, redact: bool) -> None:
    """Write the nightly report of a run: one HTML page, plots inside, no patient identifiers."""
    try:
        path = write_report(scores, out, views, redact=redact)
    except (ReportError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"wrote {path}", err=True)

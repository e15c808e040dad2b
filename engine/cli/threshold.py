"""`mammo-batch threshold SCORES... --recall-rate 0.05 [--window FROM..TO] [--bundle B --out NEW]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mammo_batch.engine.bundle import BundleError
from mammo_batch.engine.results.files import ResultsFileError
from mammo_batch.engine.results.threshold import (
    RULE,
    ThresholdError,
    compute_threshold,
    parse_window,
    write_bundle_with_threshold,
)

EXIT_USAGE = 2


@click.command()
@click.argument("scores", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recall-rate", type=click.FloatRange(min=0, max=1, min_open=True), required=True,
              help="Target share of studies recalled, e.g. 0.05.")
@click.option("--window", default=None, help="Study dates FROM..TO (YYYY-MM-DD, either side may be empty).")
@click.option("--bundle", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Write a copy of this bundle with the threshold (needs --out).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="The new bundle folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def threshold(scores: tuple[Path, ...], recall_rate: float, window: str | None, bundle: Path | None,
              out: Path | None, as_json: bool) -> None:
    """The threshold that would have recalled --recall-rate of the scored studies in SCORES (past
    scores.parquet files; each study counted once) over --window.

    Rule: the k-th highest study score, k = ceil(rate x studies). Prints it (for `score --threshold`),
    or writes it into a copy of --bundle at --out, with the rule, window and counts recorded.
    """
    if (bundle is None) != (out is None):
        click.echo("Error: --bundle and --out go together", err=True)
        sys.exit(EXIT_USAGE)
    try:
        result = compute_threshold(scores, recall_rate, parse_window(window))
        if bundle is not None:
            write_bundle_with_threshold(bundle, out, result)
    except (ThresholdError, ResultsFileError, BundleError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        click.echo(json.dumps(vars(result)))
    else:
        click.echo(f"--threshold {result.threshold!r}")
        click.echo(f"{result.recalled} of {result.studies} studies recalled ({100 * result.realised_rate:.2f}%, "
                   f"target {100 * recall_rate:.2f}%), study dates {result.window}; rule: {RULE}", err=True)
    if out is not None:
        click.echo(f"wrote {out}", err=True)

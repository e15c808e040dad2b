"""`mammo-batch pull URL --since DATE [--until DATE] --to DIR`: MG studies from a DICOMweb PACS into a folder."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click

from mammo_batch.engine.cli.options import pacs_extra_or_exit
from mammo_batch.engine.pacs.credentials import CredentialsError, describe_auth

EXIT_OK, EXIT_CRASH, EXIT_USAGE, EXIT_INCOMPLETE = 0, 1, 2, 3


@click.command()
@click.argument("url")
@click.option("--since", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First study date (YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last study date (default: open).")
@click.option("--to", "to", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The folder to fill (then `mammo-batch score` it); rerun to resume.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def pull(url: str, since: datetime, until: datetime | None, to: Path, quiet: bool) -> None:
    """Fetch the MG studies dated --since..--until from the DICOMweb root URL into --to.

    Credentials come from the environment only: $MAMMO_BATCH_DICOMWEB_TOKEN (bearer), or
    $MAMMO_BATCH_DICOMWEB_USER and $MAMMO_BATCH_DICOMWEB_PASSWORD (HTTP basic).
    Exit status: 0 all fetched, 3 some instances failed, 2 usage error, 1 the search failed
    (authentication, network); rerun to resume.
    """
    pacs_extra_or_exit("pull")
    from tqdm import tqdm

    from mammo_batch.engine.pacs.dicomweb import dicomweb_client
    from mammo_batch.engine.pacs.pull import PullError
    from mammo_batch.engine.pacs.pull import pull as pull_studies

    try:
        client = dicomweb_client(url)
    except CredentialsError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"pull from {url} ({describe_auth()})", err=True)
    try:
        with tqdm(unit="instance", disable=quiet) as bar:
            counts = pull_studies(client, since.date(), until.date() if until else None, to, progress=bar.update)
    except PullError as exc:  # what was fetched stays; a rerun resumes
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_CRASH)
    click.echo(f"{counts.studies} studies, {counts.instances} MG instances: {counts.fetched} fetched, "
               f"{counts.skipped} already in {to}, {counts.failed} failed", err=True)
    sys.exit(EXIT_INCOMPLETE if counts.failed else EXIT_OK)

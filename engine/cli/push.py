"""`mammo-batch push DIR DESTINATION`: SR files into a PACS (STOW-RS, or C-STORE to dicom://AET@host:port)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammo_batch.engine.cli.options import pacs_extra_or_exit
from mammo_batch.engine.pacs.credentials import CredentialsError

EXIT_OK, EXIT_USAGE, EXIT_INCOMPLETE = 0, 2, 3


@click.command()
@click.argument("sr_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("destination")
@click.option("--calling-aet", default="MAMMOBATCH", show_default=True, help="Our AE title (C-STORE only).")
@click.option("--resend", is_flag=True, help="Send every SR again, even those this destination accepted before.")
def push(sr_dir: Path, destination: str, calling_aet: str, resend: bool) -> None:
    """Send the SR files of SR_DIR (written by `score --sr-out`) to DESTINATION: a DICOMweb root URL
    (STOW-RS) or dicom://AET@host:port (DIMSE C-STORE).

    DICOMweb credentials come from the environment only: $MAMMO_BATCH_DICOMWEB_TOKEN (bearer), or
    $MAMMO_BATCH_DICOMWEB_USER and $MAMMO_BATCH_DICOMWEB_PASSWORD (HTTP basic).
    Exit status: 0 all stored, 3 some not stored, 2 usage error.
    """
    pacs_extra_or_exit("push")
    from mammo_batch.engine.pacs.push import PushUsageError
    from mammo_batch.engine.pacs.push import push as push_srs

    try:
        counts = push_srs(sr_dir, destination, calling_aet=calling_aet, resend=resend)
    except (CredentialsError, PushUsageError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"{counts.files} SR files: {counts.sent} sent, {counts.already} accepted before, "
               f"{counts.failed} failed", err=True)
    sys.exit(EXIT_INCOMPLETE if counts.failed else EXIT_OK)

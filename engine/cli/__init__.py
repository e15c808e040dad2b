"""The `mammo-batch` command line: one click group, one file per command."""

from __future__ import annotations

import logging

import click

from mammo_batch import __version__
from mammo_batch.engine.cli.bundle import bundle
from mammo_batch.engine.cli.doctor import doctor
from mammo_batch.engine.cli.inspect import inspect
from mammo_batch.engine.cli.preview import preview
from mammo_batch.engine.cli.pull import pull
from mammo_batch.engine.cli.push import push
from mammo_batch.engine.cli.report import report
from mammo_batch.engine.cli.score import score_command
from mammo_batch.engine.cli.synth import synth
from mammo_batch.engine.cli.threshold import threshold


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mammo-batch")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Batch inference for screening mammography recall models."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("openjpeg").setLevel(logging.WARNING)  # one INFO line per encoded tile
    for chatty in ("highdicom", "dicomweb_client", "pynetdicom"):  # a line per module copied, request, PDU
        logging.getLogger(chatty).setLevel(logging.WARNING)


cli.add_command(score_command, "score")
cli.add_command(inspect)
cli.add_command(preview)
cli.add_command(synth)
cli.add_command(bundle)
cli.add_command(report)
cli.add_command(pull)
cli.add_command(push)
cli.add_command(threshold)
cli.add_command(doctor)


def main() -> None:
    cli(prog_name="mammo-batch")

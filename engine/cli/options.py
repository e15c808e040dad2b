"""Options and parsers shared by several commands."""

from __future__ import annotations

import sys

import click

from mammo_batch.engine.pacs.extra import PacsExtraMissing, require_pacs_extra
from mammo_batch.engine.studies import STUDY_KEYS

EXIT_USAGE = 2


def pacs_extra_or_exit(command: str) -> None:
    """A PACS command without the `pacs` extra: a usage error (exit 2) naming what to install."""
    try:
        require_pacs_extra(f"`mammo-batch {command}`")
    except PacsExtraMissing as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def parse_size(value: str) -> tuple[int, int]:
    """'1024x512' -> (1024, 512) as (height, width)."""
    try:
        height, width = (int(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 1024x512, got {value!r}") from None
    if height <= 0 or width <= 0:
        raise click.BadParameter(f"sizes must be positive, got {value!r}")
    return height, width


def parse_views(value: str | None) -> frozenset[str] | None:
    """'CC,MLO' -> {'CC', 'MLO'}; None keeps every view."""
    if not value:
        return None
    return frozenset(v.strip().upper() for v in value.split(",") if v.strip())


study_key_option = click.option(
    "--study-key",
    type=click.Choice(STUDY_KEYS),
    default="auto",
    show_default=True,
    help="Group views into studies by AccessionNumber else StudyInstanceUID (auto), "
    "one of them only, or by parent folder.",
)
view_filter_option = click.option(
    "--view-filter", "view_filter", default=None,
    help="Only these views, e.g. CC,MLO (default: every view the policy allows).",
)
workers_option = click.option(
    "--workers", type=click.IntRange(min=0), default=0, show_default=True,
    help="Worker processes (0 = one per CPU core).",
)

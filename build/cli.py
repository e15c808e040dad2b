"""`mammo-batch build RUN... --out BUNDLE` (the `train` extra)."""

from __future__ import annotations

from pathlib import Path

import click

from mammo_batch.build.bundle import BuildError, build_bundle
from mammo_batch.build.parity import ParityError
from mammo_batch.build.staging import StagingError
from mammo_batch.engine.bundle import BundleError


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False,
                                                                   path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The bundle directory to write.")
@click.option("--threshold-at", "threshold_rule", default="specificity=0.9", show_default=True,
              help="Operating point on the pooled out-of-fold study scores: "
              "specificity=S or sensitivity=S.")
@click.option("--name", default="mammo-batch-ensemble", show_default=True)
@click.option("--description", default="", help="Free text recorded in bundle.json.")
def build(runs: tuple[Path, ...], out: Path, threshold_rule: str, name: str, description: str) -> None:
    """Export each run to ONNX, torch.export and FP16 ONNX, check them against the eager model
    (the FP16 and bf16 gates are recorded, never fatal), choose the threshold, and write a bundle
    that `mammo-batch score --models` reads. An existing bundle at --out is replaced only when
    everything passed."""
    try:
        path = build_bundle(list(runs), out, threshold_rule, name, description)
    except (BuildError, ParityError, StagingError, BundleError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"wrote bundle {path} ({len(runs)} members)")

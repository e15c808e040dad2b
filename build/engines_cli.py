"""`mammo-batch build-engines BUNDLE [--batch-sizes 1,8,16] [--workspace-gb N]` (needs TensorRT and a GPU)."""

from __future__ import annotations

from pathlib import Path

import click

from mammo_batch.engine.bundle import BundleError
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError


@click.command("build-engines")
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--batch-sizes", default="1,8,16", show_default=True,
              help="Batch sizes of the optimization profile: its min, optimum and max are taken from these.")
@click.option("--workspace-gb", default=8.0, show_default=True, type=click.FloatRange(min=0.25))
@click.option("--views", "views", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="DICOM views to check the engines on (repeatable; default: synthetic studies).")
def build_engines_command(bundle: Path, batch_sizes: str, workspace_gb: float, views: tuple[Path, ...]) -> None:
    """Compile TensorRT engines for THIS GPU from the bundle's FP16 ONNX, check them against ONNX
    Runtime on real views and record them in bundle.json."""
    from mammo_batch.build.engines import EngineBuildError, build_engines
    from mammo_batch.build.staging import StagingError

    try:
        sizes = tuple(int(b) for b in batch_sizes.split(","))
        if not sizes or min(sizes) < 1:
            raise ValueError
    except ValueError:
        raise click.BadParameter(f"expected positive integers separated by commas, got {batch_sizes!r}") from None
    try:
        entries = build_engines(bundle, sizes, workspace_gb, list(views) or None)
    except (EngineBuildError, RuntimeUnavailableError, BundleError, StagingError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    for entry in entries:
        click.echo(f"{entry['file']}: sm{entry['compute_capability']} TensorRT {entry['tensorrt_version']} "
                   f"{entry['precision']}, max |prob diff| vs ONNX Runtime {entry['max_diff']:.2e}")

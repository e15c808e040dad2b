"""`mammo-batch bench STUDIES [--models BUNDLE | --arch A[:HxW] ... --size HxW] --out result.json`."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import click

from mammo_batch.bench.compare import BenchSettings, compare, format_table
from mammo_batch.bench.members import arch_name, random_member_bundle
from mammo_batch.engine.bundle import BundleError
from mammo_batch.engine.runtimes import CHOICES, RuntimeUnavailableError
from mammo_batch.engine.studies import STUDY_KEYS

EXIT_USAGE = 2


def parse_size(text: str) -> tuple[int, int]:
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) < 1 or int(width) < 1:
        raise click.BadParameter(f"expected HxW, e.g. 1536x768, got {text!r}")
    return int(height), int(width)


def parse_arch(text: str, default_size: str) -> tuple[str, tuple[int, int]]:
    """`ARCH` or `ARCH:HxW` -> (ARCH, (H, W)); without its own size, `default_size`."""
    arch, _, size = text.partition(":")
    return arch, parse_size(size or default_size)


@click.command()
@click.argument("studies", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--models", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A model bundle (e.g. the demo's). Its members need torch artifacts (the seed side "
              "runs torch).")
@click.option("--arch", "archs", multiple=True, help="Instead of --models: a random-weight member of this "
              "architecture, e.g. tf_efficientnet_b2, or with its own input size, convnext_small:2048x1024; "
              "repeat for an ensemble. Exported to a temporary bundle.")
@click.option("--size", default="1536x768", show_default=True,
              help="The input HxW of an --arch member given without one.")
@click.option("--runtime", "runtimes", multiple=True, default=("auto",), show_default=True,
              type=click.Choice(CHOICES), help="Our runtime; repeat to time several in one run.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The result JSON, e.g. benchmarks/results/bench_vs_seed.json.")
@click.option("--workers", type=click.IntRange(min=0), default=0, help="Decode processes, both sides "
              "(default: one per core).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads, both sides (default: one per core).")
@click.option("--study-key", type=click.Choice(STUDY_KEYS), default="auto", show_default=True)
@click.option("--no-seed", is_flag=True, help="Time ours only (e.g. a slow member on a few views).")
@click.option("--note", default="", help="Free text kept with the numbers, e.g. what else ran.")
def bench(studies: tuple[str, ...], models: Path | None, archs: tuple[str, ...], size: str,
          runtimes: tuple[str, ...], out: Path, workers: int, batch_size: int, threads: int | None,
          study_key: str, no_seed: bool, note: str) -> None:
    """Time mammo-batch against the seed's pipeline on the same STUDIES and members.

    Prints views/s of both, the ratio and our stage breakdown; writes the numbers to --out.
    A benchmark: scores from random-weight members (--arch) mean nothing.
    """
    if (models is None) == (not archs):
        _usage("give exactly one of --models BUNDLE or --arch ARCH")
    members = [parse_arch(text, size) for text in archs]
    logging.getLogger("mammo_batch").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="mammo-batch-bench-") as tmp:
        work = Path(tmp)
        try:
            if members:
                for arch, _ in members:
                    arch_name(arch)  # a usage error before minutes of export
                click.echo(f"exporting random-weight {_label(members)} ...", err=True)
                models = random_member_bundle(members, work / "bundle")
            settings = BenchSettings(paths=list(studies), bundle_dir=models, runtimes=runtimes,
                                     workers=workers, batch_size=batch_size, threads=threads,
                                     study_key=study_key, seed_side=not no_seed, note=note)
            result = compare(settings, work)
        except (BundleError, RuntimeUnavailableError, ValueError) as exc:
            _usage(str(exc))
    if members:
        result["settings"]["bundle_dir"] = f"temporary: random-weight {_label(members)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    click.echo(format_table(result))
    click.echo(f"wrote {out}", err=True)


def _label(members: list[tuple[str, tuple[int, int]]]) -> str:
    return ", ".join(f"{arch} {height}x{width}" for arch, (height, width) in members)


def _usage(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(EXIT_USAGE)

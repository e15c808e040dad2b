"""`mammo-batch score PATH... --out scores.parquet --models BUNDLE`: the main job.

A thin shell over `mammo_batch.score` (engine/api.py): parse, call, print, exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mammo_batch.engine.api import (
    ENGINES,
    EXIT_CRASH,
    EXIT_USAGE,
    ScoreOptions,
    ScoreSummary,
    ScoreUsageError,
    score,
)
from mammo_batch.engine.cli.options import parse_views, study_key_option, view_filter_option, workers_option
from mammo_batch.engine.dicom.decoders import DECODERS, decoder_help
from mammo_batch.engine.results.aggregate import BREAST_AGGS, STUDY_AGGS
from mammo_batch.engine.runtimes import CHOICES as RUNTIMES
from mammo_batch.engine.runtimes import runtime_help

MODELS_ENV = "MAMMO_BATCH_MODELS"


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="scores.parquet: one row per study (rerun with the same file to resume).")
@click.option("--models", "models", envvar=MODELS_ENV, required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help=f"The model bundle directory (or ${MODELS_ENV}).")
@click.option("--views", "views_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write views.parquet: one row per file seen, with per-member probabilities.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="auto",
              show_default=True, help=runtime_help())
@click.option("--decoder", type=click.Choice(DECODERS), default="auto", show_default=True,
              help=decoder_help())
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (default: one per core).")
@click.option("--breast-agg", type=click.Choice(BREAST_AGGS), default=None,
              help="Views -> breast (default: the bundle's rule).")
@click.option("--study-agg", type=click.Choice(STUDY_AGGS), default=None,
              help="Breasts -> study; max-image = max over all views (default: the bundle's rule).")
@click.option("--threshold", type=float, default=None, help="recall = score >= threshold, from 0 to 1 "
              "(default: the bundle's).")
@click.option("--rescore", is_flag=True, help="Score every study, even unchanged ones.")
@click.option("--flush-every", type=click.IntRange(min=1), default=50, show_default=True,
              help="Write a journal part after this many completed studies.")
@click.option("--time-limit", "time_limit_s", type=click.FloatRange(min=1), default=300.0, show_default=True,
              help="Seconds one file may take to decode and prepare before it is failed.")
@click.option("--report", "report_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the nightly report: one self-contained HTML page (see `mammo-batch report`).")
@click.option("--sr-out", "sr_out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write one DICOM SR per scored study whose result changed into this folder, for "
              "`mammo-batch push` (the pacs extra; docs/pacs.md).")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="local: this machine; ray: a Ray cluster (the `ray` extra; docs/ray.md).")
@click.option("--ray-address", envvar="RAY_ADDRESS", default=None,
              help="--engine ray: the cluster (or $RAY_ADDRESS); default: a local Ray started for the run.")
@click.option("--max-studies", type=int, default=None,
              help="Score at most N studies tonight (a time-boxed night); the next run scores the rest.")
@study_key_option
@view_filter_option
@workers_option
def score_command(paths, out: Path, models: Path, views_out: Path | None, runtime: str, batch_size: int,
                  threads: int | None, breast_agg: str | None, study_agg: str | None, threshold: float | None,
                  rescore: bool, flush_every: int, time_limit_s: float, report_out: Path | None,
                  sr_out: Path | None, quiet: bool, engine: str, ray_address: str | None, study_key: str,
                  view_filter: str | None, workers: int, decoder: str, max_studies: int | None) -> None:
    """Score every study under PATHS with the ensemble in --models and write --out.

    Exit status: 0 all studies ok, 3 finished with failed or partial studies,
    2 usage or configuration error, 1 run-level crash, 128+N stopped by signal N (rerun to resume).
    """
    options = ScoreOptions(views_out=views_out, runtime=runtime, threads=threads, workers=workers,
                           batch_size=batch_size, breast_agg=breast_agg, study_agg=study_agg,
                           threshold=threshold, study_key=study_key, view_filter=parse_views(view_filter),
                           rescore=rescore, flush_every=flush_every, time_limit_s=time_limit_s,
                           report_out=report_out, sr_out=sr_out, progress=not quiet, decoder=decoder,
                           engine=engine, ray_address=ray_address, max_studies=max_studies)
    try:
        summary = score(paths, out=out, models=models, options=options)
    except ScoreUsageError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:  # disk full, output volume gone: the previous outputs are intact (atomic writes)
        click.echo(f"Error: cannot write the results: {exc.strerror or exc} ({exc.filename or out}); the "
                   "previous outputs are unchanged and a rerun resumes from the journal", err=True)
        sys.exit(EXIT_CRASH)
    # The summary is the command's result: stdout, so `score ... > nightly.log` keeps it. Progress,
    # warnings (a stop included: the API logs it) and errors stay on stderr.
    click.echo(describe(summary))
    sys.exit(summary.exit_code)


def describe(summary: ScoreSummary) -> str:
    """The run summary, a few lines for people."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.counts.items())) or "nothing to score"
    lines = [f"runtime: {summary.runtime}"]
    if summary.cluster:
        c = summary.cluster
        lines.append(f"engine ray: {c['nodes_used']} of {c['nodes']} nodes, {c['actors']} scorer actors, "
                     f"{c['gpus_used']} of {c['gpus']} GPUs used")
        if c["runtimes"] and c["runtimes"] != [summary.runtime]:  # actors pick their runtime on their node
            lines.append(f"scorer actors' runtime: {'; '.join(c['runtimes'])}")
    files = ", ".join(f"{n} {what}" for what, n in summary.file_counts.items() if n)
    lines += [f"{summary.files} files under the input paths ({files or 'none'})",
              f"{summary.studies} studies: {summary.scored} scored, {summary.kept} unchanged",
              f"scored {summary.views} views in {summary.timings.get('scoring_s', 0):.1f} s "
              f"({summary.views_per_second:.2f} views/s); studies under the input paths: {counts}"]
    if summary.merged:
        shown = ", ".join(f"{old} merged into {new}" for old, new in sorted(summary.merged.items())[:5])
        more = f" and {len(summary.merged) - 5} more" if len(summary.merged) > 5 else ""
        lines.append(f"{len(summary.merged)} study keys retired, their files now in another study: {shown}{more}")
    not_seen = summary.output_counts.get("not_seen", 0)
    if not_seen:
        lines.append(f"{not_seen} studies in {summary.out} have no file left (deleted, or not found where they "
                     "were): kept as they were, with their last_seen time")
    written = [summary.out] + [p for p in (summary.views_out, summary.report_out) if p is not None]
    lines.append("wrote " + ", ".join(map(str, written)))
    if summary.stopped:
        lines.append(summary.stopped)
    return "\n".join(lines)

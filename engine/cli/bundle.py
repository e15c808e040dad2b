"""`mammo-batch bundle show BUNDLE`: what a model bundle holds, after validating it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mammo_batch.engine.bundle import Bundle, BundleError, Member, bundle_document, load_bundle


class ConfigError(click.ClickException):
    """A usage or configuration error (bad bundle, ...): exit code 2, as DESIGN.md says.

    click.UsageError would also exit 2, but it prints the command's usage, which is noise
    when the arguments were right and the bundle is wrong.
    """

    exit_code = 2


@click.group()
def bundle() -> None:
    """Inspect model bundles (a directory with bundle.json and the members' models)."""


@bundle.command()
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
def show(bundle_dir: Path, as_json: bool) -> None:
    """Validate BUNDLE (checksums included) and describe it and its members."""
    try:
        loaded = load_bundle(bundle_dir)
    except BundleError as e:
        raise ConfigError(str(e)) from None
    click.echo(json.dumps(to_json(loaded), indent=2) if as_json else render(loaded))


def to_json(bundle: Bundle) -> dict:
    """The bundle as bundle.json has it (the one serialiser), plus its id and directory."""
    return {"id": bundle.id, "path": str(bundle.path), **bundle_document(bundle)}


def render(bundle: Bundle) -> str:
    settings = bundle.settings
    lines = [
        f"{bundle.name}  ({bundle.id})",
        f"  path:        {bundle.path}",
        f"  created:     {bundle.created}",
        f"  description: {bundle.description or '-'}",
        f"  threshold:   {bundle.threshold:g} (recall when the study score >= threshold)",
        f"  ensemble:    {bundle.ensemble} of the members' probabilities per view",
        f"  aggregation: breast = {bundle.aggregation['breast']} of its views; "
        f"study = {_study_rule(bundle.aggregation['study'])}",
        f"  pixels:      window {settings.window}, crop {'on' if settings.crop else 'off'}, "
        f"chest wall left, model input {settings.dtype}",
        "",
        _table(["member", "fold", "arch", "input", "artifacts", "metrics"],
               [_row(member) for member in bundle.members]),
    ]
    return "\n".join(lines)


def _study_rule(rule: str) -> str:
    return "max over all its views" if rule == "max-image" else f"{rule} over breasts"


def _row(member: Member) -> list[str]:
    artifacts = member.artifacts
    present = ["onnx"] + (["torch"] if artifacts.torch else [])
    if artifacts.onnx_fp16:
        missed = member.fp16_gate is not None and not member.fp16_gate.passed
        present.append("onnx_fp16(gate missed)" if missed else "onnx_fp16")
    if member.bf16_gate is not None:
        gate = member.bf16_gate
        present.append("bf16 gate " + ("passed" if gate.passed else "skipped" if gate.views == 0 else "missed"))
    present += [f"tensorrt(sm{e.compute_capability}, {e.precision})" for e in artifacts.tensorrt]
    return [
        member.name,
        "-" if member.fold is None else str(member.fold),
        member.arch,
        f"{member.input.height}x{member.input.width} {member.input.dtype}",
        ", ".join(present),
        ", ".join(f"{k}={v:.4g}" for k, v in member.metrics.items()) or "-",
    ]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )

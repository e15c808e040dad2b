"""`mammo-batch doctor [--models BUNDLE] [--json]`: each runtime and decoder, and why it can or
cannot run on this machine (for this bundle), read from the registries; what auto would pick."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mammo_batch.engine.bundle import Bundle, BundleError, load_bundle
from mammo_batch.engine.cli.bundle import ConfigError
from mammo_batch.engine.dicom.decoders.registry import DECODERS, choose_decoder
from mammo_batch.engine.runtimes.registry import RUNTIMES, select_runtime


@click.command()
@click.option("--models", type=click.Path(path_type=Path), help="Also judge the runtimes for this bundle "
              "(its artifacts and gates), and say which one auto picks for it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
def doctor(models: Path | None, as_json: bool) -> None:
    """List each runtime and decoder with why it can or cannot run here."""
    try:
        bundle = load_bundle(models) if models else None
    except BundleError as exc:
        raise ConfigError(str(exc)) from None
    report = diagnose(bundle)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))


def diagnose(bundle: Bundle | None) -> dict:
    """The registries' verdicts for this machine (and `bundle`), in auto's order."""
    runtimes = [{"name": spec.name, "device": spec.device, "accepts_device_arrays": spec.accepts_device_arrays,
                 "summary": spec.summary, "why_not": spec.why_unavailable(bundle)} for spec in RUNTIMES]
    decoders = [{"name": spec.name, "device": spec.device, "in_auto": spec.in_auto, "summary": spec.summary,
                 "why_not": spec.why_unavailable(spec.device)} for spec in DECODERS]
    report = {"runtimes": runtimes, "decoders": decoders, "auto_decoder": choose_decoder("auto").reason}
    if bundle is not None:
        report["bundle"] = bundle.id
        report["auto_runtime"] = select_runtime("auto", bundle).reason
    return report


def render(report: dict) -> str:
    lines = ["runtimes (auto takes the first that can run the bundle, in this order):"]
    lines += _rows(report["runtimes"], lambda r: "device arrays" if r["accepts_device_arrays"] else "host arrays")
    if "auto_runtime" in report:
        lines.append(f"  auto for {report['bundle']}: {report['auto_runtime']}")
    lines.append("decoders:")
    lines += _rows(report["decoders"], lambda r: "auto" if r["in_auto"] else "on request")
    lines.append(f"  auto: {report['auto_decoder']}")
    return "\n".join(lines)


def _rows(entries: list[dict], note) -> list[str]:
    width = max(len(e["name"]) for e in entries)
    return [f"  {e['name']:<{width}}  {e['device']:<4}  {note(e):<13}  "
            f"{'yes' if e['why_not'] is None else 'no: ' + e['why_not']}  ({e['summary']})" for e in entries]

"""The report page: one HTML file, styles inline, plots as data URIs; `write_report`."""

from __future__ import annotations

import math
import os
from html import escape
from pathlib import Path

from mammo_batch.engine.report import plots
from mammo_batch.engine.report.data import MAX_LISTED, SCORE_BINS, ReportData, load_report_data
from mammo_batch.engine.report.drift import Drift, compute_drift
from mammo_batch.engine.report.drift_html import drift_line, drift_section

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 70em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { padding: 0.2em 0.8em; text-align: left; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafafa; } .note { color: #666; font-size: 0.9em; }
code { font-size: 0.85em; word-break: break-all; }
"""


def write_report(scores_path: str | os.PathLike, out_html: str | os.PathLike,
                 views_path: str | os.PathLike | None = None, redact: bool = False,
                 drift: Drift | None = None) -> Path:
    """Write the nightly report for `scores_path` (and `views_path`) to `out_html`; returns its path.
    `drift`: report.drift.compute_drift's result (default: against the file's own earlier nights).

    Raises ReportError when the inputs are not mammo-batch result files.
    """
    data = load_report_data(scores_path, views_path, redact)
    data.drift = drift or compute_drift(scores_path, views_path)
    page = render(data)
    out = Path(out_html)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, out)  # never a half-written page for the person who opens it
    return out


def render(data: ReportData) -> str:
    parts = [f"<h1>mammo-batch nightly report</h1><p class='note'>{escape(data.source)}</p>",
             *([drift_line(data.drift)] if data.drift else []),
             _stopped_banner(data), _run_section(data), _status_section(data), _score_section(data),
             *([drift_section(data.drift)] if data.drift else []),
             _throughput_section(data), _failed_section(data), _slowest_section(data)]
    if data.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in data.notes) + "</ul>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>mammo-batch report</title><style>{STYLE}</style></head><body>"
            + "".join(parts) + "</body></html>\n")


def _stopped_banner(data: ReportData) -> str:
    """An interrupted run says so first: its counts are what completed, the rest waits for the rerun."""
    stopped = data.run.get("stopped")
    if not stopped:
        return ""
    return (f"<p id='stopped' style='background:#fde2e1;border:1px solid #c33;padding:0.6em'>"
            f"<b>This run was stopped early:</b> {escape(stopped)}.</p>")


def _run_section(data: ReportData) -> str:
    run = data.run
    rows = [("started", run["started"]), ("finished", run["finished"]),
            ("latest scored_at", run["latest_scored_at"]),
            ("duration", _seconds(run["duration_s"])), ("discovery", _seconds(run["discovery_s"])),
            ("scoring", _seconds(run["scoring_s"])), ("views/s", _number(run["views_per_s"], 2)),
            ("views scored this run", run["views_scored_this_run"]),
            ("studies scored this run", run["studies_scored_this_run"]),
            ("studies unchanged since the last run", run["studies_unchanged"]),
            ("studies in the file", run["studies_in_file"]), ("files seen", run["files_seen"]),
            ("bundle", run["bundle"]), ("runtime", run["runtime"]),
            ("engine version", run["engine_version"]), ("threshold", run["threshold"]),
            ("aggregation", run["aggregation"])]
    return "<h2>Run</h2>" + _table("run", ["", ""], [(k, v) for k, v in rows if v is not None])


def _status_section(data: ReportData) -> str:
    html = "<h2>Status</h2>" + _table("study-status", ["study status", "studies"],
                                       list(data.study_status.items()))
    if data.view_status:
        html += _table("view-status", ["file status", "files"], list(data.view_status.items()))
    if data.reasons:
        html += _table("reasons", ["status", "reason", "files"],
                       [(status, reason, n) for (status, reason), n in data.reasons.items()])
    if plots.plotting_available() and data.study_status:
        html += _image(plots.status_bars(data.study_status, "studies"), "studies by status")
    return html


def _score_section(data: ReportData) -> str:
    rows = [(group, r["studies"], r["recalled"], _percent(r["rate"])) for group, r in data.recall.items()]
    html = "<h2>Recall and scores</h2>" + _table("recall", ["vendor", "scored studies", "recalled",
                                                             "recall rate"], rows)
    scored = {k: v for k, v in data.scores.items() if len(v)}
    if scored:
        quantiles = [(g, len(v), *(f"{q:.3f}" for q in _quantiles(v))) for g, v in scored.items()]
        html += _table("score-quantiles", ["vendor", "studies", "min", "p25", "median", "p75", "max"],
                       quantiles)
        if plots.plotting_available():
            html += _image(plots.score_histogram(scored, data.run["threshold"], SCORE_BINS),
                           "study score distribution")
    return html + _no_plots_note()


def _throughput_section(data: ReportData) -> str:
    html = "<h2>Throughput over the run</h2>"
    if not data.throughput:
        return html + f"<p class='note'>{escape(data.throughput_note)}</p>"
    width = data.run["throughput_bin_s"]
    rows = [(t.isoformat(timespec="seconds"), s, v, f"{v / width:.2f}") for t, s, v in data.throughput]
    if plots.plotting_available():
        html += _image(plots.throughput_plot(data.throughput, width), "views per second over the run")
    return html + _table("throughput", ["from", "studies", "views", "views/s"], rows)


def _failed_section(data: ReportData) -> str:
    html = "<h2>Failed and partial studies</h2>"
    html += _table("failed-studies", ["study", "status", "error"],
                   [(s["study_key"], s["status"], s["error"]) for s in data.failed_studies])
    if data.view_status:
        html += f"<h2>Failed files ({data.failed_total})</h2>"
        html += _table("failed-files", ["path", "reason", "detail"],
                       [(f"<code>{escape(f['path'])}</code>", f["reason"], f["detail"])
                        for f in data.failed_files], raw_first=True)
        if data.failed_total > len(data.failed_files):
            html += f"<p class='note'>The first {MAX_LISTED} of {data.failed_total}.</p>"
    return html


def _slowest_section(data: ReportData) -> str:
    if not data.slowest:
        return ""
    rows = [(f"<code>{escape(s['path'])}</code>", f"{s['seconds']:.2f}", s["status"]) for s in data.slowest]
    return "<h2>Slowest files</h2>" + _table("slowest", ["path", "seconds", "status"], rows, raw_first=True)


def _table(table_id: str, header: list[str], rows: list[tuple], raw_first: bool = False) -> str:
    if not rows:
        return f"<p class='note' id='{table_id}'>none</p>"
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = str(value) if raw_first and i == 0 else escape(str(value))
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            cells.append(f"<td class='n'>{text}</td>" if numeric else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table id='{table_id}'><tr>{head}</tr>{''.join(body)}</table>"


def _image(uri: str, alt: str) -> str:
    return f"<p><img src='{uri}' alt='{escape(alt)}'></p>"


def _no_plots_note() -> str:
    if plots.plotting_available():
        return ""
    return "<p class='note'>Plots need matplotlib: pip install 'mammo-batch[report]'.</p>"


def _quantiles(values) -> list[float]:
    import numpy as np

    return list(np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]))


def _seconds(value: float | None) -> str | None:
    if value is None:
        return None
    minutes, seconds = divmod(float(value), 60)
    return f"{int(minutes)} min {seconds:.1f} s" if minutes else f"{seconds:.1f} s"


def _number(value: float | None, digits: int) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def _percent(rate: float) -> str:
    return "n/a" if math.isnan(rate) else f"{100 * rate:.1f}%"

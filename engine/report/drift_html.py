"""The drift section of the report page: the red / amber / green line at the top, and its tables."""

from __future__ import annotations

from html import escape

from mammo_batch.engine.report.drift import AMBER, GREEN, PSI_AMBER, PSI_RED, RED, Drift

COLOURS = {GREEN: "#1b7f3b", AMBER: "#b36b00", RED: "#b00020"}


def drift_line(drift: Drift) -> str:
    """One line for the top of the page: the overall status and what drove it."""
    colour = COLOURS.get(drift.status, "#666")
    why = "; ".join(_why(c) for c in drift.worst) or "no check judged amber or red"
    return (f"<p id='drift-status' class='drift-{escape(drift.status)}' style='font-weight:bold;"
            f"color:#fff;background:{colour};padding:0.5em 0.8em'>Drift: {escape(drift.status.upper())}"
            f" &mdash; {escape(why)}</p>")


def drift_section(drift: Drift) -> str:
    rows = [(c.name, c.status, c.tonight_n, c.reference_n, _f(c.psi), _f(c.psi_noise), _f(c.ks_d), _p(c.ks_p),
             _pct(c.tonight_value), _pct(c.reference_value)) for c in drift.checks]
    head = ["check", "status", "tonight n", "reference n", "PSI", "noise margin", "KS D", "KS p", "tonight",
            "reference"]
    html = "<h2>Drift against the reference period</h2>" + _table("drift", head, rows)
    html += (f"<p class='note'>PSI over 10 reference-decile bins: green &lt; {PSI_AMBER}, amber &lt; {PSI_RED}, "
             "red above, each plus the noise margin (what chance alone reaches 1 night in 100); failed or "
             "skipped files: amber from +5 points, red from +20; recall vs target: amber "
             "when off by more than half the target, red by more than the target. Groups with fewer than 30 "
             "on either side are not judged (docs/pacs.md).</p>")
    if drift.nights:
        nights = [(night, n, r, _pct(r / n if n else None)) for night, n, r in drift.nights]
        html += "<h2>Recall rate per night</h2>" + _table("recall-per-night", ["night (UTC)", "scored studies",
                                                                              "recalled", "recall rate"], nights)
        if drift.target_recall is not None:
            html += f"<p class='note'>Target recall rate: {100 * drift.target_recall:.1f}%.</p>"
    return html


def _why(check) -> str:
    if check.psi is not None:
        return f"{check.name}: PSI {check.psi:.2f}"
    return f"{check.name}: {_pct(check.tonight_value)} vs {_pct(check.reference_value)}"


def _table(table_id: str, header: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table id='{table_id}'><tr>{head}</tr>{body}</table>"


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.2g}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"

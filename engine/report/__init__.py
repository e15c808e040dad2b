"""The nightly report: scores.parquet (+ views.parquet) -> one self-contained HTML page.

    data.py   the numbers (counts, recall, scores by vendor, throughput, failed files)
    plots.py  PNG plots as data URIs (matplotlib, the `report` extra; the page is written without)
    html.py   the page itself, and `write_report`
"""

from mammo_batch.engine.report.data import ReportData, ReportError, load_report_data
from mammo_batch.engine.report.html import write_report

__all__ = ["ReportData", "ReportError", "load_report_data", "write_report"]

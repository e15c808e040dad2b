"""The report's plots as PNG data URIs (embedded: the page needs no network and no side files).

matplotlib comes with the `report` extra and is imported only here, only when a report is made.
"""

from __future__ import annotations

import base64
import io
from datetime import datetime

import numpy as np

WIDTH_IN, HEIGHT_IN, DPI = 6.4, 3.0, 90


def plotting_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def score_histogram(scores: dict[str, np.ndarray], threshold: float | None, bins: int) -> str:
    """Study score distribution: all studies, and one outline per vendor when there are several."""
    figure, axes = _figure()
    edges = np.linspace(0.0, 1.0, bins + 1)
    for name, values in scores.items():
        if name == "all":
            axes.hist(values, bins=edges, color="#9bb7d4", label=f"all ({len(values)})")
        else:
            axes.hist(values, bins=edges, histtype="step", linewidth=1.5, label=f"{name} ({len(values)})")
    if threshold is not None:
        axes.axvline(threshold, color="#c0392b", linestyle="--", label=f"threshold {threshold:g}")
    axes.set_xlabel("study score")
    axes.set_ylabel("studies")
    axes.legend(fontsize=8)
    return _data_uri(figure)


def throughput_plot(points: list[tuple[datetime, int, int]], bin_seconds: float) -> str:
    """Views per second in each time bin of the run."""
    figure, axes = _figure()
    minutes = [(t - points[0][0]).total_seconds() / 60 for t, _, _ in points]
    axes.step(minutes, [views / bin_seconds for _, _, views in points], where="post", color="#2c7fb8")
    axes.set_xlabel("minutes since the first study was written")
    axes.set_ylabel("views / s")
    axes.set_ylim(bottom=0)
    return _data_uri(figure)


def status_bars(counts: dict[str, int], title: str) -> str:
    figure, axes = _figure()
    colours = {"ok": "#4daf4a", "partial": "#ff7f00", "failed": "#e41a1c", "skipped": "#999999"}
    names = list(counts)
    axes.barh(names, [counts[n] for n in names], color=[colours.get(n, "#377eb8") for n in names])
    axes.set_xlabel(title)
    axes.invert_yaxis()
    return _data_uri(figure)


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)  # no display; safe in a headless nightly job
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="tight")
    return figure, figure.add_subplot()


def _data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

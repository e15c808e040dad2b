"""Run a Preparer over files and collect its results (for tests only)."""

from __future__ import annotations

import time
from pathlib import Path


def run_preparer(preparer, paths: list[Path], timeout_s: float = 120) -> dict:
    """Submit every path (view id = its index), collect until none is in flight, close; {view_id: PreparedView}."""
    for view_id, path in enumerate(paths):
        preparer.submit(view_id, str(path))
    results, deadline = {}, time.monotonic() + timeout_s
    while preparer.in_flight and time.monotonic() < deadline:
        for prepared in preparer.collect(1.0):
            results[prepared.view_id] = prepared
    preparer.close()
    return results

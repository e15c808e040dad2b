"""The operating point for a target recall rate, over a reference window of past scores.parquet files.

Rule: over the window's scored studies (status ok or partial, each study once: its latest row), with
n studies and target rate r, the threshold is the k-th highest study score, k = ceil(r * n) (at least 1).
`recall = score >= threshold` then recalls at least r of the window's studies (more only when scores tie
at the threshold); the realised rate is reported with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mammo_batch.engine.bundle import load_bundle
from mammo_batch.engine.bundle.model import BUNDLE_FILE
from mammo_batch.engine.bundle.write import write_bundle_json
from mammo_batch.engine.results.files import read_scores

SCORED = ("ok", "partial")
RULE = "k-th highest study score, k = ceil(recall_rate * studies); recall = score >= threshold"


class ThresholdError(ValueError):
    """No studies to set a threshold on, or a bad rate, window or bundle."""


@dataclass(frozen=True)
class Window:
    first: date | None = None  # study dates, inclusive
    last: date | None = None

    def describe(self) -> str:
        return f"{self.first or 'start'}..{self.last or 'end'}"


@dataclass(frozen=True)
class ThresholdResult:
    threshold: float
    recall_rate: float  # the target
    realised_rate: float  # share of the window's studies with score >= threshold
    studies: int
    recalled: int
    window: str
    files: list[str]
    rule: str = RULE


def parse_window(text: str | None) -> Window:
    """'2026-01-01..2026-03-31', '2026-01-01..', '..2026-03-31' or None (everything)."""
    if not text:
        return Window()
    first, sep, last = text.partition("..")
    if not sep:
        raise ThresholdError(f"a window is FROM..TO (YYYY-MM-DD, either side may be empty), got {text!r}")
    try:
        window = Window(*(date.fromisoformat(part) if part else None for part in (first, last)))
    except ValueError:
        raise ThresholdError(f"a window is FROM..TO with dates as YYYY-MM-DD, got {text!r}") from None
    if window.first and window.last and window.first > window.last:
        raise ThresholdError(f"the window {text} ends before it starts")
    return window


def reference_scores(paths: Sequence[str | os.PathLike], window: Window) -> np.ndarray:
    """The study scores of the window: scored rows of every file, study dates inside the window, each
    study once (its latest scored_at: nightly files repeat the history)."""
    tables = [read_scores(p).select(["study_key", "study_date", "score", "status", "scored_at"]) for p in paths]
    table = pa.concat_tables(tables) if tables else None
    if table is None or not table.num_rows:
        return np.array([], dtype=float)
    table = table.filter(pc.and_(pc.is_in(table["status"], pa.array(SCORED)), pc.is_valid(table["score"])))
    dates = table["study_date"]
    if window.first:
        table = table.filter(pc.greater_equal(dates, f"{window.first:%Y%m%d}"))
        dates = table["study_date"]
    if window.last:
        table = table.filter(pc.less_equal(dates, f"{window.last:%Y%m%d}"))
    latest = table.sort_by([("study_key", "ascending"), ("scored_at", "descending")])
    keys = latest["study_key"].to_numpy(zero_copy_only=False)
    first_of_key = np.ones(len(keys), dtype=bool)
    first_of_key[1:] = keys[1:] != keys[:-1]
    return latest["score"].to_numpy(zero_copy_only=False).astype(float)[first_of_key]


def threshold_for_recall(scores: np.ndarray, recall_rate: float) -> float:
    """The k-th highest score, k = ceil(recall_rate * n): see the module docstring."""
    if not 0.0 < recall_rate <= 1.0:
        raise ThresholdError(f"the recall rate must be in (0, 1], got {recall_rate!r}")
    if not len(scores):
        raise ThresholdError("no scored studies in the window")
    k = max(1, math.ceil(recall_rate * len(scores) - 1e-9))  # 0.05 * 100 is 5.000000000000001
    return float(np.sort(scores)[::-1][k - 1])


def compute_threshold(paths: Sequence[str | os.PathLike], recall_rate: float, window: Window) -> ThresholdResult:
    scores = reference_scores(paths, window)
    threshold = threshold_for_recall(scores, recall_rate)
    recalled = int((scores >= threshold).sum())
    return ThresholdResult(threshold, recall_rate, recalled / len(scores), len(scores), recalled, window.describe(),
                           [Path(p).name for p in paths])


def write_bundle_with_threshold(bundle: str | os.PathLike, out: str | os.PathLike, result: ThresholdResult) -> Path:
    """Copy the bundle to `out` (which must not exist) with the new threshold, the rule, window and
    counts recorded under provenance.threshold_rule; the copy is validated by load_bundle."""
    source, target = Path(bundle), Path(out)
    load_bundle(source)  # a broken source is refused before anything is copied
    if target.exists():
        raise ThresholdError(f"{target} exists: give a new folder for the bundle copy")
    shutil.copytree(source, target)
    document = json.loads((target / BUNDLE_FILE).read_text(encoding="utf-8"))
    document["threshold"] = result.threshold
    document.setdefault("provenance", {})["threshold_rule"] = {
        **asdict(result), "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "from_bundle": load_bundle(source).id}
    write_bundle_json(target, document)
    load_bundle(target)
    return target

"""Score drift for the nightly report: tonight's scores against a reference period, with a
red / amber / green line at the top of the page (docs/pacs.md, "Drift").

Tonight: the rows the last run wrote (report.data.this_run). Reference: the older rows of the same
scores file (studies scored on earlier nights) plus the rows of any --reference files, each study once
(its latest row) and never one of tonight's studies.

Checks, each green / amber / red (groups with fewer than MIN_STUDIES scores on either side are shown
but not judged):
- study scores, overall and per manufacturer; view probabilities per view (CC, MLO, ...):
  PSI over 10 reference-decile bins: < 0.10 green, 0.10-0.25 amber, >= 0.25 red, each threshold raised
  by what sampling noise alone reaches 1 night in 100: with no drift, PSI is about chi-square with 9
  degrees of freedom times (1/n + 1/m), so the margin is 21.67 (1/n + 1/m) (n, m: the two sample sizes;
  0.02 for 2000 studies against 20000, 0.33 for 100 against 200).
  The two-sample Kolmogorov-Smirnov D and its asymptotic p-value are shown beside it (not judged: with
  thousands of studies a harmless shift is "significant").
- the share of failed or skipped files: amber from 5 points above the reference share, red from 20.
- the recall rate against a target (when one is given): amber when off by more than half the target,
  red when off by more than the target itself (e.g. target 5%: amber outside 2.5-7.5%, red above 10%).
The line is the worst of the judged checks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mammo_batch.engine.results.files import read_run_metadata, read_scores
from mammo_batch.engine.results.store import views_store_path

GREEN, AMBER, RED, NOT_JUDGED = "green", "amber", "red", "not judged"
ORDER = {NOT_JUDGED: 0, GREEN: 1, AMBER: 2, RED: 3}
PSI_AMBER, PSI_RED = 0.10, 0.25
CHI2_9_Q99 = 21.666  # the 99th percentile of chi-square with 9 degrees of freedom (10 bins)
FAILED_SHARE_AMBER, FAILED_SHARE_RED = 0.05, 0.20
MIN_STUDIES = 30
PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin would make PSI infinite
SCORED = ("ok", "partial")
EXIT_DRIFT = 4  # `mammo-batch report --fail-on-drift`: the line is red


@dataclass
class Check:
    name: str  # "study score: all", "study score: HOLOGIC", "view prob: CC", "failed or skipped files", ...
    status: str
    tonight_n: int
    reference_n: int
    psi: float | None = None
    psi_noise: float | None = None  # the margin added to the PSI thresholds for these sample sizes
    ks_d: float | None = None
    ks_p: float | None = None
    tonight_value: float | None = None  # shares and rates
    reference_value: float | None = None


@dataclass
class Drift:
    status: str
    checks: list[Check]
    nights: list[tuple[str, int, int]] = field(default_factory=list)  # UTC date, scored studies, recalled
    target_recall: float | None = None

    @property
    def worst(self) -> list[Check]:
        return [c for c in self.checks if c.status == self.status and self.status in (AMBER, RED)]


def psi(reference: np.ndarray, tonight: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index over the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))  # the inner deciles
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, tonight, side="right"), minlength=len(edges) + 1)
    p = np.maximum(expected / len(reference), PSI_FLOOR)
    q = np.maximum(actual / len(tonight), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_noise(n: int, m: int) -> float:
    """The PSI that samples of sizes n and m reach 1 time in 100 with no drift at all."""
    return CHI2_9_Q99 * (1 / n + 1 / m)


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov D and its asymptotic p-value (Kolmogorov distribution)."""
    a, b = np.sort(a), np.sort(b)
    pooled = np.concatenate([a, b])
    d = float(np.max(np.abs(np.searchsorted(a, pooled, side="right") / len(a)
                            - np.searchsorted(b, pooled, side="right") / len(b))))
    return d, _kolmogorov_sf(d * math.sqrt(len(a) * len(b) / (len(a) + len(b))))


def _kolmogorov_sf(x: float) -> float:
    if x < 0.2:  # the series converges slowly there; the survival function is 1 to 1e-12
        return 1.0
    terms = (2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x) for k in range(1, 101))
    return float(min(1.0, max(0.0, sum(terms))))


def compute_drift(scores_path: str | os.PathLike, views_path: str | os.PathLike | None,
                  references: Sequence[str | os.PathLike] = (), target_recall: float | None = None) -> Drift:
    from mammo_batch.engine.report.data import this_run  # the report's own notion of "tonight"

    scores = read_scores(scores_path)
    tonight = this_run(scores, read_run_metadata(scores_path))
    tonight_keys = set(tonight["study_key"].to_pylist())
    older = scores.filter(pc.invert(pc.is_in(scores["study_key"], pa.array(list(tonight_keys), pa.string()))))
    reference = _latest_per_study([older, *(read_scores(p) for p in references)], exclude=tonight_keys)
    views = _views([views_path, *(_own_views(p) for p in references)])
    checks = _score_checks(tonight, reference, views) + _view_checks(tonight_keys, reference, views)
    checks.append(_failed_share(tonight_keys, set(reference["study_key"].to_pylist()), views))
    if target_recall is not None:
        checks.append(_recall_check(tonight, target_recall))
    status = max((c.status for c in checks), key=ORDER.__getitem__, default=NOT_JUDGED)
    return Drift(status, checks, _nights(pa.concat_tables([tonight, reference])), target_recall)


def _own_views(scores_path: str | os.PathLike) -> Path | None:
    path = views_store_path(scores_path)
    return path if path.exists() else None


def _latest_per_study(tables: list[pa.Table], exclude: set[str]) -> pa.Table:
    table = pa.concat_tables(tables).sort_by([("study_key", "ascending"), ("scored_at", "descending")])
    keys = table["study_key"].to_pylist()
    keep = [i == 0 or keys[i] != keys[i - 1] for i in range(len(keys))]
    table = table.filter(pa.array(keep, pa.bool_())) if keys else table
    return table.filter(pc.invert(pc.is_in(table["study_key"], pa.array(list(exclude), pa.string()))))


def _views(paths: list) -> pa.Table | None:
    """The files of every views file, each file once (nightly files repeat the history: the first wins)."""
    columns = ["path", "study_key", "view", "manufacturer", "status", "prob"]
    tables = []
    for path in paths:
        if path is not None:
            table = pq.read_table(path)
            tables.append(table.select([c for c in columns if c in table.column_names]))
    if not tables or any(set(columns) - set(t.column_names) for t in tables):
        return None
    table = pa.concat_tables([t.cast(tables[0].schema) for t in tables])
    seen: set[str] = set()
    first = [not (p in seen or seen.add(p)) for p in table["path"].to_pylist()]
    return table.filter(pa.array(first, pa.bool_()))


def _scored(table: pa.Table) -> pa.Table:
    return table.filter(pc.and_(pc.is_in(table["status"], pa.array(SCORED)), pc.is_valid(table["score"])))


def _score_checks(tonight: pa.Table, reference: pa.Table, views: pa.Table | None) -> list[Check]:
    tonight, reference = _scored(tonight), _scored(reference)
    checks = [_distribution("study score: all", _floats(reference["score"]), _floats(tonight["score"]))]
    if views is None:
        return checks
    vendor = _vendor_by_study(views)
    groups = sorted({vendor.get(k) for k in tonight["study_key"].to_pylist()} - {None})
    for name in groups:
        pick = [vendor.get(k) == name for k in reference["study_key"].to_pylist()]
        now = [vendor.get(k) == name for k in tonight["study_key"].to_pylist()]
        checks.append(_distribution(f"study score: {name}", _floats(reference["score"])[pick],
                                    _floats(tonight["score"])[now]))
    return checks


def _view_checks(tonight_keys: set[str], reference: pa.Table, views: pa.Table | None) -> list[Check]:
    if views is None:
        return []
    ok = views.filter(pc.and_(pc.equal(views["status"], "ok"), pc.is_valid(views["prob"])))
    is_tonight = np.array([k in tonight_keys for k in ok["study_key"].to_pylist()], dtype=bool)
    reference_keys = set(reference["study_key"].to_pylist())
    is_reference = np.array([k in reference_keys for k in ok["study_key"].to_pylist()], dtype=bool)
    view_names = np.array([v or "unknown" for v in ok["view"].to_pylist()], dtype=object)
    probs = _floats(ok["prob"])
    return [_distribution(f"view prob: {name}", probs[is_reference & (view_names == name)],
                          probs[is_tonight & (view_names == name)])
            for name in sorted(set(view_names[is_tonight]))]


def _distribution(name: str, reference: np.ndarray, tonight: np.ndarray) -> Check:
    check = Check(name, NOT_JUDGED, len(tonight), len(reference))
    if min(len(tonight), len(reference)) < MIN_STUDIES:
        return check
    check.psi = psi(reference, tonight)
    check.psi_noise = psi_noise(len(tonight), len(reference))
    check.ks_d, check.ks_p = ks_2samp(reference, tonight)
    check.status = (RED if check.psi >= PSI_RED + check.psi_noise else
                    AMBER if check.psi >= PSI_AMBER + check.psi_noise else GREEN)
    return check


def _failed_share(tonight_keys: set[str], reference_keys: set[str], views: pa.Table | None) -> Check:
    if views is None:
        return Check("failed or skipped files", NOT_JUDGED, 0, 0)
    keys, statuses = views["study_key"].to_pylist(), views["status"].to_pylist()
    now = [s != "ok" for k, s in zip(keys, statuses, strict=True) if k in tonight_keys]
    before = [s != "ok" for k, s in zip(keys, statuses, strict=True) if k in reference_keys]
    check = Check("failed or skipped files", NOT_JUDGED, len(now), len(before))
    if min(len(now), len(before)) < MIN_STUDIES:
        return check
    check.tonight_value, check.reference_value = float(np.mean(now)), float(np.mean(before))
    rise = check.tonight_value - check.reference_value
    check.status = RED if rise >= FAILED_SHARE_RED else AMBER if rise >= FAILED_SHARE_AMBER else GREEN
    return check


def _recall_check(tonight: pa.Table, target: float) -> Check:
    scored = _scored(tonight)
    check = Check("recall rate vs target", NOT_JUDGED, scored.num_rows, 0, reference_value=target)
    if scored.num_rows < MIN_STUDIES:
        return check
    check.tonight_value = float(np.mean([bool(r) for r in scored["recall"].to_pylist()]))
    off = abs(check.tonight_value - target)
    check.status = RED if off > target else AMBER if off > target / 2 else GREEN
    return check


def _nights(table: pa.Table) -> list[tuple[str, int, int]]:
    scored = _scored(table)
    nights: dict[str, list[int]] = {}
    for when, recalled in zip(scored["scored_at"].to_pylist(), scored["recall"].to_pylist(), strict=True):
        counts = nights.setdefault(when.date().isoformat(), [0, 0])
        counts[0] += 1
        counts[1] += bool(recalled)
    return [(night, n, r) for night, (n, r) in sorted(nights.items())]


def _vendor_by_study(views: pa.Table) -> dict[str, str]:
    """The most common manufacturer among each study's files (as the report's vendor table does)."""
    counts: dict[str, dict[str, int]] = {}
    for key, vendor in zip(views["study_key"].to_pylist(), views["manufacturer"].to_pylist(), strict=True):
        per = counts.setdefault(key, {})
        name = (vendor or "").strip() or "unknown"
        per[name] = per.get(name, 0) + 1
    return {key: max(per, key=per.get) for key, per in counts.items()}


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=float)

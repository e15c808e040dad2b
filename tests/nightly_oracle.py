"""An independent model of the nightly state, for the stateful property test (test_nightly_property.py).

Plain Python over what the test put on disk and the history of runs: it never imports the engine's
results code. Per-file probabilities come from a calibration table (content, laterality, view, bundle) ->
probability measured once per test session on files scored alone; everything else (scope,
reconciliation, grouping, duplicates, the bundle rule, statuses, aggregation, thresholds, retired
and kept study rows) is decided here from the rules in docs/scoring.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Meta:
    """What the generator wrote into a file's header (and whether its pixels decode)."""

    patient: str
    accession: str
    uid: str
    sop: str
    laterality: str
    view: str
    content: int  # index into the generator's pixel contents
    damaged: bool = False


@dataclass
class Row:
    """The oracle's file row: the header it was scored from and the outcome."""

    meta: Meta
    size: int
    mtime: int
    bundle: str
    scored: bool  # a probability exists (decoded and run)
    excluded: bool = False  # skipped by the view filter


@dataclass(frozen=True)
class Night:
    roots: tuple[str, ...]
    bundle: str
    threshold: float | None = None
    breast_agg: str | None = None
    views: frozenset[str] | None = None
    max_studies: int | None = None  # a night stopped after this many studies to score


@dataclass
class Oracle:
    probs: dict[tuple[int, str, str, str], float]  # (content, laterality, view, bundle) -> view probability
    defaults: dict[str, tuple[str, str, float]]  # bundle -> its own (breast_agg, study_agg, threshold)
    rows: dict[str, Row] = field(default_factory=dict)
    rules: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    studies: dict[str, dict] = field(default_factory=dict)  # the expected scores rows
    keys: dict[str, str] = field(default_factory=dict)  # path -> study key after the last night

    def run(self, night: Night, disk: dict[str, Meta], previous_scores: dict[str, dict]) -> None:
        """Apply one complete night. `disk`: every file on disk (real path -> Meta);
        `previous_scores`: the engine's scores rows before tonight (for rows kept with no file left)."""
        earlier = dict(self.rows)
        found = {p: m for p, m in disk.items() if any(_under(p, r) for r in night.roots)}
        planned = set()
        for path in [p for p in self.rows if p not in found and any(_under(p, r) for r in night.roots)]:
            del self.rows[path]  # gone
        for path, meta in found.items():
            stat = os.stat(path)
            before = self.rows.get(path)
            excluded = night.views is not None and meta.view not in night.views
            unchanged = (before is not None and (before.size, before.mtime) == (stat.st_size, stat.st_mtime_ns)
                         and before.bundle == night.bundle and before.scored and not excluded)
            if not unchanged:
                self.rows[path] = Row(meta, stat.st_size, stat.st_mtime_ns, night.bundle,
                                      scored=not meta.damaged and not excluded, excluded=excluded)
                if not excluded:
                    planned.add(path)
        keys = self._keys()
        planned |= self._bundle_rule(night, found, keys, disk)
        if night.max_studies is not None:
            self._stop_after(night.max_studies, planned, earlier, self._keys())
        keys = self._keys()
        breast, study, threshold = self.defaults[night.bundle]
        self.rules[night.bundle] = (night.breast_agg or breast, study,
                                    threshold if night.threshold is None else night.threshold)
        studies = self._derive(keys)
        for key, row in previous_scores.items():  # earlier keys not derived tonight
            if key in studies:
                continue
            moved = any(self.keys.get(p) == key for p in self.rows)
            if not moved:
                studies[key] = dict(row)
        self.studies, self.keys = studies, keys

    # -- grouping ---------------------------------------------------------------------------------

    def _keys(self) -> dict[str, str]:
        """path -> study key: one patient's files linked by a shared accession or study UID."""
        parent = {p: p for p in self.rows}

        def find(p: str) -> str:
            while parent[p] != p:
                parent[p] = parent[parent[p]]
                p = parent[p]
            return p

        first: dict[tuple, str] = {}
        for path in sorted(self.rows):
            meta = self.rows[path].meta
            for link in (("acc", meta.patient, meta.accession), ("uid", meta.patient, meta.uid)):
                if link[2]:
                    other = first.setdefault(link, path)
                    parent[find(path)] = find(other)
        members: dict[str, list[str]] = {}
        for path in self.rows:
            members.setdefault(find(path), []).append(path)
        keys = {}
        for paths in members.values():
            accessions = sorted(self.rows[p].meta.accession for p in paths if self.rows[p].meta.accession)
            key = accessions[0] if accessions else min(self.rows[p].meta.uid for p in paths)
            keys.update((p, key) for p in paths)
        return keys

    def _bundle_rule(self, night: Night, found: dict[str, Meta], keys: dict[str, str],
                     disk: dict[str, Meta]) -> set[str]:
        """A touched study with files of another bundle is rescored whole; its files outside tonight's
        roots are read again from disk (they may have changed) or are gone."""
        touched = {keys[p] for p in found}
        mixed = {keys[p] for p, row in self.rows.items() if row.scored and row.bundle != night.bundle}
        rescored = set()
        for path in [p for p in self.rows if keys[p] in touched & mixed]:
            if path in found:
                row = self.rows[path]
                if not row.excluded:
                    self.rows[path] = replace(row, bundle=night.bundle, scored=not row.meta.damaged)
                    rescored.add(path)
                continue
            if path not in disk:
                del self.rows[path]
                continue
            meta, stat = disk[path], os.stat(path)
            excluded = night.views is not None and meta.view not in night.views
            self.rows[path] = Row(meta, stat.st_size, stat.st_mtime_ns, night.bundle,
                                  scored=not meta.damaged and not excluded, excluded=excluded)
            if not excluded:
                rescored.add(path)
        return rescored

    def _stop_after(self, limit: int, planned: set[str], before: dict[str, Row], keys: dict[str, str]) -> None:
        """Only the first `limit` studies (by key) with files to score were scored; the other planned
        files keep their earlier row, or have none."""
        done = set(sorted({keys[p] for p in planned})[:limit])
        for path in planned:
            if keys[path] in done:
                continue
            if path in before:
                self.rows[path] = before[path]
            else:
                del self.rows[path]

    # -- derivation -------------------------------------------------------------------------------

    def view_status(self, keys: dict[str, str]) -> dict[str, tuple[str, str]]:
        """path -> (status, reason) in the derived views."""
        out = {}
        copies: dict[tuple[str, str], list[str]] = {}
        for path, row in self.rows.items():
            if row.excluded:
                out[path] = ("skipped", "view_excluded")
                continue
            out[path] = ("ok", "") if row.scored else ("failed", "decode_error")
            copies.setdefault((keys[path], row.meta.sop), []).append(path)
        for paths in copies.values():
            paths.sort()
            scored = [p for p in paths if self.rows[p].scored]
            chosen = scored[0] if scored else paths[0]
            for path in paths:
                if path != chosen:
                    out[path] = ("skipped", "duplicate")
        return out

    def prob(self, path: str) -> float:
        row = self.rows[path]
        return self.probs[(row.meta.content, row.meta.laterality, row.meta.view, row.bundle)]

    def _derive(self, keys: dict[str, str]) -> dict[str, dict]:
        status = self.view_status(keys)
        by_study: dict[str, list[str]] = {}
        for path in self.rows:
            by_study.setdefault(keys[path], []).append(path)
        studies = {}
        for key, paths in by_study.items():
            ok = [p for p in paths if status[p][0] == "ok"]
            failed = [p for p in paths if status[p][0] == "failed"]
            bundles = sorted({self.rows[p].bundle for p in ok}) or sorted({self.rows[p].bundle for p in paths})
            bundle = bundles[-1]
            breast_agg, study_agg, threshold = self.rules[bundle]
            breasts = {}
            for side in ("L", "R"):
                probs = [self.prob(p) for p in ok if self.rows[p].meta.laterality == side]
                if probs:
                    breasts[side] = max(probs) if breast_agg == "max" else sum(probs) / len(probs)
            state = ("partial" if failed else "ok") if ok else ("failed" if failed else "skipped")
            score = max(breasts.values()) if breasts and state in ("ok", "partial") else None
            studies[key] = {"status": state, "score": score, "n_views": len(ok),
                            "n_views_skipped": len(paths) - len(ok), "bundle_id": bundle,
                            "threshold": threshold, "recall": None if score is None else score >= threshold}
        return studies


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

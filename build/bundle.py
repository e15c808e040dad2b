"""Trained runs -> a model bundle: one member per run (member.py), the threshold, bundle.json, atomically."""

from __future__ import annotations

import csv
import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from mammo_batch import __version__
from mammo_batch.build.member import GateViews, MemberSpec, build_member
from mammo_batch.build.staging import staged_bundle
from mammo_batch.engine.bundle import Bundle, Member, write_bundle
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.train.metrics import auc, oof_warning, study_scores, threshold_at
from mammo_batch.train.models import ProbabilityModel, create_model

log = logging.getLogger("mammo_batch.build")


class BuildError(Exception):
    """A run cannot be built into the bundle; the message says which and why."""


@dataclass(frozen=True)
class Run:
    path: Path
    config: dict  # TrainConfig fields
    document: dict  # the whole config.json
    summary: dict

    @property
    def name(self) -> str:
        return f"fold{self.config['fold']}_{self.config['arch']}"

    @property
    def size(self) -> tuple[int, int]:
        return self.config["height"], self.config["width"]

    @property
    def settings(self) -> PreprocessSettings:
        c = self.config
        return PreprocessSettings(window=c["window"], crop=c["crop"], dtype=c["dtype"])


def read_run(path: Path) -> Run:
    missing = [f for f in ("config.json", "best.pt", "oof.csv", "summary.json") if not (path / f).exists()]
    if missing:
        raise BuildError(f"{path} is not a finished training run: missing {', '.join(missing)}")
    document = json.loads((path / "config.json").read_text())
    return Run(path, document["config"], document, json.loads((path / "summary.json").read_text()))


def build_bundle(run_paths: list[Path], out: Path, threshold_rule: str = "specificity=0.9",
                 name: str = "mammo-batch-ensemble", description: str = "") -> Path:
    """Build the runs into the bundle `out`, atomically: a failure leaves a previous bundle there as it was."""
    runs = [read_run(Path(p)) for p in run_paths]
    _check_compatible(runs)
    threshold, oof = _threshold(runs, threshold_rule)  # before the slow exports: a bad rule fails at once
    with staged_bundle(out) as stage:
        members = tuple(_build_member(run, stage) for run in runs)
        write_bundle(stage, Bundle(
            name=name, members=members, threshold=threshold,
            created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            description=description or f"{len(runs)} fold models built by mammo-batch {__version__}",
            provenance={"code_version": __version__, "command": sys.argv, "runs": [str(r.path) for r in runs],
                        "data_fingerprints": sorted({r.document["data_fingerprint"] for r in runs}),
                        "threshold_rule": threshold_rule, "out_of_fold": oof}))  # loads it back: checksums
    return out


def _check_compatible(runs: list[Run]) -> None:
    if not runs:
        raise BuildError("no runs given")
    settings = {r.settings for r in runs}
    if len(settings) > 1:
        raise BuildError(f"runs disagree on preprocessing: {sorted(map(str, settings))}")
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise BuildError(f"two runs would give the same member name: {names}")


def _build_member(run: Run, directory: Path) -> Member:
    net = create_model(run.config["arch"], run.config["dtype"])
    net.load_state_dict(torch.load(run.path / "best.pt", map_location="cpu", weights_only=True))
    metrics = {"val_study_auc": run.summary["val_study_auc"], "best_epoch": run.summary["best_epoch"],
               "val_views": run.summary["val_views"]}
    spec = MemberSpec(run.name, run.config["fold"], run.config["arch"], run.size, run.settings, metrics)
    return build_member(ProbabilityModel(net).eval(), directory, spec, _gate_views(run))


def _gate_views(run: Run) -> GateViews:
    """Whole studies of the run's validation fold (real held-out views, with their labels)."""
    with (run.path / "oof.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise BuildError(f"{run.path}/oof.csv lists no validation views to check parity on")
    return GateViews.of_rows(rows)


def _threshold(runs: list[Run], rule: str) -> tuple[float, dict]:
    """Operating threshold on the pooled out-of-fold study scores (one model per fold)."""
    rows = []
    for run in runs:
        with (run.path / "oof.csv").open() as handle:
            rows += list(csv.DictReader(handle))
    if not rows:
        raise BuildError("no out-of-fold predictions to choose a threshold from")
    scores = study_scores([r["study_key"] for r in rows], [r["laterality"] for r in rows],
                          [float(r["prob"]) for r in rows])
    targets = {r["study_key"]: int(r["target"]) for r in rows}
    keys = sorted(scores)
    y, s = [targets[k] for k in keys], [scores[k] for k in keys]
    threshold = threshold_at(y, s, rule)
    y_arr, s_arr = np.array(y), np.array(s)
    recalled = s_arr >= threshold
    oof = {"studies": len(keys), "study_auc": auc(y, s),
           "sensitivity": float(recalled[y_arr == 1].mean()) if (y_arr == 1).any() else None,
           "specificity": float((~recalled)[y_arr == 0].mean()) if (y_arr == 0).any() else None,
           "recall_rate": float(recalled.mean())}
    warning = oof_warning(s, threshold)
    if warning:
        log.warning("%s", warning)
        oof["warning"] = warning
    return threshold, oof


"""Trained runs -> a model bundle: export, parity, threshold, bundle.json."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from mammo_batch import __version__
from mammo_batch.build.export import export_onnx, export_torch
from mammo_batch.build.fp16 import check_fp16, export_fp16_onnx
from mammo_batch.build.parity import check_bf16, check_parity, eager_probabilities
from mammo_batch.engine.bundle import bundle_document, load_bundle, member_document, write_bundle_json
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.train.metrics import auc, study_scores, threshold_at
from mammo_batch.train.models import ProbabilityModel, create_model

log = logging.getLogger("mammo_batch.build")

PARITY_VIEWS = 8
BF16_GATE_VIEWS = 128  # whole validation studies up to this many views (docs/scoring.md, "bf16 gate")


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
    runs = [read_run(Path(p)) for p in run_paths]
    _check_compatible(runs)
    out.mkdir(parents=True, exist_ok=True)
    members = [_build_member(run, out) for run in runs]
    threshold, oof = _threshold(runs, threshold_rule)
    document = bundle_document(
        name=name, members=members, threshold=threshold,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        description=description or f"{len(runs)} fold models built by mammo-batch {__version__}",
        provenance={"code_version": __version__, "command": sys.argv, "runs": [str(r.path) for r in runs],
                    "data_fingerprints": sorted({r.document["data_fingerprint"] for r in runs}),
                    "threshold_rule": threshold_rule, "out_of_fold": oof})
    write_bundle_json(out, document)
    load_bundle(out)  # what score will do: checksums, consistency
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


def _build_member(run: Run, out: Path) -> dict:
    height, width = run.size
    dtype = run.config["dtype"]
    net = create_model(run.config["arch"], dtype)
    net.load_state_dict(torch.load(run.path / "best.pt", map_location="cpu", weights_only=True))
    model = ProbabilityModel(net).eval()
    onnx_file, torch_file, fp16_file = f"{run.name}.onnx", f"{run.name}.pt2", f"{run.name}.fp16.onnx"
    started = datetime.now()
    export_onnx(model, out / onnx_file, height, width, dtype)
    export_torch(model, out / torch_file, height, width, dtype)
    images = _validation_images(run)
    report = check_parity(model, out / onnx_file, out / torch_file, images)  # raises ParityError
    export_fp16_onnx(model, out / fp16_file, height, width, dtype)
    fp16_diff = check_fp16(model, out / fp16_file, images, name=run.name)  # raises Fp16ParityError
    log.info("%s: exported in %.1f s; %s", run.name, (datetime.now() - started).total_seconds(),
             report.summary())
    gate = _bf16_gate(run, model, out / torch_file)
    metrics = {"val_study_auc": run.summary["val_study_auc"], "best_epoch": run.summary["best_epoch"],
               "val_views": run.summary["val_views"], "parity_onnx_max_diff": float(report.onnx_max_diff),
               "parity_torch_max_diff": float(report.torch_max_diff), "fp16_onnx_max_diff": fp16_diff}
    return member_document(out, name=run.name, fold=run.config["fold"], arch=run.config["arch"], height=height,
                           width=width, onnx=onnx_file, torch=torch_file, onnx_fp16=fp16_file, dtype=dtype,
                           window=run.config["window"], crop=run.config["crop"], metrics=metrics,
                           bf16_gate=dataclasses.asdict(gate))


def _bf16_gate(run: Run, model: ProbabilityModel, torch_file: Path):
    """bf16 vs fp32 on whole studies of the run's validation fold (real held-out views)."""
    with (run.path / "oof.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    studies: dict[str, list[dict]] = {}
    for row in rows:
        studies.setdefault(row["study_key"], []).append(row)
    chosen: list[dict] = []
    for views in studies.values():  # whole studies, so that study-level AUC means what score computes
        if chosen and len(chosen) + len(views) > BF16_GATE_VIEWS:
            break
        chosen += views
    images = np.stack([prepare_file(r["path"], [run.size], run.settings).inputs[run.size] for r in chosen])
    fp32 = np.concatenate([eager_probabilities(model, images[i:i + 4]) for i in range(0, len(images), 4)])
    gate = check_bf16(torch_file, images, fp32, [r["study_key"] for r in chosen],
                      [r["laterality"] for r in chosen], {r["study_key"]: int(r["target"]) for r in chosen})
    log.info("%s: bf16 gate %s: max |prob diff| %.2e, study AUC change %s on %d views of %d studies",
             run.name, "passed" if gate.passed else "NOT passed", gate.max_prob_diff,
             "n/a" if gate.study_auc_change is None else f"{gate.study_auc_change:+.4f}",
             gate.views, gate.studies)
    return gate


def _validation_images(run: Run) -> np.ndarray:
    """Real preprocessed views of the run's validation fold, through the engine's pixel path."""
    with (run.path / "oof.csv").open() as handle:
        paths = [row["path"] for row in csv.DictReader(handle)][:PARITY_VIEWS]
    if not paths:
        raise BuildError(f"{run.path}/oof.csv lists no validation views to check parity on")
    return np.stack([prepare_file(p, [run.size], run.settings).inputs[run.size] for p in paths])


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
    return threshold, oof


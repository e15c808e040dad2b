"""One fold model -> one bundle member: the only member builder (`build`, `import-seed`, `bench`).

    member = build_member(model, directory, MemberSpec("fold0_tiny", 0, "tiny", (256, 128), settings),
                          views=GateViews.of_rows(rows))

Exports the ONNX, the torch.export program and the FP16 ONNX into `directory`; then, on real
preprocessed held-out views (the engine's pixel path), checks the required artifacts against the
eager model (ParityError: fatal) and records the optional artifacts' gates (gates.py: never
fatal). `views=None` skips every check (random-weight timing members of `bench`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mammo_batch.build import gates
from mammo_batch.build.export import export_onnx, export_torch
from mammo_batch.build.fp16 import export_fp16_onnx
from mammo_batch.build.parity import check_parity, eager_probabilities, in_chunks
from mammo_batch.engine.bundle import Bf16Gate, Member, new_member
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.engine.runtimes.torch_runner import load_torch_runner
from mammo_batch.train.models import ProbabilityModel

log = logging.getLogger("mammo_batch.build")

PARITY_VIEWS = 8  # the required artifacts and the FP16 copy are checked on this many views
BF16_GATE_VIEWS = 128  # whole held-out studies up to this many views (docs/scoring.md, "bf16 gate")


@dataclass(frozen=True)
class MemberSpec:
    name: str
    fold: int | None
    arch: str
    size: tuple[int, int]  # (H, W)
    settings: PreprocessSettings
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateViews:
    """Held-out views to check a member on: files, and per file its study and side; `targets`
    (study -> 0/1) give the bf16 gate's study AUC (empty: unlabelled, the AUC is unknown)."""

    paths: list[str]
    study_keys: list[str]
    lateralities: list[str]
    targets: dict[str, int]

    @classmethod
    def of_rows(cls, rows: Iterable[dict], limit: int = BF16_GATE_VIEWS) -> GateViews:
        """Whole studies (so that study AUC means what `score` computes) of rows with path,
        study_key, laterality and optionally target, up to `limit` views."""
        studies: dict[str, list[dict]] = {}
        for row in rows:
            studies.setdefault(row["study_key"], []).append(row)
        chosen: list[dict] = []
        for views in studies.values():
            if chosen and len(chosen) + len(views) > limit:
                break
            chosen += views
        targets = {r["study_key"]: int(r["target"]) for r in chosen if r.get("target") not in (None, "")}
        return cls([str(r["path"]) for r in chosen], [r["study_key"] for r in chosen],
                   [r["laterality"] for r in chosen], targets)


def build_member(model: ProbabilityModel, directory: Path, spec: MemberSpec, views: GateViews | None) -> Member:
    """Export `model` into `directory` and check it; returns the member (not yet in a bundle.json)."""
    height, width = spec.size
    dtype = spec.settings.dtype
    files = {"onnx": f"{spec.name}.onnx", "torch": f"{spec.name}.pt2", "onnx_fp16": f"{spec.name}.fp16.onnx"}
    started = time.perf_counter()
    export_onnx(model, directory / files["onnx"], height, width, dtype)
    export_torch(model, directory / files["torch"], height, width, dtype)
    fp16_file = _export_fp16(model, directory / files["onnx_fp16"], spec)
    member = new_member(directory, name=spec.name, fold=spec.fold, arch=spec.arch, height=height, width=width,
                        onnx=files["onnx"], torch=files["torch"], onnx_fp16=fp16_file, dtype=dtype,
                        window=spec.settings.window, crop=spec.settings.crop, profile=spec.settings.profile,
                        metrics=spec.metrics)
    log.info("%s: exported in %.1f s", spec.name, time.perf_counter() - started)
    if views is None:
        return member
    return _checked(model, directory, member, spec, views)


def _export_fp16(model: ProbabilityModel, path: Path, spec: MemberSpec) -> str | None:
    """The FP16 copy's file name, or None when it cannot be exported (an optional artifact)."""
    try:
        export_fp16_onnx(model, path, *spec.size, spec.settings.dtype)
    except Exception as exc:
        path.unlink(missing_ok=True)
        log.warning("%s: no FP16 ONNX (TensorRT engines cannot be built for it): %s", spec.name, safe_error(exc))
        return None
    return path.name


def _checked(model: ProbabilityModel, directory: Path, member: Member, spec: MemberSpec,
             views: GateViews) -> Member:
    images = _prepare(views.paths[:PARITY_VIEWS], spec)
    eager = in_chunks(lambda chunk: eager_probabilities(model, chunk), images, 4)
    report = check_parity(model, directory / member.artifacts.onnx, directory / member.artifacts.torch,
                          images, eager=eager)  # raises ParityError: the required artifacts
    log.info("%s: %s", spec.name, report.summary())
    fp16 = gates.fp16_gate(member, directory, images, eager) if member.artifacts.onnx_fp16 else None
    if fp16 is not None:
        log.log(logging.INFO if fp16.passed else logging.WARNING, "%s: FP16 gate %s", spec.name,
                "passed" if fp16.passed else f"NOT passed, the copy is kept and recorded: {fp16.reason}")
    metrics = {**member.metrics, "parity_onnx_max_diff": float(report.onnx_max_diff),
               "parity_torch_max_diff": float(report.torch_max_diff)}
    if fp16 is not None and fp16.max_prob_diff is not None:
        metrics["fp16_onnx_max_diff"] = fp16.max_prob_diff
    bf16 = _bf16(model, directory, member, spec, views, images, eager)
    return dataclasses.replace(member, metrics=metrics, fp16_gate=fp16, bf16_gate=bf16)


def _bf16(model: ProbabilityModel, directory: Path, member: Member, spec: MemberSpec, views: GateViews,
          first: np.ndarray, first_eager: np.ndarray) -> Bf16Gate:
    why = gates.why_no_bf16_gate()
    if why:
        log.info("%s: bf16 gate skipped: %s", spec.name, why)
        return gates.skipped_bf16_gate(why)
    rest_paths = views.paths[len(first):]  # the parity views are the first ones: prepared once
    rest = _prepare(rest_paths, spec) if rest_paths else first[:0]
    rest_eager = in_chunks(lambda chunk: eager_probabilities(model, chunk), rest, 4) if len(rest) else first_eager[:0]
    images, fp32 = np.concatenate([first, rest]), np.concatenate([first_eager, rest_eager])
    # torch-cpu-bf16's runner (the same code); its policy was checked above (why_no_bf16_gate)
    runner = load_torch_runner(member, directory, "cpu", "bf16")
    gate = gates.bf16_gate(runner, images, fp32, views.study_keys[:len(images)], views.lateralities[:len(images)],
                           views.targets)
    log.info("%s: bf16 gate %s on %d views of %d studies", spec.name,
             "passed" if gate.passed else f"NOT passed ({gate.reason})", gate.views, gate.studies)
    return gate


class ViewError(ValueError):
    """A held-out view to check a member on cannot be prepared; the message names the file."""


def _prepare(paths: list[str], spec: MemberSpec) -> np.ndarray:
    """Views through the engine's pixel path at the member's size."""
    images = []
    for path in paths:
        try:
            images.append(prepare_file(path, [spec.size], spec.settings).inputs[spec.size])
        except Exception as exc:  # DecodeError, a missing file: the check cannot run, the build stops
            raise ViewError(f"{path}: cannot prepare this view to check {spec.name} on: {safe_error(exc)}") from None
    return np.stack(images)

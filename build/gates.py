"""The optional artifacts' gates: recorded in bundle.json, never fatal to the build.

    gate = fp16_gate(member, directory, images, eager)              # the FP16 ONNX vs the FP32 model
    gate = bf16_gate(member, directory, images, fp32, keys, sides, targets)   # bf16 vs fp32, study AUC

Both run the artifact through the engine's own runtimes (ONNX Runtime on the FP16 copy; the torch
runner under bf16 autocast), as `score` would. A copy that misses its gate is kept and recorded as
not passed (with the numbers and the reason): the FP16 runtimes then refuse that member or fall
back to FP32, and auto does not pick bf16 (docs/scoring.md). A NaN in the output fails the gate.
The bf16 gate is skipped, with the reason recorded, where the torch-cpu-bf16 runtime cannot run
(a CPU without bf16 instructions: it would be emulated, minutes per member, for a runtime that
refuses to run there anyway).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mammo_batch.build.parity import as_batch, in_chunks, max_diff
from mammo_batch.engine.bundle import Bf16Gate, Fp16Gate, Member
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.runtimes import MemberRunner, OnnxCpuRuntime, TorchRuntime
from mammo_batch.train.metrics import study_auc

FP16_TOLERANCE = 1e-2  # max |probability difference| vs FP32 (issue 9)
# docs/scoring.md, "bf16 gate": why these two numbers.
BF16_MAX_PROB_DIFF = 0.02
BF16_STUDY_AUC_CHANGE = 0.005


def fp16_gate(member: Member, directory: Path, images: np.ndarray, eager: np.ndarray,
              tolerance: float | None = None, batch_size: int = 2) -> Fp16Gate:
    """The member's FP16 ONNX on ONNX Runtime (CPU) vs the FP32 eager probabilities `eager`
    (`tolerance`: FP16_TOLERANCE unless given)."""
    tolerance = FP16_TOLERANCE if tolerance is None else tolerance
    images = as_batch(images)
    try:
        runner = OnnxCpuRuntime(artifact="onnx_fp16").load(member, directory)
        diff = max_diff(in_chunks(runner.predict, images, batch_size), eager)
    except Exception as exc:  # an FP16 graph ONNX Runtime refuses: the copy is unusable, the build goes on
        return Fp16Gate(passed=False, views=len(images), max_prob_diff=None, tolerance=tolerance,
                        reason=f"ONNX Runtime cannot run the FP16 copy: {safe_error(exc)}")
    if math.isnan(diff):
        return Fp16Gate(passed=False, views=len(images), max_prob_diff=None, tolerance=tolerance,
                        reason="the FP16 copy gave NaN")
    passed = diff <= tolerance
    reason = "" if passed else f"max |prob diff| {diff:.3g} > tolerance {tolerance:g}"
    return Fp16Gate(passed=passed, views=len(images), max_prob_diff=diff, tolerance=tolerance, reason=reason)


def why_no_bf16_gate() -> str | None:
    """None when the bf16 gate can run here (the torch-cpu-bf16 runtime can); else why it is skipped."""
    return TorchRuntime("cpu", "bf16").why_unavailable()


def skipped_bf16_gate(why: str) -> Bf16Gate:
    return Bf16Gate(passed=False, views=0, studies=0, max_prob_diff=None, study_auc_change=None,
                    max_prob_diff_tolerance=BF16_MAX_PROB_DIFF, study_auc_change_tolerance=BF16_STUDY_AUC_CHANGE,
                    reason=f"skipped: {why}")


def bf16_gate(runner: MemberRunner, images: np.ndarray, fp32: np.ndarray, study_keys: list[str],
              lateralities: list[str], targets: dict[str, int], batch_size: int = 4) -> Bf16Gate:
    """The bf16 gate of one member: `runner` (the torch runner in bf16) vs `fp32` on the same
    held-out `images`.

    `study_keys`, `lateralities` (one per image) and `targets` (study_key -> 0/1) give the
    study-level AUC both ways, aggregated as `score` does. Passed when the max |prob diff| and
    the |AUC change| are within the tolerances; without both classes the AUC change is unknown
    and the gate is not passed (bf16 then stays off unless requested).
    """
    images = as_batch(images)
    bf16 = in_chunks(runner.predict, images, batch_size)
    diff = max_diff(bf16, fp32)
    # No AUC over NaN probabilities (scikit-learn refuses them); the NaN fails the gate anyway.
    labelled = all(key in targets for key in study_keys) and not math.isnan(diff)
    before = study_auc(study_keys, lateralities, fp32, targets) if labelled else math.nan
    after = study_auc(study_keys, lateralities, bf16, targets) if labelled else math.nan
    change = None if math.isnan(before) or math.isnan(after) else float(after - before)
    reasons = []
    if math.isnan(diff):
        reasons.append("bf16 gave NaN")
    elif diff > BF16_MAX_PROB_DIFF:
        reasons.append(f"max |prob diff| {diff:.3g} > {BF16_MAX_PROB_DIFF:g}")
    if change is None:
        if not math.isnan(diff):
            reasons.append("no study AUC: the views lack labels of both classes")
    elif abs(change) > BF16_STUDY_AUC_CHANGE:
        reasons.append(f"|study AUC change| {abs(change):.3g} > {BF16_STUDY_AUC_CHANGE:g}")
    return Bf16Gate(passed=not reasons, views=len(images), studies=len(set(study_keys)),
                    max_prob_diff=None if math.isnan(diff) else diff, study_auc_change=change,
                    max_prob_diff_tolerance=BF16_MAX_PROB_DIFF, study_auc_change_tolerance=BF16_STUDY_AUC_CHANGE,
                    reason="; ".join(reasons))

"""Do the exported artifacts compute what the eager model computes? The build's gate.

    report = check_parity(ProbabilityModel(net), "fold0.onnx", "fold0.pt2", views)   # views: (B, H, W)

Each artifact is run the way the engine runs it (ONNX Runtime on the CPU; the torch.export
program's `.module()`) on the same images as the eager model; the largest absolute
probability difference must stay within the tolerance, else ParityError names the artifact.
Exporters can silently produce wrong graphs (the dynamo exporter did for ConvNeXt here).

    gate = check_bf16("fold0.pt2", views, fp32_probs, study_keys, lateralities, targets)

The bf16 gate runs the torch artifact the way `torch-cpu-bf16` does and records, rather than
raises, how far it moves probabilities and the study-level AUC (docs/scoring.md, "bf16 gate").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from mammo_batch.build.export import INPUT_NAME, evaluating
from mammo_batch.engine.bundle import Bf16Gate
from mammo_batch.engine.runtimes.torch_cpu import prepare_bf16_module
from mammo_batch.train.metrics import study_auc
from mammo_batch.train.models import ProbabilityModel

DEFAULT_TOLERANCE = 1e-4  # docs/training.md, "Build"
# docs/scoring.md, "bf16 gate": why these two numbers.
BF16_MAX_PROB_DIFF = 0.02
BF16_STUDY_AUC_CHANGE = 0.005
Predict = Callable[[np.ndarray], np.ndarray]  # (B, H, W) -> (B,) float32 probabilities


class ParityError(RuntimeError):
    """An exported artifact disagrees with the eager model by more than the tolerance."""


@dataclass(frozen=True)
class ParityReport:
    """Max absolute probability difference of each artifact vs the eager model (None: not checked)."""

    n_images: int
    tolerance: float
    onnx_max_diff: float | None
    torch_max_diff: float | None

    def summary(self) -> str:
        diffs = {"onnx": self.onnx_max_diff, "torch": self.torch_max_diff}
        checked = ", ".join(f"{name} {diff:.2e}" for name, diff in diffs.items() if diff is not None)
        return f"parity on {self.n_images} images: max |diff| {checked} (tolerance {self.tolerance:g})"


def check_parity(
    model: ProbabilityModel,
    onnx_path: str | Path | None,
    torch_path: str | Path | None,
    images: np.ndarray,
    tolerance: float = DEFAULT_TOLERANCE,
    batch_size: int = 4,
) -> ParityReport:
    """Compare the artifacts (either path may be None to skip it) with eager `model` on `images`.

    `images` is a (B, H, W) batch of the member's input dtype, e.g. preprocessed validation
    views; they are run `batch_size` at a time (full-size ConvNeXt activations are large).
    Raises ParityError for the first artifact whose max difference exceeds `tolerance`.
    """
    images = _as_batch(images)
    eager = _in_chunks(lambda chunk: eager_probabilities(model, chunk), images, batch_size)
    runs = {"onnx": (onnx_path, onnx_predictor), "torch": (torch_path, torch_predictor)}
    diffs: dict[str, float | None] = {}
    for name, (path, load) in runs.items():
        if path is None:
            diffs[name] = None
            continue
        diff = _max_diff(_in_chunks(load(path), images, batch_size), eager)
        # `not diff <= tolerance` also catches NaN, which compares false with everything.
        if not diff <= tolerance:
            raise ParityError(f"{path}: the {name} artifact differs from the eager model by up to "
                              f"{diff:.3g} in probability on {len(images)} images (tolerance {tolerance:g})")
        diffs[name] = diff
    return ParityReport(len(images), tolerance, diffs["onnx"], diffs["torch"])


def eager_probabilities(model: ProbabilityModel, images: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B,) float32 probabilities from the eager model, in eval mode."""
    with evaluating(model), torch.no_grad():
        output = model(torch.from_numpy(np.ascontiguousarray(images)[:, np.newaxis]))
    return output.reshape(len(images)).numpy()


def onnx_predictor(path: str | Path) -> Predict:
    """The ONNX artifact on ONNX Runtime's CPU provider: (B, H, W) -> (B,) float32 probabilities."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(images: np.ndarray) -> np.ndarray:
        (output,) = session.run(None, {INPUT_NAME: np.ascontiguousarray(images)[:, np.newaxis]})
        return np.asarray(output, dtype=np.float32).reshape(len(images))

    return predict


def torch_predictor(path: str | Path) -> Predict:
    """The torch.export program as the engine runs it (`.module()`, no eval() call): (B, H, W) -> (B,)."""
    module = torch.export.load(str(path)).module()

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            output = module(torch.from_numpy(np.ascontiguousarray(images)[:, np.newaxis]))
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output.float().reshape(len(images)).numpy()

    return predict


def bf16_predictor(path: str | Path) -> Predict:
    """The torch.export program as `torch-cpu-bf16` runs it: bf16 autocast, channels_last.

    Run even on a CPU without bf16 instructions (slowly, emulated): the numbers are the same.
    """
    module = prepare_bf16_module(torch, torch.export.load(str(path)).module())

    def predict(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            output = module(torch.from_numpy(np.ascontiguousarray(images)[:, np.newaxis]))
        if isinstance(output, (tuple, list)):
            output = output[0]
        return output.float().reshape(len(images)).numpy()

    return predict


def check_bf16(
    torch_path: str | Path,
    images: np.ndarray,
    fp32: np.ndarray,
    study_keys: list[str],
    lateralities: list[str],
    targets: dict[str, int],
    batch_size: int = 4,
) -> Bf16Gate:
    """The bf16 gate of one member: bf16 vs `fp32` probabilities of the same held-out `images`.

    `study_keys`, `lateralities` (one per image) and `targets` (study_key -> 0/1) give the
    study-level AUC both ways, aggregated as `score` does. Passed when the max |prob diff| and
    the |AUC change| are within the tolerances; without both classes the AUC change is unknown
    and the gate is not passed (bf16 then stays off unless requested).
    """
    images = _as_batch(images)
    bf16 = _in_chunks(bf16_predictor(torch_path), images, batch_size)
    max_diff = _max_diff(bf16, np.asarray(fp32))
    before = study_auc(study_keys, lateralities, fp32, targets)
    after = study_auc(study_keys, lateralities, bf16, targets)
    change = None if np.isnan(before) or np.isnan(after) else float(after - before)
    passed = bool(max_diff <= BF16_MAX_PROB_DIFF and change is not None
                  and abs(change) <= BF16_STUDY_AUC_CHANGE)
    return Bf16Gate(passed=passed, views=len(images), studies=len(set(study_keys)),
                    max_prob_diff=max_diff, study_auc_change=change,
                    max_prob_diff_tolerance=BF16_MAX_PROB_DIFF,
                    study_auc_change_tolerance=BF16_STUDY_AUC_CHANGE)


def _in_chunks(predict: Predict, images: np.ndarray, batch_size: int) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return np.concatenate([predict(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def _as_batch(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 3 or len(images) == 0:
        shape = getattr(images, "shape", None)
        raise ValueError(f"images must be a non-empty (B, H, W) numpy array, got shape {shape}")
    return np.ascontiguousarray(images)


def _max_diff(artifact: np.ndarray, eager: np.ndarray) -> float:
    return float(np.max(np.abs(artifact.astype(np.float64) - eager.astype(np.float64))))

"""Do the exported artifacts compute what the eager model computes? The build's required gate.

    report = check_parity(ProbabilityModel(net), "fold0.onnx", "fold0.pt2", views)   # views: (B, H, W)

Each artifact is run by the engine's own runtimes (ONNX Runtime on the CPU; the torch runner in
fp32), exactly as `score` runs it, on the same images as the eager model; the largest absolute
probability difference must stay within the tolerance (NaN fails), else ParityError names the
artifact. Exporters can silently produce wrong graphs (the dynamo exporter did for ConvNeXt here).
The optional artifacts' gates (FP16, bf16) record instead of raising: gates.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mammo_batch.build.export import evaluating
from mammo_batch.engine.bundle import Artifacts, Member, MemberInput, Preprocess
from mammo_batch.engine.pixels.settings import FULL_SCALE
from mammo_batch.engine.runtimes import OnnxCpuRuntime, TorchRuntime
from mammo_batch.train.models import ProbabilityModel

DEFAULT_TOLERANCE = 1e-4  # docs/training.md, "Build"
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
    eager: np.ndarray | None = None,
) -> ParityReport:
    """Compare the artifacts (either path may be None to skip it) with eager `model` on `images`.

    `images` is a (B, H, W) batch of the member's input dtype, e.g. preprocessed validation
    views; they are run `batch_size` at a time (full-size ConvNeXt activations are large).
    `eager`: the eager model's probabilities on `images`, when the caller has them already.
    Raises ParityError for the first artifact whose max difference exceeds `tolerance`.
    """
    images = as_batch(images)
    if eager is None:
        eager = in_chunks(lambda chunk: eager_probabilities(model, chunk), images, batch_size)
    diffs: dict[str, float | None] = {"onnx": None, "torch": None}
    for kind, path in (("onnx", onnx_path), ("torch", torch_path)):
        if path is None:
            continue
        path = Path(path)
        member = probe_member(path, kind, images)
        runtime = OnnxCpuRuntime() if kind == "onnx" else TorchRuntime("cpu", "fp32")
        diff = max_diff(in_chunks(runtime.load(member, path.parent).predict, images, batch_size), eager)
        # `not diff <= tolerance` also catches NaN, which compares false with everything.
        if not diff <= tolerance:
            raise ParityError(f"{path}: the {kind} artifact differs from the eager model by up to "
                              f"{diff:.3g} in probability on {len(images)} images (tolerance {tolerance:g})")
        diffs[kind] = diff
    return ParityReport(len(images), tolerance, diffs["onnx"], diffs["torch"])


def probe_member(path: Path, kind: str, images: np.ndarray) -> Member:
    """A member of one artifact file, shaped like `images`: what the runtimes load to check it."""
    height, width = images.shape[1:]
    dtype = images.dtype.name
    artifacts = Artifacts(onnx=path.name) if kind == "onnx" else Artifacts(onnx="", torch=path.name)
    return Member(name=path.stem, fold=None, arch="probe", input=MemberInput(height, width, 1, dtype,
                                                                            (0.0, float(FULL_SCALE[dtype]))),
                  preprocess=Preprocess("dicom", True, "chest_wall_left"), artifacts=artifacts, sha256={})


def eager_probabilities(model: ProbabilityModel, images: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B,) float32 probabilities from the eager model, in eval mode."""
    with evaluating(model), torch.no_grad():
        output = model(torch.from_numpy(np.ascontiguousarray(images)[:, np.newaxis]))
    return output.reshape(len(images)).numpy()


def in_chunks(predict: Predict, images: np.ndarray, batch_size: int) -> np.ndarray:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    return np.concatenate([predict(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def as_batch(images: np.ndarray) -> np.ndarray:
    if not isinstance(images, np.ndarray) or images.ndim != 3 or len(images) == 0:
        shape = getattr(images, "shape", None)
        raise ValueError(f"images must be a non-empty (B, H, W) numpy array, got shape {shape}")
    return np.ascontiguousarray(images)


def max_diff(artifact: np.ndarray, eager: np.ndarray) -> float:
    """The largest |difference|; NaN when either side holds a NaN (np.max propagates it)."""
    return float(np.max(np.abs(artifact.astype(np.float64) - np.asarray(eager, dtype=np.float64))))

"""The two seams between the scheduler and the model runtimes (docs/scoring.md, "Runtimes").

A Runtime (ONNX Runtime on the CPU, torch, later TensorRT) loads each bundle member into a
MemberRunner; the scheduler only ever calls `predict` on same-size batches of one member.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mammo_batch.engine.bundle import Member


class RuntimeUnavailableError(RuntimeError):
    """The requested runtime cannot run here (library missing, no GPU, no artifact)."""


@runtime_checkable
class MemberRunner(Protocol):
    """One loaded bundle member, ready to score batches of views.

    `predict` takes a (B, H, W) batch of the member's input dtype, the pixel path's output
    as it is (the channel axis, normalisation and sigmoid are the runner's and the model's
    business), and returns (B,) float32 probabilities on the host.

    Today batches are numpy arrays in host memory. A GPU runtime may later also accept
    device arrays (e.g. DALI/CuPy output, via DLPack) through this same method, so that
    decoded views need not round-trip through the host; the result stays a small host array.
    """

    name: str  # the member's name
    input_size: tuple[int, int]  # (H, W)

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Runtime(Protocol):
    """Turns bundle members into runners, e.g. "onnxruntime-cpu", "torch-cpu", "torch-cuda"."""

    name: str

    def load(self, member: Member, bundle_dir: Path) -> MemberRunner: ...


def check_batch(member: Member, batch: object) -> np.ndarray:
    """Return `batch` if it is a (B, H, W) array of the member's dtype; raise ValueError if not.

    A wrong dtype is refused, not converted: it means the pixel path and the bundle disagree,
    and a silent cast (say uint16 into a uint8 model) would score garbage.
    """
    if not isinstance(batch, np.ndarray):
        raise TypeError(f"member {member.name!r}: expected a numpy array, got {type(batch).__name__}")
    height, width = member.input_size
    if batch.ndim != 3 or batch.shape[1:] != (height, width):
        raise ValueError(f"member {member.name!r}: expected a batch of shape (B, {height}, {width}), "
                         f"got {batch.shape}")
    if batch.dtype != np.dtype(member.input.dtype):
        raise ValueError(f"member {member.name!r}: expected {member.input.dtype} pixels, got {batch.dtype}")
    return batch


def as_probabilities(member: Member, output: np.ndarray, batch_size: int) -> np.ndarray:
    """A model output of shape (B, 1) or (B,) -> (B,) float32; anything else is an error."""
    if output.shape not in ((batch_size,), (batch_size, 1)):
        raise ValueError(f"member {member.name!r}: the model returned shape {output.shape}; "
                         f"expected ({batch_size}, 1) or ({batch_size},)")
    return np.ascontiguousarray(output.reshape(batch_size), dtype=np.float32)

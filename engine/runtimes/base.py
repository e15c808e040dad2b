"""The two seams between the scheduler and the model runtimes (docs/scoring.md, "Runtimes").

A Runtime (ONNX Runtime on the CPU, torch, later TensorRT) loads each bundle member into a
MemberRunner; the scheduler only ever calls `predict` on same-size batches of one member.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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

    A batch is numpy or a torch tensor (check_batch); runtimes whose spec says they accept
    device arrays (registry.py) take tensors already on the GPU, the others host arrays only.
    """

    name: str  # the member's name
    input_size: tuple[int, int]  # (H, W)

    def predict(self, batch: Any) -> np.ndarray: ...


@runtime_checkable
class Runtime(Protocol):
    """Turns bundle members into runners, e.g. "onnxruntime-cpu", "torch-cpu", "torch-cuda"."""

    name: str
    accepts_device_arrays: bool  # True: give it tensors on its device (the GPU preparer's), no host copy

    def load(self, member: Member, bundle_dir: Path) -> MemberRunner: ...


def check_batch(member: Member, batch: object) -> object:
    """Return `batch` if it is a (B, H, W) array of the member's dtype; raise if not.

    Any array is checked the same way: numpy, a torch tensor on any device, or another array
    with `shape` and `dtype` (DLPack producers). A wrong dtype is refused, not converted: it
    means the pixel path and the bundle disagree, and a silent cast (say uint16 into a uint8
    model) would score garbage.
    """
    shape, dtype = getattr(batch, "shape", None), getattr(batch, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"member {member.name!r}: expected an array (numpy or a torch tensor), "
                        f"got {type(batch).__name__}")
    height, width = member.input_size
    if len(shape) != 3 or tuple(shape[1:]) != (height, width):
        raise ValueError(f"member {member.name!r}: expected a batch of shape (B, {height}, {width}), "
                         f"got {tuple(shape)}")
    if dtype_name(dtype) != member.input.dtype:
        raise ValueError(f"member {member.name!r}: expected {member.input.dtype} pixels, got {dtype_name(dtype)}")
    return batch


def dtype_name(dtype: object) -> str:
    """numpy's and torch's dtypes by one name: uint8, uint16, float32, ..."""
    return str(dtype).removeprefix("torch.") if type(dtype).__module__.startswith("torch") \
        else np.dtype(dtype).name  # type: ignore[call-overload]


def host_array(member: Member, batch: object) -> np.ndarray:
    """A checked batch as a numpy array: numpy as it is, a host tensor without a copy (DLPack).
    A device array is refused: a CPU runtime does not copy from the GPU behind the scheduler's back."""
    check_batch(member, batch)
    if isinstance(batch, np.ndarray):
        return batch
    device = getattr(batch, "device", None)
    if device is not None and str(device) != "cpu":
        raise TypeError(f"member {member.name!r}: this runtime takes host arrays; got one on {device}")
    return np.from_dlpack(batch)  # type: ignore[arg-type]


def as_probabilities(member: Member, output: np.ndarray, batch_size: int) -> np.ndarray:
    """A model output of shape (B, 1) or (B,) -> (B,) float32; anything else is an error."""
    if output.shape not in ((batch_size,), (batch_size, 1)):
        raise ValueError(f"member {member.name!r}: the model returned shape {output.shape}; "
                         f"expected ({batch_size}, 1) or ({batch_size},)")
    return np.ascontiguousarray(output.reshape(batch_size), dtype=np.float32)

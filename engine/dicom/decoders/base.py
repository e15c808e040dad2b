"""The decoder interface: a batch of encoded views in, one stored-value image (or an error) per view out.

Images are the stored values exactly (no scaling to the dtype's range), shape (rows, columns):
a numpy array from the CPU backend, a torch int32 tensor on the decoder's device from the GPU
backends (int32 because torch's uint16 is a storage-only dtype; every 16-bit value fits).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydicom import Dataset


class DecoderUnavailableError(RuntimeError):
    """The requested decoder cannot run here; the message says why (package, GPU, library)."""


@dataclass(frozen=True)
class EncodedView:
    """One view ready to decode: its dataset (pixel data still encoded) and, when a GPU decoder
    may take it, the codestream cut from the encapsulated PixelData."""

    ds: Dataset
    codestream: bytes | None  # None: only the CPU decoder can take this view
    why_cpu: str = ""  # when codestream is None: the counted fallback reason (codestream.py)


@runtime_checkable
class DecoderBackend(Protocol):
    name: str  # "cpu" | "nvimgcodec" | "dali"
    device: str  # "cpu" or a torch device string such as "cuda:0"

    def decode(self, views: Sequence[EncodedView]) -> list[Any | Exception]:
        """One result per view, in order: the stored-value image, or the exception that failed it."""
        ...


def why_gpu_stack_unavailable(module: str, package: str, extra: str, device: str = "cuda") -> str | None:
    """None when `module` (a GPU decoder package), torch and, for a CUDA device, a GPU are all here."""
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        return f"{package} is not installed (pip install 'mammo-batch[{extra}]')"
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (the GPU path hands images to torch)"
    if device != "cpu":
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device"
    return None

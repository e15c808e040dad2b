"""`--runtime auto|onnx|torch`: which runtime scores this bundle here, and why.

auto, best first: TensorRT engine for this GPU (a later issue: see `_auto`) > torch on CUDA
(needs torch, a CUDA device and a torch artifact for every member) > ONNX Runtime on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import NamedTuple

from mammo_batch.engine.bundle import Bundle
from mammo_batch.engine.runtimes.base import Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime
from mammo_batch.engine.runtimes.torch_export import TorchExportRuntime, import_torch

log = logging.getLogger(__name__)
CHOICES = ("auto", "onnx", "torch")


class Selection(NamedTuple):
    runtime: Runtime
    reason: str  # one line for people, e.g. "onnxruntime-cpu (no CUDA device)"


def select_runtime(requested: str, bundle: Bundle, threads: int | None = None) -> Selection:
    """Pick the runtime for `bundle`; raise RuntimeUnavailableError when `requested` cannot run.

    `threads` sets the CPU threads of a CPU runtime (default: the cores this process may use).
    """
    if requested == "onnx":
        selection = Selection(OnnxCpuRuntime(threads), "onnxruntime-cpu (requested)")
    elif requested == "torch":
        selection = _torch(bundle, threads)
    elif requested == "auto":
        selection = _auto(bundle, threads)
    else:
        raise RuntimeUnavailableError(f"unknown runtime {requested!r}: choose one of {', '.join(CHOICES)}")
    log.info("runtime: %s", selection.reason)
    return selection


def _auto(bundle: Bundle, threads: int | None) -> Selection:
    # TensorRT seam (later issue): try a TensorRT runtime here first, when every member has an
    # engine built for this GPU's compute capability and the installed TensorRT version.
    why_not = _why_not_torch_cuda(bundle)
    if why_not is None:
        return Selection(TorchExportRuntime("cuda", threads), "torch-cuda (CUDA device and torch artifacts)")
    return Selection(OnnxCpuRuntime(threads), f"onnxruntime-cpu ({why_not})")


def _why_not_torch_cuda(bundle: Bundle) -> str | None:
    """None when torch on CUDA can run every member; else the reason it cannot."""
    missing = _members_without_torch(bundle)
    if missing:  # checked first: it needs no torch import (seconds, and maybe not installed)
        return f"no torch artifact for {', '.join(missing)}"
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    try:
        import torch
    except Exception as e:  # a broken CUDA install can fail with OSError, not only ImportError
        return f"torch not importable: {e}"
    if not torch.cuda.is_available():
        return "no CUDA device"
    return None


def _torch(bundle: Bundle, threads: int | None) -> Selection:
    missing = _members_without_torch(bundle)
    if missing:
        raise RuntimeUnavailableError(f"--runtime torch: bundle {bundle.id} has no torch artifact for "
                                      f"{', '.join(missing)}; use --runtime onnx or auto")
    torch = import_torch()
    if torch.cuda.is_available():
        return Selection(TorchExportRuntime("cuda", threads), "torch-cuda (requested)")
    return Selection(TorchExportRuntime("cpu", threads), "torch-cpu (requested; no CUDA device)")


def _members_without_torch(bundle: Bundle) -> list[str]:
    return [member.name for member in bundle.members if member.artifacts.torch is None]

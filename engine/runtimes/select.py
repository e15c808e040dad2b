"""`--runtime auto|onnx|torch|tensorrt`: which runtime scores this bundle here, and why.

auto, best first: TensorRT engines built for this GPU and TensorRT version > torch on CUDA in FP16
(needs torch, a CUDA device and a torch artifact for every member) > ONNX Runtime on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import NamedTuple

from mammo_batch.engine.bundle import Bundle
from mammo_batch.engine.runtimes.base import Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime
from mammo_batch.engine.runtimes.tensorrt import TensorRTRuntime, why_not_tensorrt
from mammo_batch.engine.runtimes.torch_cuda import TorchCudaRuntime
from mammo_batch.engine.runtimes.torch_export import TorchExportRuntime, import_torch

log = logging.getLogger(__name__)
CHOICES = ("auto", "onnx", "torch", "tensorrt")


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
    elif requested == "tensorrt":
        selection = _tensorrt(bundle)
    elif requested == "auto":
        selection = _auto(bundle, threads)
    else:
        raise RuntimeUnavailableError(f"unknown runtime {requested!r}: choose one of {', '.join(CHOICES)}")
    log.info("runtime: %s", selection.reason)
    return selection


def _auto(bundle: Bundle, threads: int | None) -> Selection:
    why_not_trt = why_not_tensorrt(bundle)
    if why_not_trt is None:
        return Selection(TensorRTRuntime(), "tensorrt (engines for this GPU and TensorRT version)")
    log.info("runtime: not tensorrt: %s", why_not_trt)
    why_not = _why_not_torch_cuda(bundle)
    if why_not is None:
        return Selection(TorchCudaRuntime("cuda"), f"torch-cuda fp16 (CUDA device and torch artifacts; "
                                                   f"not tensorrt: {why_not_trt})")
    return Selection(OnnxCpuRuntime(threads), f"onnxruntime-cpu ({why_not})")


def _tensorrt(bundle: Bundle) -> Selection:
    why_not = why_not_tensorrt(bundle)
    if why_not:
        raise RuntimeUnavailableError(f"--runtime tensorrt: {why_not}")
    return Selection(TensorRTRuntime(), "tensorrt (requested)")


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

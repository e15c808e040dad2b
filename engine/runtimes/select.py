"""`--runtime auto|onnx|torch|tensorrt|torch-cpu-bf16`: which runtime scores this bundle here, and why.

auto, best first: TensorRT engines built for this GPU and TensorRT version > torch on CUDA in FP16
(needs torch, a CUDA device and a torch artifact for every member) > torch on the CPU in bf16
(needs torch, a CPU with bf16 instructions, and every member's bf16 gate passed at build time)
> ONNX Runtime fp32 on the CPU.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, NamedTuple

from mammo_batch.engine.bundle import Bundle
from mammo_batch.engine.runtimes.base import Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime
from mammo_batch.engine.runtimes.tensorrt import TensorRTRuntime, why_not_tensorrt
from mammo_batch.engine.runtimes.torch_cpu import sleep_idle_openmp_threads, torch_bf16_ready, why_no_cpu_bf16
from mammo_batch.engine.runtimes.torch_cuda import TorchCudaRuntime
from mammo_batch.engine.runtimes.torch_export import TorchExportRuntime, import_torch

log = logging.getLogger(__name__)
CHOICES = ("auto", "onnx", "torch", "tensorrt", "torch-cpu-bf16")


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
    elif requested == "torch-cpu-bf16":
        selection = _torch_cpu_bf16(bundle, threads)
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
    torch, why_not = _usable_torch(bundle)
    if torch is None:
        return Selection(OnnxCpuRuntime(threads), f"onnxruntime-cpu ({why_not})")
    if torch.cuda.is_available():
        return Selection(TorchCudaRuntime("cuda"), f"torch-cuda fp16 (CUDA device and torch artifacts; "
                                                   f"not tensorrt: {why_not_trt})")
    why_not_bf16 = _why_not_bf16(bundle, torch)
    if why_not_bf16 is None:
        return Selection(TorchExportRuntime("cpu", threads, precision="bf16"),
                         "torch-cpu-bf16 (no CUDA device; CPU has bf16 instructions; every member "
                         "passed its bf16 gate)")
    return Selection(OnnxCpuRuntime(threads), f"onnxruntime-cpu (no CUDA device; not bf16: {why_not_bf16})")


def _tensorrt(bundle: Bundle) -> Selection:
    why_not = why_not_tensorrt(bundle)
    if why_not:
        raise RuntimeUnavailableError(f"--runtime tensorrt: {why_not}")
    return Selection(TensorRTRuntime(), "tensorrt (requested)")


def _usable_torch(bundle: Bundle) -> tuple[Any, str]:
    """(the torch module, "") when torch can run every member; else (None, the reason it cannot)."""
    missing = _members_without_torch(bundle)
    if missing:  # checked first: it needs no torch import (seconds, and maybe not installed)
        return None, f"no torch artifact for {', '.join(missing)}"
    if importlib.util.find_spec("torch") is None:
        return None, "torch not installed"
    sleep_idle_openmp_threads()
    try:
        import torch
    except Exception as e:  # a broken CUDA install can fail with OSError, not only ImportError
        return None, f"torch not importable: {e}"
    return torch, ""


def _why_not_bf16(bundle: Bundle, torch: Any) -> str | None:
    """None when every member may run in bf16 on this CPU; else the reason it may not."""
    unchecked = [m.name for m in bundle.members if m.bf16_gate is None]
    failed = [m.name for m in bundle.members if m.bf16_gate is not None and not m.bf16_gate.passed]
    if unchecked:
        return f"no bf16 gate in the bundle for {', '.join(unchecked)}"
    if failed:
        return f"bf16 gate not passed by {', '.join(failed)}"
    return why_no_cpu_bf16() or torch_bf16_ready(torch)


def _require_torch_artifacts(bundle: Bundle, requested: str) -> None:
    missing = _members_without_torch(bundle)
    if missing:
        raise RuntimeUnavailableError(f"--runtime {requested}: bundle {bundle.id} has no torch artifact for "
                                      f"{', '.join(missing)}; use --runtime onnx or auto")


def _torch(bundle: Bundle, threads: int | None) -> Selection:
    _require_torch_artifacts(bundle, "torch")
    torch = import_torch()
    if torch.cuda.is_available():
        return Selection(TorchExportRuntime("cuda", threads), "torch-cuda (requested)")
    return Selection(TorchExportRuntime("cpu", threads), "torch-cpu (requested; no CUDA device)")


def _torch_cpu_bf16(bundle: Bundle, threads: int | None) -> Selection:
    """On request: bf16 even for members without a passed gate (logged), never on a CPU without bf16."""
    _require_torch_artifacts(bundle, "torch-cpu-bf16")
    torch = import_torch()
    why_not = why_no_cpu_bf16() or torch_bf16_ready(torch)
    if why_not:
        raise RuntimeUnavailableError(f"--runtime torch-cpu-bf16: {why_not}; use --runtime onnx or auto")
    runtime = TorchExportRuntime("cpu", threads, precision="bf16")
    ungated = [m.name for m in bundle.members if m.bf16_gate is None or not m.bf16_gate.passed]
    if ungated:
        log.warning("bf16 requested for members without a passed bf16 gate: %s", ", ".join(ungated))
        return Selection(runtime, f"torch-cpu-bf16 (requested; no passed bf16 gate for {', '.join(ungated)})")
    return Selection(runtime, "torch-cpu-bf16 (requested)")


def _members_without_torch(bundle: Bundle) -> list[str]:
    return [member.name for member in bundle.members if member.artifacts.torch is None]

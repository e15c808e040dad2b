"""TensorRT 11 engines (built on this GPU by `mammo-batch build-engines`; reference/gpu.md, "Run").

TensorRT comes from NVIDIA's own package index and is never a hard dependency: it is imported
inside functions only. An engine is tied to the GPU model (compute capability) and the TensorRT
version it was built with; the runtime picks the member's engine that matches both, or says why
none does. Batches may be torch tensors already on the GPU (the GPU preparer's): no host round
trip between render and engine; numpy batches are copied in. Outputs land in torch tensors.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from mammo_batch.engine.bundle import Bundle, BundleError, Member, TensorRTEngine
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError, as_probabilities
from mammo_batch.engine.runtimes.onnx import INPUT_NAME
from mammo_batch.engine.runtimes.torch_runner import as_tensor

OUTPUT_NAME = "prob"


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as e:
        raise RuntimeUnavailableError(f"TensorRT is not installed ({e}); install it from NVIDIA's package index "
                                      "(docs/gpu.md)") from None
    return tensorrt


def this_gpu(device: str = "cuda") -> tuple[str, str]:
    """(compute capability such as "9.0", GPU name) of `device`."""
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}.{minor}", torch.cuda.get_device_name(device)


def matching_engine(member: Member, capability: str, version: str) -> TensorRTEngine | None:
    for engine in member.artifacts.tensorrt:
        if engine.compute_capability == capability and engine.tensorrt_version == version:
            return engine
    return None


def why_no_tensorrt_here() -> str | None:
    """None when TensorRT, torch and a CUDA device are here; else why not."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT not installed"
    if importlib.util.find_spec("torch") is None:
        return "torch not installed"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


def why_not_tensorrt(bundle: Bundle, device: str = "cuda") -> str | None:
    """None when every member has an engine for this GPU and TensorRT version; else why not."""
    if not any(m.artifacts.tensorrt for m in bundle.members):  # cheap checks first: no imports
        return "no TensorRT engines in the bundle (mammo-batch build-engines)"
    why = why_no_tensorrt_here()
    if why:
        return why
    capability, _ = this_gpu(device)
    version = import_tensorrt().__version__
    missing = [m.name for m in bundle.members if matching_engine(m, capability, version) is None]
    if missing:
        return f"no engine for compute capability {capability} and TensorRT {version}: {', '.join(missing)}"
    return None


class TensorRTRuntime:
    name = "tensorrt"
    accepts_device_arrays = True

    def __init__(self, device: str = "cuda") -> None:
        self.device = device
        self._logger = None

    def load(self, member: Member, bundle_dir: Path) -> TensorRTRunner:
        trt = import_tensorrt()
        capability, gpu = this_gpu(self.device)
        engine = matching_engine(member, capability, trt.__version__)
        if engine is None:
            built = ", ".join(f"sm{e.compute_capability}/TensorRT {e.tensorrt_version}"
                              for e in member.artifacts.tensorrt) or "none"
            raise RuntimeUnavailableError(f"member {member.name!r} has no TensorRT engine for this {gpu} "
                                          f"(sm{capability}) and TensorRT {trt.__version__}; built: {built}. "
                                          "Run mammo-batch build-engines on this machine")
        self._logger = self._logger or trt.Logger(trt.Logger.WARNING)
        path = Path(bundle_dir) / engine.file
        cuda_engine = trt.Runtime(self._logger).deserialize_cuda_engine(path.read_bytes())
        if cuda_engine is None:
            raise BundleError(f"{path}: TensorRT cannot deserialize the engine of member {member.name!r}")
        return TensorRTRunner(member, cuda_engine, self.device)


class TensorRTRunner:
    """One member's engine and execution context; runs on the current torch CUDA stream."""

    def __init__(self, member: Member, engine: Any, device: str) -> None:
        import torch

        self.torch = torch
        self.member, self.name, self.input_size = member, member.name, member.input_size
        self.engine = engine
        self.context = engine.create_execution_context()
        self.device = torch.device(device)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        if sorted(names) != sorted([INPUT_NAME, OUTPUT_NAME]):
            raise BundleError(f"member {member.name!r}: engine tensors {names}, expected "
                              f"{INPUT_NAME!r} and {OUTPUT_NAME!r}")

    def predict(self, batch: Any) -> np.ndarray:
        """(B, H, W) of the member's dtype, numpy or a torch tensor on the GPU -> (B,) float32 on the host."""
        torch = self.torch
        images = as_tensor(torch, self.member, batch)
        if len(images) == 0:
            return np.empty(0, dtype=np.float32)
        images = images.to(self.device, non_blocking=True)[:, None].contiguous()
        output = torch.empty((len(images), 1), dtype=torch.float32, device=self.device)
        stream = torch.cuda.current_stream(self.device)
        self.context.set_input_shape(INPUT_NAME, tuple(images.shape))
        self.context.set_tensor_address(INPUT_NAME, images.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, output.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"member {self.name!r}: TensorRT execute_async_v3 failed")
        return as_probabilities(self.member, output.cpu().numpy(), len(images))  # .cpu() waits for the stream

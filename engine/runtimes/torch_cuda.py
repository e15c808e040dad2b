"""torch-cuda: a member's torch.export program on a GPU in FP16 (autocast) with channels_last.

The exported program is FP32; autocast runs convolutions and matmuls in half precision and keeps
what must stay FP32 in FP32 (layer_norm, softmax, reductions: torch's autocast op lists), so one
artifact serves FP32 CPUs and FP16 GPUs. Batches may be torch tensors already on the device (the
GPU preparer's): no host round trip. The device and low dtype are parameters so the same code is
tested on the CPU (autocast float16 on the CPU device) where no GPU exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mammo_batch.engine.bundle import Member
from mammo_batch.engine.runtimes.base import as_probabilities
from mammo_batch.engine.runtimes.torch_export import TorchExportRuntime, import_torch


class TorchCudaRuntime:
    """torch.export programs in `precision` (float16 | bfloat16) autocast, channels_last, on `device`."""

    def __init__(self, device: str = "cuda", precision: str = "float16") -> None:
        self.device, self.precision = device, precision
        self.name = f"torch-{device.split(':')[0]}-{'fp16' if precision == 'float16' else 'bf16'}"
        self._export = TorchExportRuntime(device)

    def load(self, member: Member, bundle_dir: Path) -> TorchAmpRunner:
        runner = self._export.load(member, bundle_dir)
        torch = import_torch()
        module = _without_dtype_asserts(torch, runner.module).to(memory_format=torch.channels_last)
        return TorchAmpRunner(member, module, torch.device(self.device), getattr(torch, self.precision))


def _without_dtype_asserts(torch: Any, module: Any) -> Any:
    """Drop the program's tensor-metadata asserts: they pin every intermediate to the dtype seen at
    export (float32), which autocast changes on purpose. They compute nothing (no users)."""
    graph = module.graph
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target == torch.ops.aten._assert_tensor_metadata.default \
                and not node.users:
            graph.erase_node(node)
    module.recompile()
    return module


class TorchAmpRunner:
    def __init__(self, member: Member, module: Any, device: Any, low: Any) -> None:
        import torch

        self.torch = torch
        self.member, self.name, self.input_size = member, member.name, member.input_size
        self.module, self.device, self.low = module, device, low

    def predict(self, batch: Any) -> np.ndarray:
        """(B, H, W) of the member's dtype, numpy or a torch tensor -> (B,) float32 on the host."""
        torch = self.torch
        images = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))
        if len(images) == 0:
            return np.empty(0, dtype=np.float32)
        images = images.to(self.device, non_blocking=True)[:, None]
        if images.dtype == torch.uint16:  # no kernels for the storage-only dtype: the model casts it anyway
            images = images.to(torch.int32)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.low):
            output = self.module(images.contiguous(memory_format=torch.channels_last))
        if isinstance(output, (tuple, list)):
            output = output[0]
        return as_probabilities(self.member, output.float().cpu().numpy(), len(images))

"""torch: a member's torch.export program (`artifacts.torch`) on one device, in fp32 or under autocast.

One runner for every torch runtime (torch-cpu, torch-cpu-bf16, torch-cuda in fp16 or fp32):

    runner = load_torch_runner(member, bundle_dir, device="cpu", precision="bf16")

- precision fp32: the program as exported. bf16 / fp16: `torch.autocast` to that dtype, which keeps
  what must stay fp32 in fp32 (layer_norm, softmax, reductions: torch's autocast op lists), with
  weights and inputs channels_last (oneDNN's and cuDNN's fast layout for low precision).
- Batches: numpy arrays or torch tensors, on the host or already on the device (the GPU
  preparer's): no host round trip. Probabilities come back as float32 on the host.

Policy (where a precision may run, e.g. bf16 only on a CPU with bf16 instructions) is the
runtimes' (registry.py); this file is the mechanics, so the build's gates and the tests run the
exact code `score` runs. torch is imported lazily: the engine scores on the CPU without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mammo_batch.engine.bundle import BundleError, Member
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError, as_probabilities, check_batch
from mammo_batch.engine.runtimes.torch_cpu import sleep_idle_openmp_threads

AUTOCAST = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}  # precision -> torch dtype name


NO_TORCH = "the torch runtime needs PyTorch; install the `train` extra: pip install 'mammo-batch[train]'"


def import_torch() -> Any:
    """The torch module, or RuntimeUnavailableError saying how to get it."""
    sleep_idle_openmp_threads()
    try:
        import torch
    except ImportError:
        raise RuntimeUnavailableError(NO_TORCH) from None
    return torch


def load_torch_runner(member: Member, bundle_dir: Path, device: str = "cpu", precision: str = "fp32",
                      threads: int | None = None) -> TorchRunner:
    """Load `member`'s torch.export program onto `device`, ready to run in `precision`."""
    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST)}, got {precision!r}")
    if member.artifacts.torch is None:
        raise RuntimeUnavailableError(f"member {member.name!r} has no torch artifact "
                                      "(bundle.json artifacts.torch is null)")
    torch = import_torch()
    if threads is not None:
        torch.set_num_threads(threads)
    path = Path(bundle_dir) / member.artifacts.torch
    try:
        program = torch.export.load(str(path))
    except Exception as e:
        raise BundleError(f"{path}: torch.export.load cannot read member {member.name!r}: "
                          f"{type(e).__name__}") from None
    if device != "cpu":
        program = _to_device(torch, program, device)
    # module() turns the program back into a callable nn.Module. It is not put in eval() mode:
    # exported programs refuse train()/eval(); they run as they were exported (in eval mode).
    module = strip_metadata_asserts(torch, program.module())
    low = AUTOCAST[precision]
    if low is not None:
        module = module.to(memory_format=torch.channels_last)
    return TorchRunner(member, module, torch.device(device), None if low is None else getattr(torch, low))


def strip_metadata_asserts(torch: Any, module: Any) -> Any:
    """Drop the program's `_assert_tensor_metadata` nodes (they compute nothing: no users).

    torch.export pins every intermediate to the dtype it saw while tracing (fp32), which autocast
    changes on purpose, and the input to the traced dtype, which has no CUDA kernels for uint16
    (the runner hands int32 then). The input's dtype and shape are checked before the module runs
    (base.check_batch), so nothing is left unchecked.
    """
    graph = module.graph
    for node in list(graph.nodes):
        if (node.op == "call_function" and node.target == torch.ops.aten._assert_tensor_metadata.default
                and not node.users):
            graph.erase_node(node)
    module.recompile()
    return module


def _to_device(torch: Any, program: Any, device: str) -> Any:
    # move_to_device_pass (torch >= 2.6) also moves constants and device arguments inside the
    # graph; module().to(device) would leave those behind (newer torch refuses it outright).
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:
        raise RuntimeUnavailableError(f"torch {torch.__version__} cannot move an exported program to "
                                      f"{device}: it needs torch >= 2.6") from None
    return move_to_device_pass(program, device)


def as_tensor(torch: Any, member: Member, batch: Any) -> Any:
    """The checked batch (base.check_batch) as a torch tensor: a tensor as it is (any device), numpy
    without a copy. The torch and TensorRT runners share it."""
    check_batch(member, batch)
    return batch if isinstance(batch, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(batch))


class TorchRunner:
    """One member as a torch module on one device, optionally under autocast to `low` (a torch dtype)."""

    def __init__(self, member: Member, module: Any, device: Any, low: Any = None) -> None:
        import torch

        self.torch = torch
        self.member, self.name, self.input_size = member, member.name, member.input_size
        self.module, self.device, self.low = module, device, low

    def predict(self, batch: Any) -> np.ndarray:
        """(B, H, W) of the member's dtype, numpy or a torch tensor (any device) -> (B,) float32."""
        torch = self.torch
        images = as_tensor(torch, self.member, batch)
        if len(images) == 0:
            return np.empty(0, dtype=np.float32)
        if images.dtype == torch.uint16:  # a storage-only dtype: no kernels; the model casts to float anyway
            images = images.to(torch.int32)
        images = images.to(self.device, non_blocking=True)[:, None]
        if self.low is None:
            with torch.inference_mode():
                output = self.module(images.contiguous())
        else:
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.low):
                output = self.module(images.contiguous(memory_format=torch.channels_last))
        if isinstance(output, (tuple, list)):  # a program may return its single output in a tuple
            output = output[0]
        return as_probabilities(self.member, output.float().cpu().numpy(), len(images))

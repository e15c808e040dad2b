"""torch on the CPU or a CUDA GPU, from a member's torch.export archive (`artifacts.torch`).

In fp32, or on the CPU in bf16 (autocast, channels_last; torch_cpu.py): the `torch-cpu-bf16`
runtime. torch is optional (the `train` extra): it is imported inside functions only, so the
engine imports and scores on the CPU without it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from mammo_batch.engine.bundle import BundleError, Member
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError, as_probabilities, check_batch
from mammo_batch.engine.runtimes.torch_cpu import (
    prepare_bf16_module,
    sleep_idle_openmp_threads,
    torch_bf16_ready,
    why_no_cpu_bf16,
)

PRECISIONS = ("fp32", "bf16")


def import_torch() -> Any:
    """The torch module, or RuntimeUnavailableError saying how to get it."""
    sleep_idle_openmp_threads()
    try:
        import torch
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"the torch runtime needs PyTorch ({e}); install the `train` extra: "
            "pip install 'mammo-batch[train]'"
        ) from None
    return torch


class TorchExportRuntime:
    """Loads `torch.export` programs (`torch.export.load`) onto one device ("cpu", "cuda", "cuda:1").

    `precision="bf16"` (CPU only) runs them under bf16 autocast with channels_last weights;
    it refuses a CPU without bf16 instructions, where it would be slower than fp32.
    """

    def __init__(self, device: str = "cpu", threads: int | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "bf16" and device != "cpu":
            raise ValueError("the bf16 torch runtime runs on the CPU only")
        self.device = device
        self.threads = threads
        self.precision = precision
        self.name = f"torch-{device.split(':')[0]}" + ("-bf16" if precision == "bf16" else "")

    def load(self, member: Member, bundle_dir: Path) -> TorchExportRunner:
        if member.artifacts.torch is None:
            raise RuntimeUnavailableError(f"member {member.name!r} has no torch artifact "
                                          "(bundle.json artifacts.torch is null)")
        torch = import_torch()
        if self.precision == "bf16":
            why_not = why_no_cpu_bf16() or torch_bf16_ready(torch)
            if why_not:
                raise RuntimeUnavailableError(f"{self.name}: {why_not}")
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        path = Path(bundle_dir) / member.artifacts.torch
        try:
            program = torch.export.load(str(path))
        except Exception as e:
            raise BundleError(f"{path}: torch.export.load cannot read member {member.name!r}: {e}") from None
        if self.device != "cpu":
            program = _to_device(torch, program, self.device)
        # module() turns the program back into a callable nn.Module. It is not put in eval()
        # mode: exported programs refuse train()/eval(); they run as they were exported.
        module = program.module()
        if self.precision == "bf16":
            return TorchExportRunner(member, prepare_bf16_module(torch, module), torch.device("cpu"),
                                     autocast=torch.bfloat16)
        return TorchExportRunner(member, module, torch.device(self.device))


def _to_device(torch: Any, program: Any, device: str) -> Any:
    # move_to_device_pass (torch >= 2.6) also moves constants and device arguments inside the
    # graph; module().to(device) would leave those behind (newer torch refuses it outright).
    try:
        from torch.export.passes import move_to_device_pass
    except ImportError:
        raise RuntimeUnavailableError(f"torch {torch.__version__} cannot move an exported program to "
                                      f"{device}: it needs torch >= 2.6") from None
    return move_to_device_pass(program, device)


class TorchExportRunner:
    """One member as a torch module on one device, optionally under autocast to `autocast` (a dtype)."""

    def __init__(self, member: Member, module: Any, device: Any, autocast: Any = None) -> None:
        self.member = member
        self.name = member.name
        self.input_size = member.input_size
        self.module = module
        self.device = device
        self.autocast = autocast

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W) of the member's dtype -> (B,) float32 probabilities."""
        import torch

        batch = check_batch(self.member, batch)
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32)
        images = torch.from_numpy(np.ascontiguousarray(batch[:, np.newaxis])).to(self.device)
        mixed = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast is not None
                 else contextlib.nullcontext())
        with torch.inference_mode(), mixed:
            output = self.module(images)
        if isinstance(output, (tuple, list)):  # a program may return its single output in a tuple
            output = output[0]
        return as_probabilities(self.member, output.float().cpu().numpy(), len(batch))

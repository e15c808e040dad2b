"""torch on the CPU or a CUDA GPU, from a member's torch.export archive (`artifacts.torch`).

torch is optional (the `train` extra): it is imported inside functions only, so the engine
imports and scores on the CPU without it. Not covered by the CPU test suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mammo_batch.engine.bundle import BundleError, Member
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError, as_probabilities, check_batch


def import_torch() -> Any:
    """The torch module, or RuntimeUnavailableError saying how to get it."""
    try:
        import torch
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"the torch runtime needs PyTorch ({e}); install the `train` extra: "
            "pip install 'mammo-batch[train]'"
        ) from None
    return torch


class TorchExportRuntime:
    """Loads `torch.export` programs (`torch.export.load`) onto one device ("cpu", "cuda", "cuda:1")."""

    def __init__(self, device: str = "cpu", threads: int | None = None) -> None:
        self.device = device
        self.threads = threads
        self.name = f"torch-{device.split(':')[0]}"

    def load(self, member: Member, bundle_dir: Path) -> TorchExportRunner:
        if member.artifacts.torch is None:
            raise RuntimeUnavailableError(f"member {member.name!r} has no torch artifact "
                                          "(bundle.json artifacts.torch is null)")
        torch = import_torch()
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
        return TorchExportRunner(member, program.module(), torch.device(self.device))


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
    """One member as a torch module on one device."""

    def __init__(self, member: Member, module: Any, device: Any) -> None:
        self.member = member
        self.name = member.name
        self.input_size = member.input_size
        self.module = module
        self.device = device

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(B, H, W) of the member's dtype -> (B,) float32 probabilities."""
        import torch

        batch = check_batch(self.member, batch)
        if len(batch) == 0:
            return np.empty(0, dtype=np.float32)
        images = torch.from_numpy(np.ascontiguousarray(batch[:, np.newaxis])).to(self.device)
        with torch.inference_mode():
            output = self.module(images)
        if isinstance(output, (tuple, list)):  # a program may return its single output in a tuple
            output = output[0]
        return as_probabilities(self.member, output.float().cpu().numpy(), len(batch))

"""The torch runtimes (torch-cpu, torch-cpu-bf16, torch-cuda): one class over the one runner
(torch_runner.py), with the policy of where each precision may run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from mammo_batch.engine.bundle import Member
from mammo_batch.engine.runtimes.base import RuntimeUnavailableError
from mammo_batch.engine.runtimes.torch_cpu import torch_bf16_ready, why_no_cpu_bf16
from mammo_batch.engine.runtimes.torch_runner import AUTOCAST, NO_TORCH, TorchRunner, import_torch, load_torch_runner


def torch_or_why() -> tuple[Any, str]:
    """(the torch module, "") when torch imports here; else (None, why not)."""
    if importlib.util.find_spec("torch") is None:  # cheap: no import
        return None, NO_TORCH
    try:
        return import_torch(), ""
    except RuntimeUnavailableError as e:
        return None, str(e)
    except Exception as e:  # a broken CUDA install can fail with OSError, not only ImportError
        return None, f"torch not importable ({type(e).__name__})"


class TorchRuntime:
    """Loads members' torch.export programs onto `device` ("cpu", "cuda", "cuda:1") in `precision`.

    bf16 runs on the CPU only, and only on a CPU with bf16 instructions (elsewhere it is emulated,
    slower than fp32); fp16 on a GPU only (no fast CPU kernels). Refused otherwise, at load.
    """

    def __init__(self, device: str = "cpu", precision: str = "fp32", threads: int | None = None) -> None:
        if precision not in AUTOCAST:
            raise ValueError(f"precision must be one of {', '.join(AUTOCAST)}, got {precision!r}")
        kind = device.split(":")[0]
        if (precision, kind) in (("bf16", "cuda"), ("fp16", "cpu")):
            raise ValueError(f"the torch runtime runs {precision} on the {'CPU' if kind == 'cuda' else 'GPU'} only")
        self.device, self.precision, self.threads = device, precision, threads
        self.accepts_device_arrays = kind != "cpu"
        self.name = f"torch-{kind}" + {"fp32": "", "bf16": "-bf16", "fp16": "-fp16"}[precision]

    def why_unavailable(self) -> str | None:
        """None when this runtime can run here; else why not."""
        torch, why = torch_or_why()
        if torch is None:
            return why
        if self.accepts_device_arrays and not torch.cuda.is_available():
            return "no CUDA device"
        if self.precision == "bf16":
            return why_no_cpu_bf16() or torch_bf16_ready(torch)
        return None

    def load(self, member: Member, bundle_dir: Path) -> TorchRunner:
        if member.artifacts.torch is None:
            raise RuntimeUnavailableError(f"member {member.name!r} has no torch artifact "
                                          "(bundle.json artifacts.torch is null)")
        why = self.why_unavailable()
        if why:
            raise RuntimeUnavailableError(f"{self.name}: {why}")
        return load_torch_runner(member, bundle_dir, self.device, self.precision, self.threads)

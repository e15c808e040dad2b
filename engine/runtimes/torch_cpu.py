"""bf16 on the CPU: where it is fast (and OpenMP threads that sleep when idle).

bf16 pays only where the CPU has bf16 instructions that oneDNN uses (x86 AVX512-BF16 or
AMX-BF16): elsewhere autocast emulates bf16 and is slower than fp32. Measured on AMD EPYC
with AVX512-BF16, 2 threads (docs/scoring.md, "torch-cpu-bf16"): EfficientNet-B2 bf16
channels_last ~2.7x torch fp32 channels_last and faster than ONNX Runtime fp32; ConvNeXt-S
~2x ONNX Runtime fp32.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the instructions oneDNN uses
CPUINFO = Path("/proc/cpuinfo")


def sleep_idle_openmp_threads() -> None:
    """Call before torch is imported: idle OpenMP threads then sleep instead of spinning.

    torch's CPU kernels run on an OpenMP pool whose threads spin between ops by default. On a
    machine whose cores are also busy (our decode workers, other jobs) the spinning threads take
    the cores the working ones need: measured here, EfficientNet-B2 bf16 at 768x384 on 2 cores
    under load ~5.5 ran at 0.85-1.3 views/s spinning and 3.1 views/s with OMP_WAIT_POLICY=PASSIVE
    (ONNX Runtime, whose spinning is off for the same reason, 3.4-3.5). OpenMP reads the variable
    once, when torch loads it; a value the user set wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The CPU feature flags named in /proc/cpuinfo text (x86 "flags" lines)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return flags


def why_no_cpu_bf16(cpuinfo: str | None = None) -> str | None:
    """None when this CPU runs bf16 natively; else why not (a phrase for a reason string).

    `cpuinfo` is /proc/cpuinfo's text (read here when None). Only the CPU is looked at, so
    this needs no torch; `torch_bf16_ready` checks torch's side.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return "cannot read /proc/cpuinfo to find bf16 instructions"
    found = cpu_flags(cpuinfo) & set(BF16_FLAGS)
    if not found:
        return f"CPU has no bf16 instructions ({' or '.join(BF16_FLAGS)})"
    return None


def torch_bf16_ready(torch: Any) -> str | None:
    """None when torch's oneDNN (mkldnn) backend can run bf16 here; else why not."""
    if not torch.backends.mkldnn.is_available():
        return "torch was built without oneDNN (mkldnn)"
    return None

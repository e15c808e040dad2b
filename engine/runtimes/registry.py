"""The runtimes, declared once, in `auto`'s order: `--runtime` choices, help, `auto`, errors and
`mammo-batch doctor` all derive from RUNTIMES.

Each spec says what it runs on (device), whether it takes device arrays (the GPU preparer then
hands it tensors on the GPU, no host round trip), why it cannot run on this machine, why it cannot
run a given bundle (artifacts, gates), and how to make it. `auto` takes the first spec that can
run the bundle here: TensorRT engines for this GPU > torch on CUDA > torch bf16 on a CPU with bf16
instructions (every member passed its bf16 gate) > ONNX Runtime fp32 on the CPU, which always
can; `torch-cpu` (fp32) comes after it, so only a request picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from mammo_batch.engine.bundle import Bundle
from mammo_batch.engine.runtimes.base import Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime
from mammo_batch.engine.runtimes.tensorrt import TensorRTRuntime, why_no_tensorrt_here, why_not_tensorrt
from mammo_batch.engine.runtimes.torch_cpu import torch_bf16_ready, why_no_cpu_bf16
from mammo_batch.engine.runtimes.torch_runtime import TorchRuntime, torch_or_why

Made = tuple[Runtime, str]  # the runtime and a note for the reason ("" or e.g. "fp32: ...")


@dataclass(frozen=True)
class RuntimeSpec:
    name: str  # the --runtime choice
    device: str  # cpu | cuda
    accepts_device_arrays: bool
    summary: str  # one line for --help and doctor
    why_not_here: Callable[[], str | None]  # this machine: libraries, device, CPU instructions
    why_not_for: Callable[[Bundle, bool], str | None]  # this bundle (bool: chosen by auto, stricter)
    make: Callable[[Bundle, int | None], Made]

    def why_unavailable(self, bundle: Bundle | None = None, auto: bool = False) -> str | None:
        """None when this runtime can run (`bundle`) here; else why not, in words.
        The bundle is looked at first: those checks import nothing (torch takes seconds)."""
        why = self.why_not_for(bundle, auto) if bundle is not None else None
        return why or self.why_not_here()


class Selection(NamedTuple):
    runtime: Runtime
    reason: str  # one line for people, e.g. "onnxruntime-cpu (not torch-cuda: no CUDA device)"


def _no_torch_artifact(bundle: Bundle) -> str | None:
    missing = [m.name for m in bundle.members if m.artifacts.torch is None]
    return f"no torch artifact for {', '.join(missing)}" if missing else None


def _torch_here(device: str) -> Callable[[], str | None]:
    def why() -> str | None:
        torch, why_not = torch_or_why()
        if torch is None:
            return why_not
        if device == "cuda" and not torch.cuda.is_available():
            return "no CUDA device"
        return None

    return why


def _cpu_bf16_here() -> str | None:
    torch, why_not = torch_or_why()
    return why_not if torch is None else (why_no_cpu_bf16() or torch_bf16_ready(torch))


def _bf16_for(bundle: Bundle, auto: bool) -> str | None:
    """auto needs every member's bf16 gate passed; a request runs ungated members (with a note)."""
    missing = _no_torch_artifact(bundle)
    if missing or not auto:
        return missing
    unchecked = [m.name for m in bundle.members if m.bf16_gate is None]
    failed = [m.name + (f" ({m.bf16_gate.reason})" if m.bf16_gate.reason else "") for m in bundle.members
              if m.bf16_gate is not None and not m.bf16_gate.passed]
    if unchecked:
        return f"no bf16 gate in the bundle for {', '.join(unchecked)}"
    return f"bf16 gate not passed by {'; '.join(failed)}" if failed else None


def _make_bf16(bundle: Bundle, threads: int | None) -> Made:
    ungated = [m.name for m in bundle.members if m.bf16_gate is None or not m.bf16_gate.passed]
    return TorchRuntime("cpu", "bf16", threads), f"no passed bf16 gate for {', '.join(ungated)}" if ungated else ""


def _make_cuda(bundle: Bundle, threads: int | None) -> Made:
    """FP16 autocast, unless a member's FP16 copy missed its gate: then FP32 for all, and why."""
    missed = [m.name for m in bundle.members if m.fp16_gate is not None and not m.fp16_gate.passed]
    if missed:
        return TorchRuntime("cuda", "fp32", threads), f"fp32: FP16 gate not passed by {', '.join(missed)}"
    return TorchRuntime("cuda", "fp16", threads), ""


RUNTIMES: tuple[RuntimeSpec, ...] = (
    RuntimeSpec("tensorrt", "cuda", True, "TensorRT FP16 engines built on this GPU by build-engines",
                why_no_tensorrt_here, lambda bundle, auto: why_not_tensorrt(bundle),
                lambda bundle, threads: (TensorRTRuntime(), "")),
    RuntimeSpec("torch-cuda", "cuda", True, "torch.export programs on a CUDA GPU, FP16 autocast",
                _torch_here("cuda"), lambda bundle, auto: _no_torch_artifact(bundle), _make_cuda),
    RuntimeSpec("torch-cpu-bf16", "cpu", False, "torch.export programs in bf16 on a CPU with bf16 instructions",
                _cpu_bf16_here, _bf16_for, _make_bf16),
    RuntimeSpec("onnx", "cpu", False, "ONNX Runtime fp32 on the CPU, runs everywhere",
                lambda: None, lambda bundle, auto: None, lambda bundle, threads: (OnnxCpuRuntime(threads), "")),
    RuntimeSpec("torch-cpu", "cpu", False, "torch.export programs in fp32 on the CPU",
                _torch_here("cpu"), lambda bundle, auto: _no_torch_artifact(bundle),
                lambda bundle, threads: (TorchRuntime("cpu", "fp32", threads), "")),
)
SPECS = {spec.name: spec for spec in RUNTIMES}
# A choice that means "the first of these that can run here" (kept from earlier releases).
ALIASES = {"torch": ("torch-cuda", "torch-cpu")}
CHOICES = ("auto", *SPECS, *ALIASES)


def runtime_help() -> str:
    """The --runtime help text, from the specs."""
    names = "; ".join(f"{spec.name}: {spec.summary}" for spec in RUNTIMES)
    return f"Inference runtime. auto = the first that can run the bundle here, in this order: {names}. " \
           "torch = torch-cuda, else torch-cpu. It says which it picked and why; `mammo-batch doctor` lists them."


def select_runtime(requested: str, bundle: Bundle, threads: int | None = None) -> Selection:
    """Pick the runtime for `bundle`; raise RuntimeUnavailableError when `requested` cannot run.

    `threads` sets the CPU threads of a CPU runtime (default: the cores this process may use).
    """
    if requested == "auto":
        return _auto(bundle, threads)
    names = ALIASES.get(requested, (requested,))
    if any(name not in SPECS for name in names):
        raise RuntimeUnavailableError(f"unknown runtime {requested!r}: choose one of {', '.join(CHOICES)}")
    whys = []
    for name in names:
        why = SPECS[name].why_unavailable(bundle)
        if why is None:
            runtime, note = SPECS[name].make(bundle, threads)
            detail = "; ".join(filter(None, [note, *(f"not {n}: {w}" for n, w in whys)]))
            return Selection(runtime, f"{runtime.name} (requested{'; ' + detail if detail else ''})")
        whys.append((name, why))
    raise RuntimeUnavailableError(f"--runtime {requested}: {whys[-1][1]}; use --runtime onnx or auto")


def _auto(bundle: Bundle, threads: int | None) -> Selection:
    passed: dict[str, list[str]] = {}  # why not -> the runtimes it kept out, in order
    for spec in RUNTIMES:
        why = spec.why_unavailable(bundle, auto=True)
        if why is None:
            runtime, note = spec.make(bundle, threads)
            skipped = [f"not {', '.join(names)}: {why}" for why, names in passed.items()]
            return Selection(runtime, f"{runtime.name} ({'; '.join(filter(None, [note, *skipped])) or 'auto'})")
        passed.setdefault(why, []).append(spec.name)
    raise AssertionError("onnx can always run")  # pragma: no cover


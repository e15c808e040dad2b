"""Model runtimes: a Runtime loads bundle members into MemberRunners (docs/scoring.md).

    runtime, reason = select_runtime("auto", bundle)
    runner = runtime.load(bundle.members[0], bundle.path)
    probabilities = runner.predict(batch)        # (B, H, W) -> (B,) float32

Files: registry.py (the runtimes declared with their capabilities, in auto's order; select_runtime),
base.py (the protocols and batch checks), onnx.py (ONNX Runtime, CPU), torch_runner.py (the one
torch runner: device, autocast dtype, channels_last), torch_runtime.py (the torch runtimes' policy),
torch_cpu.py (bf16 detection), tensorrt.py.
"""

from mammo_batch.engine.runtimes.base import MemberRunner, Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime, OnnxRunner
from mammo_batch.engine.runtimes.registry import CHOICES, RUNTIMES, RuntimeSpec, Selection, runtime_help, select_runtime
from mammo_batch.engine.runtimes.torch_runner import TorchRunner
from mammo_batch.engine.runtimes.torch_runtime import TorchRuntime

__all__ = [
    "CHOICES",
    "RUNTIMES",
    "MemberRunner",
    "OnnxCpuRuntime",
    "OnnxRunner",
    "Runtime",
    "RuntimeSpec",
    "RuntimeUnavailableError",
    "Selection",
    "TorchRunner",
    "TorchRuntime",
    "runtime_help",
    "select_runtime",
]

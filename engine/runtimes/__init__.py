"""Model runtimes: a Runtime loads bundle members into MemberRunners (docs/scoring.md).

    runtime, reason = select_runtime("auto", bundle)
    runner = runtime.load(bundle.members[0], bundle.path)
    probabilities = runner.predict(batch)        # (B, H, W) -> (B,) float32

Files: base.py (the protocols and batch checks), onnx.py (ONNX Runtime, CPU),
torch_export.py (torch.export programs, CPU/CUDA, fp32 or CPU bf16; torch imported lazily),
torch_cpu.py (bf16 detection and preparation), select.py (auto).
"""

from mammo_batch.engine.runtimes.base import MemberRunner, Runtime, RuntimeUnavailableError
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime, OnnxRunner
from mammo_batch.engine.runtimes.select import CHOICES, Selection, select_runtime
from mammo_batch.engine.runtimes.torch_export import TorchExportRunner, TorchExportRuntime

__all__ = [
    "CHOICES",
    "MemberRunner",
    "OnnxCpuRuntime",
    "OnnxRunner",
    "Runtime",
    "RuntimeUnavailableError",
    "Selection",
    "TorchExportRunner",
    "TorchExportRuntime",
    "select_runtime",
]

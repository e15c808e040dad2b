"""The FP16 ONNX of a member: what TensorRT 11 builds from (its networks are strongly typed, so the
precision of every layer is the ONNX's), checked against the FP32 model on real views.

    path = export_fp16_onnx(model, "fold0.fp16.onnx", 1536, 768, "uint8")
    gate = gates.fp16_gate(member, directory, views, eager)   # recorded, never fatal (gates.py)

How: the torch model itself is made half precision, with FP32 islands: the input scaling and
normalisation, every LayerNorm (ConvNeXt's overflow in FP16), the squeeze-excite gates and the
global pooling (spatial reductions over ~10^5 values), and the final sigmoid. The graph is then
exported as the FP32 one is (TorchScript exporter, opset 17), so the Casts are placed by torch.
Why not a graph rewrite: onnxconverter-common's float16 converter with a block list produced
graphs ONNX Runtime refused to load for timm's ConvNeXt and EfficientNet (type errors on its
inserted Cast nodes; reference/gpu.md section 5), and ModelOpt AutoCast is a large extra
dependency whose result must be checked the same way. docs/gpu.md has the measurements.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from mammo_batch.build.export import export_onnx
from mammo_batch.train.models import ProbabilityModel

# Module classes run in FP32 inside the half model (matched by name: timm's LayerNorm2d,
# SelectAdaptivePool2d and SqueezeExcite are not importable without timm).
FP32_MODULES = ("LayerNorm", "LayerNorm2d", "GroupNorm", "SelectAdaptivePool2d", "SqueezeExcite", "AdaptiveAvgPool2d")


class Fp32Island(nn.Module):
    """Runs the wrapped module in float32 and hands half precision back."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float()).half()


class HalfProbabilityModel(nn.Module):
    """ProbabilityModel's contract ((B, 1, H, W) pixels -> (B, 1) float32) with an FP16 backbone."""

    def __init__(self, model: ProbabilityModel) -> None:
        super().__init__()
        net = copy.deepcopy(model.net).eval()
        self.full_scale = net.full_scale
        self.input_dtype = net.input_dtype
        self.register_buffer("mean", net.mean.float())
        self.register_buffer("std", net.std.float())
        self.backbone = _with_fp32_islands(net.backbone.half())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.to(torch.float32) / self.full_scale - self.mean) / self.std
        logit = self.backbone(x.expand(-1, 3, -1, -1).half())
        return torch.sigmoid(logit.to(torch.float32))


def _with_fp32_islands(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if type(child).__name__ in FP32_MODULES:
            setattr(module, name, Fp32Island(child))
        else:
            _with_fp32_islands(child)
    return module


def export_fp16_onnx(model: ProbabilityModel, path: str | Path, height: int, width: int,
                     input_dtype: str = "uint8") -> Path:
    """Write the member's FP16 ONNX (same input/output names, dtypes and dynamic batch as the FP32 one)."""
    return export_onnx(HalfProbabilityModel(model).eval(), path, height, width, input_dtype)

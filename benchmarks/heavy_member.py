"""A compute-heavy ONNX member for benchmarks, built with onnx.helper (no torch needed).

A stride-2 convolution stem and a stack of 3x3 convolutions sized so that one view at
1536x768 costs about as much as EfficientNet-B2 at that size (~35 GFLOP, REFERENCE.md),
then global mean, a linear layer and a sigmoid. The weights are random: the numbers it
outputs mean nothing; only its cost matters.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def heavy_member(height: int = 1536, width: int = 768, channels: int = 64, depth: int = 8,
                 seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def weight(name: str, shape: tuple[int, ...]) -> str:
        fan_in = int(np.prod(shape[1:]))
        inits.append(numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name))
        return name

    nodes.append(helper.make_node("Cast", ["image"], ["x_float"], to=TensorProto.FLOAT))
    inits.append(numpy_helper.from_array(np.array(1 / 255, np.float32), "scale"))
    nodes.append(helper.make_node("Mul", ["x_float", "scale"], ["x0"]))
    previous, in_channels = "x0", 1
    for i in range(depth):
        stride = 2 if i < 2 else 1  # two stride-2 stems, then full-resolution work at 1/4
        out = f"c{i}"
        nodes.append(helper.make_node("Conv", [previous, weight(f"w{i}", (channels, in_channels, 3, 3))],
                                      [f"{out}_conv"], pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"{out}_conv"], [out]))
        previous, in_channels = out, channels
    nodes.append(helper.make_node("GlobalAveragePool", [previous], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", weight("fc", (1, channels))], ["logit"], transB=1))
    nodes.append(helper.make_node("Sigmoid", ["logit"], ["prob"]))
    graph = helper.make_graph(
        nodes, "heavy_member",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 1, height, width])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 1])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def flops_per_view(height: int = 1536, width: int = 768, channels: int = 64, depth: int = 8) -> float:
    total, h, w, c_in = 0.0, height, width, 1
    for i in range(depth):
        if i < 2:
            h, w = h // 2, w // 2
        total += 2 * h * w * channels * c_in * 9
        c_in = channels
    return total

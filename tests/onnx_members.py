"""Tiny ONNX models and complete test bundles, for tests only (needs the `onnx` package).

A "mean intensity" member outputs sigmoid(weight * mean(pixels / full_scale) + bias): its
probability is easy to predict, so runtimes, batching and aggregation can be checked exactly.

    write_test_bundle(tmp_path / "b", [{"name": "fold0", "height": 64, "width": 32}])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from mammo_batch.engine.bundle import Bundle, Member, bundle_document, new_member, write_bundle_json

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: readable by older ONNX Runtime releases too
FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}
ONNX_TYPES = {"uint8": TensorProto.UINT8, "uint16": TensorProto.UINT16, "float32": TensorProto.FLOAT}
Region = tuple[int, int, int, int]  # (top, bottom, left, right) in pixels


def mean_intensity_member(
    name: str,
    height: int,
    width: int,
    dtype: str = "uint8",
    weight: float = 8.0,
    bias: float = -4.0,
    region: Region | None = None,
) -> onnx.ModelProto:
    """image (batch, 1, H, W) of `dtype` -> prob (batch, 1) float32, batch dynamic."""
    constants = [
        _scalar("full_scale", FULL_SCALE[dtype]),
        _scalar("weight", weight),
        _scalar("bias", bias),
    ]
    nodes = [helper.make_node("Cast", ["image"], ["pixels"], to=TensorProto.FLOAT)]
    pixels = "pixels"
    if region is not None:
        top, bottom, left, right = region
        constants += [_ints("starts", [top, left]), _ints("ends", [bottom, right]), _ints("axes", [2, 3])]
        nodes.append(helper.make_node("Slice", ["pixels", "starts", "ends", "axes"], ["region"]))
        pixels = "region"
    nodes += [
        helper.make_node("Div", [pixels, "full_scale"], ["unit"]),
        helper.make_node("ReduceMean", ["unit"], ["mean"], axes=[1, 2, 3], keepdims=1),  # (batch,1,1,1)
        helper.make_node("Mul", ["mean", "weight"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["sigmoid"]),
        helper.make_node("Flatten", ["sigmoid"], ["prob"], axis=1),  # (batch, 1)
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("image", ONNX_TYPES[dtype], ["batch", 1, height, width])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["batch", 1])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="mammo-batch tests")
    model.ir_version = IR_VERSION
    model.doc_string = "test model: sigmoid(weight * mean intensity + bias); not a clinical model"
    onnx.checker.check_model(model, full_check=True)
    return model


def expected_probability(
    images: np.ndarray,
    weight: float = 8.0,
    bias: float = -4.0,
    region: Region | None = None,
    dtype: str | None = None,
) -> np.ndarray:
    """What mean_intensity_member computes, in float64 numpy: (B, H, W) -> (B,)."""
    scale = FULL_SCALE[dtype or images.dtype.name]
    if region is not None:
        top, bottom, left, right = region
        images = images[:, top:bottom, left:right]
    mean = (images.astype(np.float64) / scale).mean(axis=(1, 2))
    return 1.0 / (1.0 + np.exp(-(weight * mean + bias)))


def write_test_bundle(
    directory: str | Path,
    members: list[dict],
    threshold: float = 0.5,
    name: str = "test-bundle",
    window: str = "dicom",
    crop: bool = True,
) -> Path:
    """Write <name>.onnx per member and a valid bundle.json into `directory`; return it.

    A member dict has `name`, `height`, `width` and optionally `dtype` (uint8), `weight` (8.0),
    `bias` (-4.0), `region` (None), `fold` (its index) and `metrics` ({}). Dtypes are written as
    given, so a bundle with mismatched members can be made on purpose.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(
        name=name, created="2026-01-01T00:00:00Z",  # fixed: the same members give the same bundle id
        description="test bundle of mean-intensity models, not a clinical model",
        members=tuple(_member(directory, spec, i, window, crop) for i, spec in enumerate(members)),
        threshold=threshold, provenance={"written_by": "tests/onnx_members.py"})
    # The engine's serialiser, not write_bundle: that would validate, and some tests want a bundle
    # with mismatched members on purpose (load_bundle must refuse it).
    write_bundle_json(directory, bundle_document(bundle))
    return directory


def _member(directory: Path, spec: dict, index: int, window: str, crop: bool) -> Member:
    dtype = spec.get("dtype", "uint8")
    model = mean_intensity_member(spec["name"], spec["height"], spec["width"], dtype,
                                  spec.get("weight", 8.0), spec.get("bias", -4.0), spec.get("region"))
    file = f"{spec['name']}.onnx"
    onnx.save_model(model, str(directory / file))
    return new_member(directory, name=spec["name"], fold=spec.get("fold", index), arch="mean-intensity",
                      height=spec["height"], width=spec["width"], onnx=file, dtype=dtype, window=window, crop=crop,
                      metrics=spec.get("metrics", {}))


def _scalar(name: str, value: float) -> TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def _ints(name: str, values: list[int]) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


if __name__ == "__main__":  # the README's quick start: `python tests/onnx_members.py DIR`
    import sys

    target = write_test_bundle(
        sys.argv[1] if len(sys.argv) > 1 else "test-bundle",
        [
            dict(name="whole", height=512, width=256, weight=8.0, bias=-3.0),
            dict(name="upper_half", height=256, width=128, weight=6.0, bias=-2.0,
                 region=(0, 128, 0, 128)),
        ],
        name="test-bundle",
    )
    print(f"wrote a TEST bundle (sigmoid of mean intensity, not a model) to {target}")

"""FP16 ONNX (build/fp16.py) and its gate (build/gates.py) vs the FP32 model on real preprocessed
views, with ONNX Runtime on the CPU: max |prob diff| <= 1e-2 for the seed's architectures (random
weights, small sizes); a copy that misses the gate is recorded, never fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from mammo_batch.build.export import export_onnx  # noqa: E402
from mammo_batch.build.fp16 import export_fp16_onnx  # noqa: E402
from mammo_batch.build.gates import FP16_TOLERANCE, fp16_gate  # noqa: E402
from mammo_batch.build.parity import eager_probabilities  # noqa: E402
from mammo_batch.engine.bundle import Member, new_member  # noqa: E402
from mammo_batch.engine.pixels import PreprocessSettings  # noqa: E402
from mammo_batch.engine.prepare import prepare_file  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

SIZE = (192, 96)


@pytest.fixture(scope="module")
def views(cbis_cases) -> np.ndarray:
    paths = sorted(cbis_cases.rglob("*.dcm"))[:3]
    return np.stack([prepare_file(p, [SIZE], PreprocessSettings()).inputs[SIZE] for p in paths])


def fp16_member(model: ProbabilityModel, directory: Path, name: str = "m") -> Member:
    export_onnx(model, directory / f"{name}.onnx", *SIZE, "uint8")
    export_fp16_onnx(model, directory / f"{name}.fp16.onnx", *SIZE, "uint8")
    return new_member(directory, name=name, fold=0, arch="test", height=SIZE[0], width=SIZE[1],
                      onnx=f"{name}.onnx", onnx_fp16=f"{name}.fp16.onnx")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["efficientnet_b2", "efficientnet_b5", "convnext_small"])
def test_fp16_onnx_matches_fp32_on_real_views(arch, views, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = ProbabilityModel(create_model(arch, "uint8")).eval()
    member = fp16_member(model, tmp_path)
    graph = onnx.load(str(tmp_path / member.artifacts.onnx_fp16)).graph
    float16 = onnx.TensorProto.FLOAT16
    assert any(init.data_type == float16 for init in graph.initializer)  # the weights are half
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # the IO contract is unchanged
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    gate = fp16_gate(member, tmp_path, views, eager_probabilities(model, views))
    assert gate.passed and gate.max_prob_diff <= FP16_TOLERANCE and gate.views == len(views)
    print(f"{arch}: fp16 max |prob diff| {gate.max_prob_diff:.2e}")


def test_a_missed_gate_is_recorded_with_its_numbers_not_raised(views, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    member = fp16_member(model, tmp_path, "tiny_fold0")
    eager = eager_probabilities(model, views)
    passed = fp16_gate(member, tmp_path, views, eager)
    assert passed.passed and passed.reason == "" and 0 <= passed.max_prob_diff <= FP16_TOLERANCE
    with torch.no_grad():  # another model: the same FP16 file no longer matches it
        other = ProbabilityModel(create_model("tiny", "uint8")).eval()
        other.net.backbone.fc.bias += 5.0
    missed = fp16_gate(member, tmp_path, views, eager_probabilities(other, views))
    assert not missed.passed and missed.max_prob_diff > FP16_TOLERANCE
    assert missed.reason == f"max |prob diff| {missed.max_prob_diff:.3g} > tolerance {FP16_TOLERANCE:g}"


def test_a_nan_difference_fails_the_gate(views, tmp_path, one_torch_thread):
    # NaN compares false with everything: "diff > tolerance" would let it pass.
    torch.manual_seed(0)
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    member = fp16_member(model, tmp_path)
    eager = eager_probabilities(model, views)
    eager[1] = np.nan
    gate = fp16_gate(member, tmp_path, views, eager)
    assert not gate.passed and gate.max_prob_diff is None and gate.reason == "the FP16 copy gave NaN"


def test_an_fp16_copy_onnx_runtime_cannot_load_fails_the_gate(views, tmp_path, one_torch_thread):
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    member = fp16_member(model, tmp_path)
    (tmp_path / member.artifacts.onnx_fp16).write_bytes(b"not an onnx model")
    gate = fp16_gate(member, tmp_path, views, eager_probabilities(model, views))
    assert not gate.passed and gate.reason.startswith("ONNX Runtime cannot run the FP16 copy: BundleError")
    assert "0x" not in gate.reason

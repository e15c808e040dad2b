"""FP16 ONNX (build/fp16.py) vs the FP32 model on real preprocessed views, with ONNX Runtime on
the CPU: max |prob diff| <= 1e-2 for the seed's architectures (random weights, small sizes)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from mammo_batch.build.fp16 import FP16_TOLERANCE, Fp16ParityError, check_fp16, export_fp16_onnx  # noqa: E402
from mammo_batch.engine.pixels import PreprocessSettings  # noqa: E402
from mammo_batch.engine.prepare import prepare_file  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

SIZE = (192, 96)


@pytest.fixture(scope="module")
def views(cbis_cases) -> np.ndarray:
    paths = sorted(cbis_cases.rglob("*.dcm"))[:3]
    return np.stack([prepare_file(p, [SIZE], PreprocessSettings()).inputs[SIZE] for p in paths])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["efficientnet_b2", "efficientnet_b5", "convnext_small"])
def test_fp16_onnx_matches_fp32_on_real_views(arch, views, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = ProbabilityModel(create_model(arch, "uint8")).eval()
    path = export_fp16_onnx(model, tmp_path / "m.fp16.onnx", *SIZE, "uint8")
    graph = onnx.load(str(path)).graph
    float16 = onnx.TensorProto.FLOAT16
    assert any(init.data_type == float16 for init in graph.initializer)  # the weights are half
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # the IO contract is unchanged
    assert graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    diff = check_fp16(model, path, views)
    assert diff <= FP16_TOLERANCE
    print(f"{arch}: fp16 max |prob diff| {diff:.2e}")


def test_the_gate_fails_and_names_the_member(views, tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    path = export_fp16_onnx(model, tmp_path / "tiny.fp16.onnx", *SIZE, "uint8")
    assert check_fp16(model, path, views) <= FP16_TOLERANCE
    with torch.no_grad():  # another model: the same FP16 file no longer matches it
        other = ProbabilityModel(create_model("tiny", "uint8")).eval()
        other.net.backbone.fc.bias += 5.0
    with pytest.raises(Fp16ParityError, match="tiny_fold0"):
        check_fp16(other, path, views, name="tiny_fold0")

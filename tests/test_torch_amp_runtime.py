"""The torch-cuda runtime's code (FP16 autocast, channels_last, device tensors in) run on the CPU
device, against ONNX Runtime FP32 on the same member: the GPU check runs it on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mammo_batch.build.export import export_onnx, export_torch  # noqa: E402
from mammo_batch.engine.bundle import Member  # noqa: E402
from mammo_batch.engine.bundle.model import Artifacts, MemberInput, Preprocess  # noqa: E402
from mammo_batch.engine.runtimes.onnx import OnnxCpuRuntime  # noqa: E402
from mammo_batch.engine.runtimes.torch_cuda import TorchCudaRuntime  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

SIZE = (128, 64)


def test_fp16_autocast_runner_matches_onnx_fp32(tmp_path, one_torch_thread):
    torch.manual_seed(0)
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    export_onnx(model, tmp_path / "m.onnx", *SIZE, "uint8")
    export_torch(model, tmp_path / "m.pt2", *SIZE, "uint8")
    member = Member("m", 0, "tiny", MemberInput(*SIZE, 1, "uint8", (0, 255)),
                    Preprocess("dicom", True, "chest_wall_left"), Artifacts("m.onnx", "m.pt2"), sha256={})
    images = np.random.default_rng(0).integers(0, 256, (3, *SIZE), dtype=np.uint8)
    reference = OnnxCpuRuntime(1).load(member, tmp_path).predict(images)
    runner = TorchCudaRuntime("cpu", "float16").load(member, tmp_path)
    from_numpy = runner.predict(images)
    from_tensor = runner.predict(torch.from_numpy(images))  # what the GPU preparer hands over
    assert from_numpy.dtype == np.float32 and from_numpy.shape == (3,)
    np.testing.assert_allclose(from_numpy, reference, atol=1e-2)
    np.testing.assert_array_equal(from_numpy, from_tensor)
    assert runner.predict(images[:0]).shape == (0,)

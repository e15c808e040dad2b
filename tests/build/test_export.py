"""Export (build/export.py) and parity (build/parity.py): the artifacts the engine scores with.

Every artifact is checked the way the engine uses it: loaded from a bundle by the engine's own
runtimes. Needs the `train` extra (torch, timm) and onnx: skipped where they are missing.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
onnx = pytest.importorskip("onnx")

from mammo_batch.build.export import export_onnx, export_torch  # noqa: E402
from mammo_batch.build.parity import ParityError, check_parity, eager_probabilities  # noqa: E402
from mammo_batch.engine.bundle import Bundle, load_bundle, new_member, write_bundle  # noqa: E402
from mammo_batch.engine.runtimes import OnnxCpuRuntime, TorchRuntime  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


VALUE_RANGE = {"uint8": [0, 255], "uint16": [0, 65535], "float32": [0.0, 1.0]}
ONNX_TYPES = {"uint8": onnx.TensorProto.UINT8, "uint16": onnx.TensorProto.UINT16,
              "float32": onnx.TensorProto.FLOAT}


@dataclass
class Exported:
    model: ProbabilityModel
    onnx: Path
    torch: Path
    height: int
    width: int
    dtype: str


def probability_model(arch: str, dtype: str = "uint8", seed: int = 0, size: tuple[int, int] = (64, 32)
                      ) -> ProbabilityModel:
    torch.manual_seed(seed)
    model = ProbabilityModel(create_model(arch, dtype)).eval()
    spread_outputs(model, random_images(8, *size, dtype, seed=99))
    return model


def spread_outputs(model: ProbabilityModel, images: np.ndarray) -> None:
    """Rescale the head so that logits on `images` have mean 0 and std 1.

    A randomly initialised backbone gives nearly the same probability (~0.5) for every image,
    so a wrong artifact could pass parity; spread-out outputs make the comparison mean something.
    """
    head = model.net.backbone.get_classifier()
    with torch.no_grad():
        logits = model.net(torch.from_numpy(images[:, np.newaxis])).ravel()
        scale = 1.0 / logits.std()
        head.weight.mul_(scale)
        head.bias.copy_((head.bias - logits.mean()) * scale)


def random_images(batch: int, height: int, width: int, dtype: str = "uint8", seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "float32":
        return rng.random((batch, height, width), dtype=np.float32)
    return rng.integers(0, VALUE_RANGE[dtype][1] + 1, (batch, height, width)).astype(dtype)


def export_both(model: ProbabilityModel, directory: Path, height: int, width: int, dtype: str) -> Exported:
    onnx_path = export_onnx(model, directory / "fold0.onnx", height, width, dtype)
    torch_path = export_torch(model, directory / "fold0.pt2", height, width, dtype)
    return Exported(model, onnx_path, torch_path, height, width, dtype)


# tiny at a demo size; resnet18 (a timm backbone) small enough to stay quick on two cores
@pytest.fixture(scope="module", params=[("tiny", 256, 128), ("resnet18", 128, 64)], ids=lambda p: p[0])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    arch, height, width = request.param
    model = probability_model(arch, size=(height, width))
    return export_both(model, tmp_path_factory.mktemp(arch), height, width, "uint8")


@pytest.mark.parametrize("batch", [1, 3])
def test_parity_with_dynamic_batch(exported: Exported, batch: int) -> None:
    images = random_images(batch, exported.height, exported.width)
    report = check_parity(exported.model, exported.onnx, exported.torch, images)
    assert report.n_images == batch
    if batch > 1:  # the outputs differ between images: parity is not comparing constants
        assert np.ptp(eager_probabilities(exported.model, images)) > 0.02
    assert report.onnx_max_diff <= 1e-4 and report.torch_max_diff <= 1e-4
    assert "tolerance" in report.summary()


def test_onnx_signature_is_the_engine_contract(exported: Exported) -> None:
    graph = onnx.load(str(exported.onnx)).graph
    (image,), (prob,) = graph.input, graph.output
    assert image.name == "image" and prob.name == "prob"
    assert image.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert prob.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in image.type.tensor_type.shape.dim]
    assert dims == ["batch", 1, exported.height, exported.width]
    assert [d.dim_param or d.dim_value for d in prob.type.tensor_type.shape.dim] == ["batch", 1]


def write_member_bundle(directory: Path, exported: Exported) -> Path:
    """A one-member bundle (docs/scoring.md, "Bundle") holding both artifacts."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"onnx": "fold0.onnx", "torch": "fold0.pt2"}
    shutil.copy(exported.onnx, directory / files["onnx"])
    shutil.copy(exported.torch, directory / files["torch"])
    member = new_member(directory, name="fold0", fold=0, arch="test", height=exported.height,
                        width=exported.width, onnx=files["onnx"], torch=files["torch"], dtype=exported.dtype)
    write_bundle(directory, Bundle(
        name="export-test", created="2026-01-01T00:00:00Z", members=(member,), threshold=0.5,
        description="randomly initialised test model, not a clinical model",
        provenance={"written_by": "tests/build/test_export.py"}))
    return directory


def test_engine_runtimes_score_the_artifacts_like_eager(exported: Exported, tmp_path: Path) -> None:
    bundle = load_bundle(write_member_bundle(tmp_path / "bundle", exported))
    images = random_images(3, exported.height, exported.width, seed=2)
    eager = eager_probabilities(exported.model, images)
    for runtime in (OnnxCpuRuntime(threads=2), TorchRuntime("cpu")):
        runner = runtime.load(bundle.members[0], bundle.path)
        probs = runner.predict(images)
        assert probs.shape == (3,) and probs.dtype == np.float32, runtime.name
        np.testing.assert_allclose(probs, eager, rtol=0, atol=1e-4, err_msg=runtime.name)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_other_input_dtypes_export_and_load(dtype: str, tmp_path: Path) -> None:
    exported = export_both(probability_model("tiny", dtype, size=(64, 32)), tmp_path, 64, 32, dtype)
    images = random_images(3, 64, 32, dtype)
    report = check_parity(exported.model, exported.onnx, exported.torch, images, batch_size=2)  # 2 + 1
    assert report.n_images == 3
    assert onnx.load(str(exported.onnx)).graph.input[0].type.tensor_type.elem_type == ONNX_TYPES[dtype]
    bundle = load_bundle(write_member_bundle(tmp_path / "bundle", exported))
    probs = OnnxCpuRuntime(threads=2).load(bundle.members[0], bundle.path).predict(images)
    np.testing.assert_allclose(probs, eager_probabilities(exported.model, images), rtol=0, atol=1e-4)


def test_a_different_model_under_the_same_name_fails_parity(tmp_path: Path) -> None:
    model, impostor = probability_model("tiny", seed=0), probability_model("tiny", seed=1)
    onnx_path = export_onnx(impostor, tmp_path / "fold0.onnx", 64, 32)
    torch_path = export_torch(impostor, tmp_path / "fold0.pt2", 64, 32, "uint8")
    images = random_images(2, 64, 32)
    with pytest.raises(ParityError, match=r"fold0\.onnx: the onnx artifact differs .* \(tolerance 0\.0001\)"):
        check_parity(model, onnx_path, torch_path, images)
    with pytest.raises(ParityError, match=r"fold0\.pt2: the torch artifact"):
        check_parity(model, None, torch_path, images)


def test_export_uses_eval_mode_and_restores_the_mode(tmp_path: Path) -> None:
    model = probability_model("tiny").train()  # BatchNorm on batch statistics, if left so
    exported = export_both(model, tmp_path, 64, 32, "uint8")
    assert model.training
    check_parity(model, exported.onnx, exported.torch, random_images(3, 64, 32))  # vs eval mode
    assert model.training


def test_wrong_dtype_or_images_are_refused(tmp_path: Path) -> None:
    model = probability_model("tiny", "uint8")
    with pytest.raises(ValueError, match="built for uint8 input, not uint16"):
        export_onnx(model, tmp_path / "x.onnx", 64, 32, "uint16")
    with pytest.raises(ValueError, match="input_dtype must be one of"):
        export_torch(model, tmp_path / "x.pt2", 64, 32, "int8")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        check_parity(model, None, None, np.zeros((64, 32), dtype=np.uint8))

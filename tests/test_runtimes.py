"""Runtimes: ONNX Runtime CPU runners against an independent numpy model, and runtime selection."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_members import expected_probability, write_test_bundle

from mammo_batch.engine.bundle import BundleError, load_bundle, sha256_file, write_bundle_json
from mammo_batch.engine.runtimes import (
    MemberRunner,
    OnnxCpuRuntime,
    Runtime,
    RuntimeUnavailableError,
    TorchExportRuntime,
    select_runtime,
)

HAS_TORCH = importlib.util.find_spec("torch") is not None
REGION = (3, 20, 2, 9)  # (top, bottom, left, right)


def random_images(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    if dtype == "float32":
        return rng.random(shape, dtype=np.float32)
    high = np.iinfo(dtype).max
    return rng.integers(0, high, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("region", [None, REGION])
def test_onnx_runner_matches_numpy(tmp_path: Path, dtype: str, region) -> None:
    spec = {"name": "m", "height": 24, "width": 12, "dtype": dtype, "weight": 6.0, "bias": -3.0,
            "region": region}
    bundle = load_bundle(write_test_bundle(tmp_path, [spec]))
    runner = OnnxCpuRuntime(threads=1).load(bundle.members[0], bundle.path)
    assert runner.name == "m" and runner.input_size == (24, 12)
    rng = np.random.default_rng(7)
    for batch_size in (1, 3, 8):
        images = random_images(rng, dtype, (batch_size, 24, 12))
        probabilities = runner.predict(images)
        assert probabilities.dtype == np.float32 and probabilities.shape == (batch_size,)
        expected = expected_probability(images, 6.0, -3.0, region, dtype)
        np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)


def test_the_region_matters(tmp_path: Path) -> None:
    # Bright only outside the region: the region model sees a dark image, the whole-image one does not.
    specs = [{"name": "whole", "height": 24, "width": 12},
             {"name": "part", "height": 24, "width": 12, "region": REGION}]
    bundle = load_bundle(write_test_bundle(tmp_path, specs))
    images = np.full((2, 24, 12), 255, np.uint8)
    images[:, 3:20, 2:9] = 0
    runtime = OnnxCpuRuntime(threads=1)
    whole, part = (runtime.load(m, bundle.path).predict(images) for m in bundle.members)
    np.testing.assert_allclose(part, expected_probability(images, region=REGION), atol=1e-6)
    assert part[0] == pytest.approx(1 / (1 + np.exp(4.0)), abs=1e-6)
    assert whole[0] > part[0] + 0.3


def test_members_of_different_sizes(tmp_path: Path) -> None:
    specs = [{"name": "tall", "height": 32, "width": 16}, {"name": "square", "height": 20, "width": 20}]
    bundle = load_bundle(write_test_bundle(tmp_path, specs))
    runtime = OnnxCpuRuntime()
    rng = np.random.default_rng(1)
    for member in bundle.members:
        images = random_images(rng, "uint8", (5, *member.input_size))
        result = runtime.load(member, bundle.path).predict(images)
        np.testing.assert_allclose(result, expected_probability(images), atol=1e-5)


def test_runner_refuses_wrong_batches(tmp_path: Path) -> None:
    bundle = load_bundle(write_test_bundle(tmp_path, [{"name": "m", "height": 8, "width": 4}]))
    runner = OnnxCpuRuntime(threads=1).load(bundle.members[0], bundle.path)
    with pytest.raises(ValueError, match=r"member 'm': expected uint8 pixels, got uint16"):
        runner.predict(np.zeros((2, 8, 4), np.uint16))
    with pytest.raises(ValueError, match=r"shape \(B, 8, 4\), got \(2, 4, 8\)"):
        runner.predict(np.zeros((2, 4, 8), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(B, 8, 4\), got \(2, 1, 8, 4\)"):
        runner.predict(np.zeros((2, 1, 8, 4), np.uint8))  # the runner adds the channel itself
    with pytest.raises(TypeError, match="numpy array"):
        runner.predict([[0] * 4] * 8)
    assert runner.predict(np.zeros((0, 8, 4), np.uint8)).shape == (0,)


def test_non_contiguous_batches_are_fine(tmp_path: Path) -> None:
    bundle = load_bundle(write_test_bundle(tmp_path, [{"name": "m", "height": 8, "width": 4}]))
    runner = OnnxCpuRuntime(threads=1).load(bundle.members[0], bundle.path)
    images = np.random.default_rng(2).integers(0, 256, (6, 8, 8), dtype=np.uint8)[::2, :, ::2]
    np.testing.assert_allclose(runner.predict(images), expected_probability(images), atol=1e-5)


@pytest.mark.parametrize("field, value, problem", [
    ("height", 16, "input shape"),
    ("dtype", "uint16", "input type tensor(uint8)"),
])
def test_a_model_that_contradicts_bundle_json_fails_at_load(tmp_path: Path, field, value, problem) -> None:
    directory = write_test_bundle(tmp_path, [{"name": "m", "height": 8, "width": 4}])
    document = json.loads((directory / "bundle.json").read_text())
    document["members"][0]["input"][field] = value
    document["members"][0]["input"]["value_range"] = [0, 65535 if value == "uint16" else 255]
    write_bundle_json(directory, document)
    bundle = load_bundle(directory)
    with pytest.raises(BundleError, match=re.escape(problem)) as info:
        OnnxCpuRuntime().load(bundle.members[0], bundle.path)
    assert "m.onnx" in str(info.value)


def test_an_unreadable_model_is_a_bundle_error(tmp_path: Path) -> None:
    directory = write_test_bundle(tmp_path, [{"name": "m", "height": 8, "width": 4}])
    (directory / "m.onnx").write_bytes(b"not onnx")
    document = json.loads((directory / "bundle.json").read_text())
    document["members"][0]["sha256"]["m.onnx"] = sha256_file(directory / "m.onnx")
    write_bundle_json(directory, document)
    bundle = load_bundle(directory)
    with pytest.raises(BundleError, match="ONNX Runtime cannot load member 'm'"):
        OnnxCpuRuntime().load(bundle.members[0], bundle.path)


def test_threads(tmp_path: Path) -> None:
    assert OnnxCpuRuntime().threads >= 1
    assert OnnxCpuRuntime(threads=3).threads == 3
    with pytest.raises(ValueError):
        OnnxCpuRuntime(threads=0)


def test_runtimes_satisfy_the_protocols(tmp_path: Path) -> None:
    bundle = load_bundle(write_test_bundle(tmp_path, [{"name": "m", "height": 8, "width": 4}]))
    runtime = OnnxCpuRuntime()
    assert isinstance(runtime, Runtime) and isinstance(TorchExportRuntime(), Runtime)
    assert isinstance(runtime.load(bundle.members[0], bundle.path), MemberRunner)


# --- selection ------------------------------------------------------------------------------

def with_torch_artifacts(directory: Path) -> Path:
    """Give every member a (dummy) torch artifact: selection only looks at bundle.json."""
    document = json.loads((directory / "bundle.json").read_text())
    for member in document["members"]:
        file = f"{member['name']}.pt2"
        (directory / file).write_bytes(b"a torch.export archive would be here")
        member["artifacts"]["torch"] = file
        member["sha256"][file] = sha256_file(directory / file)
    write_bundle_json(directory, document)
    return directory


@pytest.fixture
def bundle(tmp_path: Path):
    return load_bundle(write_test_bundle(tmp_path, [{"name": "a", "height": 8, "width": 4},
                                                    {"name": "b", "height": 8, "width": 4}]))


def test_auto_without_torch_artifacts_picks_onnxruntime(bundle) -> None:
    runtime, reason = select_runtime("auto", bundle, threads=2)
    assert isinstance(runtime, OnnxCpuRuntime) and runtime.threads == 2
    assert reason == "onnxruntime-cpu (no torch artifact for a, b)"


@pytest.mark.skipif(HAS_TORCH, reason="checks the machine without torch")
def test_auto_without_torch_picks_onnxruntime(bundle) -> None:
    with_torch_artifacts(bundle.path)
    runtime, reason = select_runtime("auto", load_bundle(bundle.path))
    assert runtime.name == "onnxruntime-cpu"
    assert reason == "onnxruntime-cpu (torch not installed)"


def test_onnx_on_request(bundle) -> None:
    runtime, reason = select_runtime("onnx", bundle)
    assert runtime.name == "onnxruntime-cpu" and reason == "onnxruntime-cpu (requested)"


@pytest.mark.skipif(HAS_TORCH, reason="checks the machine without torch")
def test_torch_on_request_without_torch_fails_clearly(bundle) -> None:
    with_torch_artifacts(bundle.path)
    with pytest.raises(RuntimeUnavailableError, match=r"needs PyTorch .*mammo-batch\[train\]"):
        select_runtime("torch", load_bundle(bundle.path))


def test_torch_on_request_without_torch_artifacts_fails_clearly(bundle) -> None:
    with pytest.raises(RuntimeUnavailableError, match="no torch artifact for a, b"):
        select_runtime("torch", bundle)


def test_torch_runtime_refuses_a_member_without_torch_artifact(bundle) -> None:
    with pytest.raises(RuntimeUnavailableError, match="member 'a' has no torch artifact"):
        TorchExportRuntime().load(bundle.members[0], bundle.path)


def test_unknown_runtime(bundle) -> None:
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'openvino'"):
        select_runtime("openvino", bundle)


def test_auto_does_not_import_torch_for_a_bundle_without_torch_artifacts(bundle) -> None:
    # Importing torch takes seconds (and CUDA initialisation more): only when it could be used.
    code = (
        "import sys; from mammo_batch.engine.bundle import load_bundle; "
        "from mammo_batch.engine.runtimes import select_runtime; "
        f"select_runtime('auto', load_bundle({str(bundle.path)!r})); "
        "assert 'torch' not in sys.modules, 'auto imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- GPU runtimes: what can be checked without a GPU -------------------------------------------------


def test_tensorrt_on_request_says_why_not(bundle) -> None:
    with pytest.raises(RuntimeUnavailableError, match="no TensorRT engines in the bundle"):
        select_runtime("tensorrt", bundle)


def test_tensorrt_engines_are_matched_by_compute_capability_and_version(tmp_path: Path) -> None:
    from mammo_batch.engine.runtimes.tensorrt import matching_engine, why_not_tensorrt

    directory = write_test_bundle(tmp_path, [{"name": "a", "height": 8, "width": 4}])
    document = json.loads((directory / "bundle.json").read_text())
    for member in document["members"]:
        file = f"{member['name']}.sm90.trt11.4.0.engine"
        (directory / file).write_bytes(b"a serialized engine would be here")
        member["artifacts"]["tensorrt"] = [{"file": file, "compute_capability": "9.0", "tensorrt_version": "11.4.0",
                                            "precision": "fp16", "gpu_name": "NVIDIA H100", "batch_sizes": [1, 8, 16]}]
        member["sha256"][file] = sha256_file(directory / file)
    write_bundle_json(directory, document)
    loaded = load_bundle(directory)
    member = loaded.members[0]
    assert matching_engine(member, "9.0", "11.4.0").batch_sizes == (1, 8, 16)
    assert matching_engine(member, "8.0", "11.4.0") is None  # another GPU model
    assert matching_engine(member, "9.0", "11.5.0") is None  # another TensorRT version
    why = why_not_tensorrt(loaded)
    assert why in ("TensorRT not installed", "no CUDA device") or why.startswith("no engine for")

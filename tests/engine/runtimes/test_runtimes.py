"""Runtimes: ONNX Runtime CPU runners against an independent numpy model, and runtime selection."""

from __future__ import annotations

import importlib.util
import json
import os
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
    TorchRuntime,
    select_runtime,
)
from mammo_batch.engine.runtimes.torch_cpu import cpu_flags, why_no_cpu_bf16

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
    with pytest.raises(TypeError, match="expected an array"):
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
    assert isinstance(runtime, Runtime) and isinstance(TorchRuntime(), Runtime)
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
    assert reason == ("onnxruntime-cpu (not tensorrt: no TensorRT engines in the bundle (mammo-batch build-engines); "
                      "not torch-cuda, torch-cpu-bf16: no torch artifact for a, b)")


@pytest.mark.skipif(HAS_TORCH, reason="checks the machine without torch")
def test_auto_without_torch_picks_onnxruntime(bundle) -> None:
    with_torch_artifacts(bundle.path)
    runtime, reason = select_runtime("auto", load_bundle(bundle.path))
    assert runtime.name == "onnxruntime-cpu"
    assert reason.startswith("onnxruntime-cpu (") and "not torch-cuda: the torch runtime needs PyTorch" in reason


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
        TorchRuntime().load(bundle.members[0], bundle.path)


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


# --- bf16 on the CPU -----------------------------------------------------------------------

CPU_HAS_BF16 = why_no_cpu_bf16() is None
PASSED_GATE = {"passed": True, "views": 40, "studies": 10, "max_prob_diff": 0.004,
               "study_auc_change": -0.001, "max_prob_diff_tolerance": 0.02,
               "study_auc_change_tolerance": 0.005}


def with_bf16_gates(directory: Path, gates: dict[str, dict | None]) -> Path:
    """Record a bf16 gate (or none) per member, as `build` does."""
    document = json.loads((directory / "bundle.json").read_text())
    for member in document["members"]:
        if gates.get(member["name"]) is not None:
            member["bf16_gate"] = gates[member["name"]]
    write_bundle_json(directory, document)
    return directory


def test_cpu_flags_are_read_from_cpuinfo_text() -> None:
    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\nbogomips\t: 4000\n"
    assert {"avx512_bf16", "avx512_vnni"} <= cpu_flags(text)
    assert why_no_cpu_bf16(text) is None
    assert why_no_cpu_bf16("flags\t: fpu avx2 avx512f avx512_vnni\n") == \
        "CPU has no bf16 instructions (avx512_bf16 or amx_bf16)"
    assert why_no_cpu_bf16("flags\t: fpu amx_bf16 amx_tile\n") is None


def test_bundle_reads_and_checks_the_bf16_gate(bundle) -> None:
    with_bf16_gates(bundle.path, {"a": PASSED_GATE})
    loaded = load_bundle(bundle.path)
    gate = loaded.member("a").bf16_gate
    assert gate.passed and gate.max_prob_diff == 0.004 and gate.study_auc_change == -0.001
    assert loaded.member("b").bf16_gate is None
    with_bf16_gates(bundle.path, {"b": {**PASSED_GATE, "study_auc_change": None}})
    with pytest.raises(BundleError, match=r"members\[1\]\.bf16_gate: passed is true but max_prob_diff or "
                                          r"study_auc_change is null"):
        load_bundle(bundle.path)


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_auto_without_a_passed_bf16_gate_stays_on_onnxruntime(bundle) -> None:
    with_torch_artifacts(bundle.path)
    _, reason = select_runtime("auto", load_bundle(bundle.path))
    assert reason.startswith("onnxruntime-cpu (") and "not torch-cuda: no CUDA device" in reason
    assert "not torch-cpu-bf16: no bf16 gate in the bundle for a, b" in reason
    with_bf16_gates(bundle.path, {"a": PASSED_GATE, "b": {**PASSED_GATE, "passed": False,
                                                          "max_prob_diff": 0.05}})
    runtime, reason = select_runtime("auto", load_bundle(bundle.path))
    assert runtime.name == "onnxruntime-cpu"
    assert "not torch-cpu-bf16: bf16 gate not passed by b" in reason


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_auto_picks_bf16_where_the_cpu_has_it_and_every_gate_passed(bundle) -> None:
    with_bf16_gates(with_torch_artifacts(bundle.path), {"a": PASSED_GATE, "b": PASSED_GATE})
    runtime, reason = select_runtime("auto", load_bundle(bundle.path), threads=2)
    if CPU_HAS_BF16:
        assert runtime.name == "torch-cpu-bf16" and runtime.precision == "bf16" and runtime.threads == 2
        assert reason.startswith("torch-cpu-bf16 (") and "not torch-cuda: no CUDA device" in reason
    else:
        assert reason.startswith("onnxruntime-cpu (") and "not torch-cpu-bf16: CPU has no bf16" in reason


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_bf16_on_request(bundle) -> None:
    with_torch_artifacts(bundle.path)
    if not CPU_HAS_BF16:
        with pytest.raises(RuntimeUnavailableError, match="CPU has no bf16 instructions"):
            select_runtime("torch-cpu-bf16", load_bundle(bundle.path))
        return
    runtime, reason = select_runtime("torch-cpu-bf16", load_bundle(bundle.path))
    assert runtime.name == "torch-cpu-bf16"
    assert reason == "torch-cpu-bf16 (requested; no passed bf16 gate for a, b)"


def test_bf16_is_cpu_only_and_fp16_gpu_only() -> None:
    with pytest.raises(ValueError, match="bf16 on the CPU only"):
        TorchRuntime("cuda", "bf16")
    with pytest.raises(ValueError, match="fp16 on the GPU only"):
        TorchRuntime("cpu", "fp16")
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        TorchRuntime("cpu", "int8")


@pytest.fixture(scope="module")
def exported_tiny(tmp_path_factory):
    """A real tiny fold model exported as the build does, with outputs spread over (0, 1)."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    import torch
    from test_export import export_both, probability_model, write_member_bundle

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    exported = export_both(probability_model("tiny", size=(64, 32)), tmp_path_factory.mktemp("tiny"),
                           64, 32, "uint8")
    bundle = load_bundle(write_member_bundle(tmp_path_factory.mktemp("bundle"), exported))
    yield exported, bundle
    torch.set_num_threads(threads)


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_bf16_runner_is_close_to_fp32_and_really_bf16(exported_tiny) -> None:
    # The runner's mechanics, which the torch-cpu-bf16 runtime and the build's bf16 gate share; on a
    # CPU without bf16 instructions torch emulates them (same numbers, slower), so this runs anywhere.
    from mammo_batch.build.parity import eager_probabilities
    from mammo_batch.engine.runtimes.torch_runner import load_torch_runner

    exported, bundle = exported_tiny
    images = random_images(np.random.default_rng(3), "uint8", (6, 64, 32))
    eager = eager_probabilities(exported.model, images)
    runner = load_torch_runner(bundle.members[0], bundle.path, "cpu", "bf16")
    probs = runner.predict(images)
    assert probs.dtype == np.float32 and probs.shape == (6,)
    diff = np.abs(probs - eager).max()
    assert diff <= 0.02, diff  # bf16 keeps ~3 significant digits
    assert diff > 1e-6, "identical to fp32: autocast did not run in bf16"
    assert eager.std() > 0.05  # spread outputs: the comparison means something
    assert runner.predict(images[:1])[0] == pytest.approx(probs[0], abs=1e-2)  # any batch size


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_the_bf16_gate_measures_probabilities_and_study_auc(exported_tiny) -> None:
    from mammo_batch.build.gates import BF16_MAX_PROB_DIFF, bf16_gate
    from mammo_batch.build.parity import eager_probabilities
    from mammo_batch.engine.runtimes.torch_runner import load_torch_runner

    exported, bundle = exported_tiny
    runner = load_torch_runner(bundle.members[0], bundle.path, "cpu", "bf16")
    images = random_images(np.random.default_rng(4), "uint8", (12, 64, 32))
    fp32 = eager_probabilities(exported.model, images)
    keys = [f"s{i // 2}" for i in range(12)]  # 6 studies of a left and a right view
    sides = ["L", "R"] * 6
    targets = {f"s{i}": i % 2 for i in range(6)}
    gate = bf16_gate(runner, images, fp32, keys, sides, targets)
    assert gate.views == 12 and gate.studies == 6
    assert 0 < gate.max_prob_diff <= BF16_MAX_PROB_DIFF
    assert gate.study_auc_change is not None and abs(gate.study_auc_change) <= 0.005
    assert gate.passed
    assert gate.reason == ""
    one_class = bf16_gate(runner, images, fp32, keys, sides, dict.fromkeys(targets, 0))
    assert one_class.study_auc_change is None and not one_class.passed
    assert one_class.reason == "no study AUC: the views lack labels of both classes"
    nan = fp32.copy()
    nan[3] = np.nan  # a NaN difference must fail the gate, never pass as "not greater than"
    failed = bf16_gate(runner, images, nan, keys, sides, targets)
    assert not failed.passed and failed.max_prob_diff is None and "NaN" in failed.reason


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_torch_is_imported_with_sleeping_openmp_threads(bundle, preset, expected) -> None:
    # Spinning OpenMP threads starve the decode workers (docs/scoring.md); a user's setting wins.
    with_torch_artifacts(bundle.path)
    code = ("import os, sys; from mammo_batch.engine.bundle import load_bundle; "
            "from mammo_batch.engine.runtimes import select_runtime; "
            f"select_runtime('auto', load_bundle({str(bundle.path)!r})); "
            "assert 'torch' in sys.modules; print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if preset:
        env["OMP_WAIT_POLICY"] = preset
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected

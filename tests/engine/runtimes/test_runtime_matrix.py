"""Every runtime of the registry x every kind of batch, and every runtime x the preparer that feeds it,
on the CPU device: real exported models, real ONNX Runtime sessions, real torch.

The GPU runtimes cannot run here (no CUDA, no TensorRT: never faked). What they run can: the
torch-cuda runtime is the one torch runner, which runs on the CPU device in fp16 autocast; and what
the preparer hands a runtime is decided by the runtime's declared capability, which is checked
against the object the registry makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from preparers import run_preparer

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from mammo_batch.build.member import MemberSpec, build_member  # noqa: E402
from mammo_batch.engine.bundle import Bundle, write_bundle  # noqa: E402
from mammo_batch.engine.pixels import PreprocessSettings  # noqa: E402
from mammo_batch.engine.runtimes import CHOICES, RUNTIMES, OnnxCpuRuntime, select_runtime  # noqa: E402
from mammo_batch.engine.runtimes.torch_runner import load_torch_runner  # noqa: E402
from mammo_batch.engine.schedule.choose import make_preparer  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

SIZE = (64, 32)
# What each runtime runs, on the CPU device: (device, precision) of the one torch runner, or the
# ONNX runtime; None where nothing of it can run without its hardware (TensorRT).
ON_CPU = {"tensorrt": None, "torch-cuda": ("cpu", "fp16"), "torch-cpu-bf16": ("cpu", "bf16"), "onnx": "onnx",
          "torch-cpu": ("cpu", "fp32")}
TOLERANCE = {"fp32": 1e-4, "onnx": 1e-4, "bf16": 2e-2, "fp16": 1e-2}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Bundle:
    """A tiny real model, built by the one member builder (checks skipped: random weights)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("bundle")
    model = ProbabilityModel(create_model("tiny", "uint8")).eval()
    member = build_member(model, directory, MemberSpec("m", 0, "tiny", SIZE, PreprocessSettings()), views=None)
    yield write_bundle(directory, Bundle(name="matrix", created="2026-01-01T00:00:00Z", members=(member,),
                                         threshold=0.5))
    torch.set_num_threads(threads)


def runner_on_cpu(name: str, bundle: Bundle):
    how = ON_CPU[name]
    member = bundle.members[0]
    if how == "onnx":
        return OnnxCpuRuntime(threads=1).load(member, bundle.path), "onnx"
    return load_torch_runner(member, bundle.path, *how, threads=1), how[1]


def test_the_matrix_covers_every_runtime_of_the_registry() -> None:
    assert set(ON_CPU) == {spec.name for spec in RUNTIMES}
    assert ("auto", *(spec.name for spec in RUNTIMES), "torch") == CHOICES


@pytest.mark.parametrize("name", [spec.name for spec in RUNTIMES])
def test_the_made_runtime_has_the_declared_capability(name: str, bundle: Bundle) -> None:
    spec = next(spec for spec in RUNTIMES if spec.name == name)
    runtime, _ = spec.make(bundle, 1)  # making one imports and loads nothing
    assert runtime.accepts_device_arrays == spec.accepts_device_arrays
    assert spec.accepts_device_arrays == (spec.device == "cuda")


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("name", [name for name, how in ON_CPU.items() if how is not None])
def test_every_runtime_scores_numpy_and_torch_batches(name: str, kind: str, bundle: Bundle) -> None:
    runner, precision = runner_on_cpu(name, bundle)
    images = np.random.default_rng(1).integers(0, 256, (3, *SIZE), dtype=np.uint8)
    reference = OnnxCpuRuntime(threads=1).load(bundle.members[0], bundle.path).predict(images)
    batch = images if kind == "numpy" else torch.from_numpy(images)
    probs = runner.predict(batch)
    assert probs.dtype == np.float32 and probs.shape == (3,)
    np.testing.assert_allclose(probs, reference, atol=TOLERANCE[precision])
    assert runner.predict(batch[:0]).shape == (0,)
    with pytest.raises(ValueError, match="expected uint8 pixels, got uint16"):
        runner.predict(np.zeros((1, *SIZE), np.uint16) if kind == "numpy" else torch.zeros((1, *SIZE),
                                                                                            dtype=torch.uint16))


@pytest.mark.parametrize("name", [spec.name for spec in RUNTIMES])
def test_each_runtime_runs_here_or_says_why(name: str, bundle: Bundle) -> None:
    spec = next(spec for spec in RUNTIMES if spec.name == name)
    why = spec.why_unavailable(bundle)
    if why is not None:
        assert isinstance(why, str) and why
        return
    runtime, _ = select_runtime(name, bundle, threads=1)
    images = np.random.default_rng(2).integers(0, 256, (2, *SIZE), dtype=np.uint8)
    for batch in (images, torch.from_numpy(images)):
        assert runtime.load(bundle.members[0], bundle.path).predict(batch).shape == (2,)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("studies")
    write_studies(root, 1, seed=0, size=(400, 256), variants=["hologic"], layout="accession")
    return sorted(root.rglob("*.dcm"))


@pytest.mark.parametrize("decoder", ["cpu", "nvimgcodec"])
@pytest.mark.parametrize("name", [spec.name for spec in RUNTIMES])
def test_make_preparer_feeds_each_runtime_what_it_takes(name: str, decoder: str, bundle: Bundle,
                                                         files: list[Path]) -> None:
    if decoder == "nvimgcodec":
        pytest.importorskip("nvidia.nvimgcodec")
    spec = next(spec for spec in RUNTIMES if spec.name == name)
    preparer, reason = make_preparer(decoder, [SIZE], PreprocessSettings(), spec.accepts_device_arrays,
                                     workers=1, device="cpu")
    assert reason == f"{decoder} (requested)"
    prepared = run_preparer(preparer, files)
    assert sorted(prepared) == list(range(len(files))) and not any(p.failed for p in prepared.values())
    batch_parts = [prepared[i].inputs[SIZE] for i in range(len(files))]
    on_device = decoder != "cpu" and spec.accepts_device_arrays  # the GPU preparer keeps them on the device
    assert all(isinstance(part, torch.Tensor) == on_device for part in batch_parts)
    if ON_CPU[name] is None:
        return  # TensorRT: nothing of it runs without a GPU
    runner, precision = runner_on_cpu(name, bundle)
    batch = torch.stack(batch_parts) if on_device else np.stack(batch_parts)
    reference = OnnxCpuRuntime(threads=1).load(bundle.members[0], bundle.path).predict(
        np.stack([p.numpy() if isinstance(p, torch.Tensor) else p for p in batch_parts]))
    np.testing.assert_allclose(runner.predict(batch), reference, atol=TOLERANCE[precision])

"""GpuPreparer on the CPU device (nvImageCodec's CPU backend; torch render on the CPU) against
CpuPoolPreparer on the same files: the same views prepared, inputs within one grey level, the CPU
fallbacks counted per reason, and a bad file failing only its view."""

from __future__ import annotations

import numpy as np
import pytest
from preparers import run_preparer

torch = pytest.importorskip("torch")
pytest.importorskip("nvidia.nvimgcodec")
pytest.importorskip("imagecodecs")

from mammo_batch.engine.dicom.decoders.registry import make_decoder  # noqa: E402
from mammo_batch.engine.pixels import PreprocessSettings  # noqa: E402
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer  # noqa: E402
from mammo_batch.engine.schedule.gpu_preparer import GpuPreparer  # noqa: E402
from mammo_batch.engine.schedule.preparer import Preparer  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402

SIZES = [(256, 128), (192, 128)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("studies")
    for seed, variant in enumerate(["hologic", "htj2k", "planmed"]):
        write_studies(root / variant, 1, seed=seed, size=(400, 256), variants=[variant], layout="accession")
    paths = sorted(root.rglob("*.dcm"))
    bad = root / "bad.dcm"
    bad.write_bytes(paths[0].read_bytes()[:2000])  # truncated pixel data
    return [*paths, bad]


def test_gpu_preparer_matches_the_cpu_pool(files):
    settings = PreprocessSettings()
    gpu = GpuPreparer(SIZES, settings, make_decoder("nvimgcodec", "cpu"), batch_size=4, read_threads=2)
    assert isinstance(gpu, Preparer)
    ours = run_preparer(gpu, files)
    reference = run_preparer(CpuPoolPreparer(SIZES, settings, workers=1), files)
    assert sorted(ours) == sorted(reference) == list(range(len(files)))
    assert ours[len(files) - 1].failed and reference[len(files) - 1].failed  # the truncated file
    for view_id, prepared in reference.items():
        if prepared.failed:
            continue
        for size in SIZES:
            got = ours[view_id].inputs[size]
            assert isinstance(got, torch.Tensor) and got.shape == size
            diff = np.abs(got.numpy().astype(int) - prepared.inputs[size].astype(int))
            assert (diff <= 1).mean() >= 0.999, (view_id, size, diff.max())
    assert gpu.fallbacks["native"] > 0  # the planmed views: not encapsulated, decoded by pydicom
    # J2K and HTJ2K all went to nvImageCodec; the truncated file's PixelData could not be cut
    assert set(gpu.fallbacks) == {"native", "codestream_error"} and gpu.fallbacks["codestream_error"] == 1
    assert set(gpu.stage_s) >= {"read", "decode", "plan", "render"}

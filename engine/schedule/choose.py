"""`--decoder auto|cpu|nvimgcodec|dali` -> the run's Preparer, and why (one small function)."""

from __future__ import annotations

from mammo_batch.engine.dicom.decoders.choose import choose_decoder, make_decoder
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer
from mammo_batch.engine.schedule.preparer import Preparer, Size

GPU_RUNTIMES = ("tensorrt", "torch-cuda")  # runtimes that take device tensors: no host round trip


def make_preparer(decoder: str, sizes: list[Size], settings: PreprocessSettings, runtime_name: str,
                  workers: int = 0, batch_size: int = 8, time_limit_s: float = 300.0) -> tuple[Preparer, str]:
    """The CPU worker pool, or the GPU preparer with the chosen GPU decoder; raises
    DecoderUnavailableError when an explicitly requested decoder cannot run here."""
    choice = choose_decoder(decoder, "cuda")
    if choice.name == "cpu":
        return CpuPoolPreparer(sizes, settings, workers, time_limit_s=time_limit_s), choice.reason
    if settings.profile != "mammo-batch":  # the GPU renders the engine's pixel path only
        reason = f"cpu (the {settings.profile} preprocessing profile runs on the CPU; {choice.name} not used)"
        return CpuPoolPreparer(sizes, settings, workers, time_limit_s=time_limit_s), reason
    from mammo_batch.engine.schedule.gpu_preparer import GpuPreparer  # imports torch

    gpu_batch = max(16, 2 * batch_size)
    preparer = GpuPreparer(sizes, settings, make_decoder(choice.name, "cuda", gpu_batch), batch_size=gpu_batch,
                           read_threads=max(2, workers or 4),
                           host_outputs=not runtime_name.startswith(GPU_RUNTIMES))
    return preparer, choice.reason

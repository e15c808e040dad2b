"""`--decoder auto|cpu|nvimgcodec|dali` -> the run's Preparer, and why (one small function)."""

from __future__ import annotations

from mammo_batch.engine.dicom.decoders.registry import SPECS, choose_decoder, make_decoder
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer, Task, prepare_inputs
from mammo_batch.engine.schedule.preparer import Preparer, Size


def make_preparer(decoder: str, sizes: list[Size], settings: PreprocessSettings, accepts_device_arrays: bool,
                  workers: int = 0, batch_size: int = 8, time_limit_s: float = 300.0,
                  device: str = "cuda", task: Task = prepare_inputs) -> tuple[Preparer, str]:
    """The CPU worker pool, or the GPU preparer with the chosen GPU decoder; raises
    DecoderUnavailableError when an explicitly requested decoder cannot run here.

    `accepts_device_arrays` is the runtime's declared capability (runtimes/registry.py): the GPU
    preparer then hands it tensors on the device, else host arrays. `device` is where GPU
    decoders run ("cpu" runs their CPU backends: how the tests exercise this path). `task` is the CPU
    pool's per-view work (the GPU preparer has its own).
    """
    choice = choose_decoder(decoder, device)
    if not SPECS[choice.name].device_arrays:
        return CpuPoolPreparer(sizes, settings, workers, time_limit_s=time_limit_s, task=task), choice.reason
    if settings.profile != "mammo-batch":  # the GPU renders the engine's pixel path only
        reason = f"cpu (the {settings.profile} preprocessing profile runs on the CPU; {choice.name} not used)"
        return CpuPoolPreparer(sizes, settings, workers, time_limit_s=time_limit_s, task=task), reason
    from mammo_batch.engine.schedule.gpu_preparer import GpuPreparer  # imports torch

    gpu_batch = max(16, 2 * batch_size)
    preparer = GpuPreparer(sizes, settings, make_decoder(choice.name, device, gpu_batch), batch_size=gpu_batch,
                           read_threads=max(2, workers or 4), host_outputs=not accepts_device_arrays)
    return preparer, choice.reason

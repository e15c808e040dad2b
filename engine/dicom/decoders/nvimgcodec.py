"""NVIDIA nvImageCodec (the `gpu` extra): batched decode on the GPU, or on its CPU backend.

The GPU default: one `decode` call per batch on the current torch CUDA stream, results straight
into torch via DLPack. `allow_any_depth=True` + `ColorSpec.UNCHANGED` return the stored values
exactly (12-bit stays 0..4095), as NVIDIA's own pydicom plugin decodes. device "cpu" selects the
CPU-only backend (OpenJPEG inside), which is how the tests hold this file to pydicom's values on
a machine without a GPU.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np

from mammo_batch.engine.dicom.decoders.base import DecoderUnavailableError, EncodedView, why_gpu_stack_unavailable
from mammo_batch.engine.dicom.decoders.quiet import quiet_stderr

PACKAGE = "nvidia-nvimgcodec-cu13"


def why_unavailable(device: str = "cuda") -> str | None:
    """None when nvImageCodec can decode on `device` here; else why not."""
    why = why_gpu_stack_unavailable("nvidia.nvimgcodec", PACKAGE, "gpu", device)
    if why is not None:
        return why
    if device != "cpu" and importlib.util.find_spec("nvidia.nvjpeg2k") is None:
        return "nvJPEG2000 is not installed (pip install 'nvidia-nvimgcodec-cu13[nvjpeg2k]')"
    return None


def load_module() -> Any:
    why = why_unavailable("cpu")
    if why:
        raise DecoderUnavailableError(f"nvimgcodec decoder: {why}")
    with quiet_stderr():
        from nvidia import nvimgcodec
    return nvimgcodec


class NvImageCodecDecoder:
    name = "nvimgcodec"

    def __init__(self, device: str = "cuda", threads: int = 0) -> None:
        why = why_unavailable(device)
        if why:
            raise DecoderUnavailableError(f"nvimgcodec decoder on {device}: {why}")
        import torch

        self.torch = torch
        self.nvimgcodec = nvimgcodec = load_module()
        self.device = str(torch.device(device if device != "cuda" else f"cuda:{torch.cuda.current_device()}"))
        self.on_gpu = self.device != "cpu"
        self.params = nvimgcodec.DecodeParams(allow_any_depth=True, color_spec=nvimgcodec.ColorSpec.UNCHANGED,
                                              apply_exif_orientation=False)
        with quiet_stderr():
            if self.on_gpu:
                self._decoder = nvimgcodec.Decoder(device_id=torch.device(self.device).index,
                                                   max_num_cpu_threads=threads)
            else:
                self._decoder = nvimgcodec.Decoder(device_id=nvimgcodec.NVIMGCODEC_DEVICE_CPU_ONLY,
                                                   max_num_cpu_threads=threads,
                                                   backends=[nvimgcodec.Backend(nvimgcodec.BackendKind.CPU_ONLY)])

    def decode(self, views: Sequence[EncodedView]) -> list[Any | Exception]:
        """One batched call for every view; a view the library cannot decode gets its own error."""
        results: list[Any | Exception] = [ValueError("no codestream for a GPU decoder")] * len(views)
        todo = [i for i, v in enumerate(views) if v.codestream is not None]
        if not todo:
            return results
        streams = [self.nvimgcodec.CodeStream(views[i].codestream) for i in todo]
        if self.on_gpu:
            images = self._decoder.decode(streams, params=self.params,
                                          cuda_stream=self.torch.cuda.current_stream(self.device).cuda_stream)
        else:
            with quiet_stderr():
                images = self._decoder.decode(streams, params=self.params)
        for i, image in zip(todo, images, strict=True):
            results[i] = self._tensor(image) if image is not None else ValueError(
                "nvImageCodec could not decode this codestream")
        return results

    def _tensor(self, image: Any) -> Any:
        """(H, W, 1) uint16 -> (H, W) int32 on our device. The library's buffer is copied before it is reused."""
        torch = self.torch
        # On the device: zero-copy, ordered by decode's cuda_stream. Host images go through numpy:
        # their DLPack export asks CUDA for a stream and fails without a GPU.
        source = torch.from_dlpack(image) if self.on_gpu else torch.from_numpy(np.asarray(image.cpu()))
        if source.ndim == 3:
            if source.shape[2] != 1:
                return ValueError(f"expected one grayscale channel, got shape {tuple(source.shape)}")
            source = source[:, :, 0]
        return source.to(torch.int32)  # uint16 is storage-only in torch: widen at once (a new tensor)

"""NVIDIA DALI (the `dali` extra): `fn.decoders.image`, device "mixed" on a GPU, "cpu" without one.

One pipeline per decoder, fed whole batches of codestreams through an external_source. UINT16 is
requested and the GPU stretch is undone per image (stretch.py), with the precision read from the
codestream by nvImageCodec (DALI 2.4 depends on it), not from BitsStored. One bad sample fails the
whole run() and leaves the pipeline unusable (gpu.md): the pipeline is rebuilt and the batch is
decoded one view at a time, so only the bad view fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mammo_batch.engine.dicom.decoders.base import DecoderUnavailableError, EncodedView, why_gpu_stack_unavailable
from mammo_batch.engine.dicom.decoders.quiet import quiet_stderr
from mammo_batch.engine.dicom.decoders.stretch import undo_stretch

PACKAGE = "nvidia-dali-cuda130"
INPUT = "codestreams"


def why_unavailable(device: str = "cuda") -> str | None:
    """None when DALI can decode on `device` here; else why not."""
    return why_gpu_stack_unavailable("nvidia.dali", PACKAGE, "dali", device)


class DaliDecoder:
    name = "dali"

    def __init__(self, device: str = "cuda", max_batch: int = 16, threads: int = 2) -> None:
        why = why_unavailable(device)
        if why:
            raise DecoderUnavailableError(f"dali decoder on {device}: {why}")
        import torch

        with quiet_stderr():
            from nvidia import dali, nvimgcodec
        self.torch, self.dali, self.nvimgcodec = torch, dali, nvimgcodec
        self.device = str(torch.device(device if device != "cuda" else f"cuda:{torch.cuda.current_device()}"))
        self.on_gpu = self.device != "cpu"
        self.max_batch, self.threads = max_batch, threads
        self.stretched = 0  # images whose stretch was undone (reported by the GPU check)
        self._pipe = self._build()

    def _build(self) -> Any:
        fn, types = self.dali.fn, self.dali.types
        device_id = self.torch.device(self.device).index if self.on_gpu else None
        pipe = self.dali.Pipeline(batch_size=self.max_batch, num_threads=self.threads, device_id=device_id,
                                  prefetch_queue_depth=1)
        with pipe:
            encoded = fn.external_source(name=INPUT, dtype=types.UINT8, batch=True)
            pipe.set_outputs(fn.decoders.image(encoded, device="mixed" if self.on_gpu else "cpu",
                                               output_type=types.ANY_DATA, dtype=types.UINT16))
        with quiet_stderr():
            pipe.build()
        return pipe

    def decode(self, views: Sequence[EncodedView]) -> list[Any | Exception]:
        results: list[Any | Exception] = [ValueError("no codestream for a GPU decoder")] * len(views)
        todo = [i for i, v in enumerate(views) if v.codestream is not None]
        for start in range(0, len(todo), self.max_batch):
            chunk = todo[start:start + self.max_batch]
            try:
                images = self._run([views[i].codestream for i in chunk])
            except Exception:
                self._pipe = self._build()
                images = [self._one(views[i].codestream) for i in chunk]
            for i, image in zip(chunk, images, strict=True):
                results[i] = image
        return results

    def _one(self, codestream: bytes) -> Any:
        try:
            return self._run([codestream])[0]
        except Exception as exc:
            self._pipe = self._build()
            return exc

    def _run(self, codestreams: list[bytes]) -> list[Any]:
        self._pipe.feed_input(INPUT, [np.frombuffer(c, dtype=np.uint8) for c in codestreams])
        (out,) = self._pipe.run()
        images = []
        for k, codestream in enumerate(codestreams):
            image = self._tensor(out[k])
            precision = self.nvimgcodec.CodeStream(codestream).precision
            image, undone = undo_stretch(image, int(precision))
            self.stretched += undone
            images.append(image)
        return images

    def _tensor(self, sample: Any) -> Any:
        """One (H, W, 1) uint16 sample -> an (H, W) int32 tensor of our own (DALI reuses its buffers)."""
        torch = self.torch
        if self.on_gpu:
            source = torch.from_dlpack(sample)
        else:
            source = torch.from_numpy(np.array(sample.as_array() if hasattr(sample, "as_array") else sample))
        if source.ndim == 3:
            source = source[:, :, 0]
        return source.to(torch.int32)

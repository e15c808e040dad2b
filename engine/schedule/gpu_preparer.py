"""GpuPreparer: the Preparer (preparer.py) of a GPU machine.

    CPU threads: read the file, parse it, cut the codestream (codestream.py)
    one worker thread, on its own CUDA stream, a batch at a time:
        batch decode (nvImageCodec / DALI) -> small copy on the device -> plan on the CPU
        (plan.py, a few hundred KB per view) -> render on the device (render_torch.py) into a
        preallocated batch tensor per model size
    -> PreparedView inputs: device tensors (a GPU runtime takes them with no host round trip),
       or host arrays for a CPU runtime.

While the scheduler runs batch k in the model, the worker decodes and renders batch k+1. Views a
GPU decoder cannot take, or fails on, are decoded by the CPU decoder (pydicom) in the same batch,
counted per reason in `fallbacks`. Device memory is bounded by `capacity` views in flight, as the
CPU pool bounds host memory. Faults stay with their file (decode_error), never out of `collect`.
With device "cpu" and nvImageCodec's CPU backend the same code runs without a GPU (the tests).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mammo_batch.engine.dicom.decode import read_dataset
from mammo_batch.engine.dicom.decoders.base import DecoderBackend, EncodedView
from mammo_batch.engine.dicom.decoders.codestream import FALLBACK_GPU_ERROR, encode_route
from mammo_batch.engine.dicom.decoders.cpu import CpuDecoder
from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.pixels.mask import WORK_SIZE
from mammo_batch.engine.pixels.plan import plan_from_small
from mammo_batch.engine.pixels.render_torch import TORCH_DTYPES, display_crop, render_into
from mammo_batch.engine.schedule.preparer import REASON_DECODE_ERROR, PreparedView, Size

log = logging.getLogger("mammo_batch.score")


@dataclass
class _Read:
    view_id: int
    encoded: EncodedView | None
    error: str = ""
    started: float = 0.0


class GpuPreparer:
    def __init__(self, sizes: list[Size], settings: PreprocessSettings, decoder: DecoderBackend,
                 batch_size: int = 16, read_threads: int = 4, capacity: int = 0, host_outputs: bool = False) -> None:
        self.sizes = list(dict.fromkeys(sizes))
        self.settings = settings
        self.decoder = decoder
        self.device = torch.device(decoder.device)
        self.batch_size = batch_size
        self.capacity = capacity or 4 * batch_size
        self.host_outputs = host_outputs
        self.fallbacks: Counter[str] = Counter()  # CPU decodes, per reason
        self.stage_s: Counter[str] = Counter()  # read / decode / plan / render seconds (summed)
        self._cpu = CpuDecoder()
        self._reader = ThreadPoolExecutor(read_threads, thread_name_prefix="gpu-read")
        self._reads: queue.Queue[_Read | None] = queue.Queue()
        self._done: queue.Queue[PreparedView] = queue.Queue()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._worker = threading.Thread(target=self._work, name="gpu-prepare", daemon=True)
        self._worker.start()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def submit(self, view_id: int, path: str) -> None:
        self._in_flight += 1
        self._reader.submit(self._read, view_id, path)

    def collect(self, timeout: float) -> list[PreparedView]:
        if not self._in_flight:
            return []
        results = []
        try:
            results.append(self._done.get(timeout=timeout))
            while True:
                results.append(self._done.get_nowait())
        except queue.Empty:
            pass
        self._in_flight -= len(results)
        return results

    def close(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._reads.put(None)
        self._worker.join(timeout=10)
        if self.fallbacks:
            log.info("views decoded on the CPU instead of the GPU: %s",
                     ", ".join(f"{reason} {n}" for reason, n in sorted(self.fallbacks.items())))

    def _read(self, view_id: int, path: str) -> None:
        started = time.perf_counter()
        try:
            read = _Read(view_id, encode_route(read_dataset(path)), started=started)
        except Exception as exc:  # an unreadable file: this view only
            read = _Read(view_id, None, safe_error(exc, 300), started=started)
        with self._lock:  # several read threads
            self.stage_s["read"] += time.perf_counter() - started
        self._reads.put(read)

    def _work(self) -> None:
        """Batches of read views: wait for one, then take what else is ready, up to batch_size."""
        while True:
            first = self._reads.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    item = self._reads.get(timeout=0.005)
                except queue.Empty:
                    break
                if item is None:
                    self._reads.put(None)
                    break
                batch.append(item)
            try:
                with torch.cuda.stream(self._stream) if self._stream is not None else nullcontext():
                    results = self.prepare_batch(batch)
                    if self._stream is not None:
                        self._stream.synchronize()  # the outputs are complete before anyone reads them
            except Exception as exc:  # a fault of the batch as a whole (e.g. out of device memory)
                message = safe_error(exc, 300)
                results = [PreparedView(r.view_id, None, message, REASON_DECODE_ERROR) for r in batch]
            for result in results:
                self._done.put(result)

    def prepare_batch(self, reads: list[_Read]) -> list[PreparedView]:
        """Decode, plan and render one batch of read views (on the current stream)."""
        ok = [r for r in reads if r.encoded is not None]
        failed = [PreparedView(r.view_id, None, r.error, REASON_DECODE_ERROR) for r in reads if r.encoded is None]
        started = time.perf_counter()
        images = self._decode([r.encoded for r in ok])
        self.stage_s["decode"] += time.perf_counter() - started
        outputs = {size: torch.empty((len(ok), *size), dtype=TORCH_DTYPES[self.settings.dtype], device=self.device)
                   for size in self.sizes}  # the batch tensors every view of this batch is rendered into
        results = []
        for slot, (read, image) in enumerate(zip(ok, images, strict=True)):
            try:
                self._render(read.encoded, image, outputs, slot)
            except Exception as exc:
                message = safe_error(exc, 300)
                results.append(PreparedView(read.view_id, None, message, REASON_DECODE_ERROR))
                continue
            inputs = {size: out[slot].cpu().numpy() if self.host_outputs else out[slot]
                      for size, out in outputs.items()}
            results.append(PreparedView(read.view_id, inputs, seconds=time.perf_counter() - read.started))
        return failed + results

    def _decode(self, encoded: list[EncodedView]) -> list[Any]:
        """GPU decode where the view allows it; the CPU decoder for the rest and for GPU failures."""
        images: list[Any] = [None] * len(encoded)
        gpu = [i for i, e in enumerate(encoded) if e.codestream is not None and self.decoder.name != "cpu"]
        if gpu:
            for i, image in zip(gpu, self.decoder.decode([encoded[i] for i in gpu]), strict=True):
                if isinstance(image, Exception):
                    self.fallbacks[FALLBACK_GPU_ERROR] += 1
                    log.debug("GPU decode failed, decoding on the CPU: %s", image)
                else:
                    images[i] = image
        for i, e in enumerate(encoded):
            if images[i] is None:
                if self.decoder.name != "cpu" and e.codestream is None:
                    self.fallbacks[e.why_cpu] += 1
                (result,) = self._cpu.decode([e])
                images[i] = result if isinstance(result, Exception) else \
                    torch.from_numpy(result.astype(np.int32)).to(self.device, non_blocking=True)
        return images

    def _render(self, encoded: EncodedView, image: Any, outputs: dict[Size, Any], slot: int) -> None:
        if isinstance(image, Exception):
            raise image
        started = time.perf_counter()
        small, scale = small_copy(image)
        lo, hi = int(image.min()), int(image.max())
        plan = plan_from_small(encoded.ds, small, scale, tuple(image.shape), lo, hi, self.settings,
                               mirrored_small=lambda: small_copy(image.flip(1)))
        self.stage_s["plan"] += time.perf_counter() - started
        started = time.perf_counter()
        display = display_crop(image, plan)
        for out in outputs.values():
            render_into(display, plan, out[slot], self.settings.dtype)
        self.stage_s["render"] += time.perf_counter() - started


def small_copy(image: torch.Tensor) -> tuple[np.ndarray, float]:
    """mask.small_copy on the device: mean of whole k x k blocks, rounded as OpenCV rounds; on the host."""
    factor = math.ceil(max(image.shape) / WORK_SIZE)
    if factor <= 1:
        return image.cpu().numpy(), 1.0
    rows, cols = image.shape[0] // factor, image.shape[1] // factor
    block = image[: rows * factor, : cols * factor].to(torch.float32)[None, None]
    small = F.avg_pool2d(block, factor)[0, 0].round()
    return small.to(torch.int32).cpu().numpy(), float(factor)

"""The seed-style pipeline: how the winning SPR code scored, rebuilt for a side-by-side run.

Written from ../shared/REFERENCE.md ("The seed"): its preprocessing script, then its
inference loop, with nothing of ours in between.

1. Preprocess every file in a process pool (as the seed's script did): pydicom decode,
   MONOCHROME1 inverted, min-max to uint16, breast crop (threshold at 5% of the max on an
   8-bit copy, largest contour, zero outside it, its bounding box), pad to 2:1 (H:W) centred
   with the image's minimum, bilinear resize, and a 16-bit PNG written to disk.
2. Then each member in turn, as an eager fp32 torch model on one image at a time: read the
   PNG back, per-image min-max to uint8, forward. (The normalisation (x/255 - 0.5)/0.5 and
   the channel replication are inside our members, as they were inside the seed's.)

The members are our bundle's torch.export programs run as plain modules (`.module()`):
aten ops one by one in fp32, NCHW, batch 1: eager execution. The seed also wrote a full-size
"raw" PNG of every view; that write is left out here, which only favours the seed side.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom

Size = tuple[int, int]  # (height, width)
CROP_THRESHOLD = 0.05  # of the 8-bit copy's maximum


@dataclass(frozen=True)
class SeedMember:
    """One ensemble member as the seed-style side runs it."""

    name: str
    size: Size
    torch_file: Path  # a torch.export archive (.pt2)


@dataclass
class SeedResult:
    probs: dict[str, float]  # path -> mean over members, for every view that scored
    failed: dict[str, str]  # path -> why it did not
    timings: dict[str, float] = field(default_factory=dict)  # preprocess_s, load_s, model_s, wall_s

    @property
    def views_per_second(self) -> float:
        return len(self.probs) / self.timings["wall_s"] if self.timings.get("wall_s") else 0.0


def read_uint16(path: str) -> np.ndarray:
    """pydicom decode, MONOCHROME1 inverted, min-max to the full uint16 range."""
    ds = pydicom.dcmread(path, force=True)
    image = ds.pixel_array
    if ds.PhotometricInterpretation == "MONOCHROME1":
        image = image.max() - image
    low, high = float(image.min()), float(image.max())
    if high <= low:
        raise ValueError("a constant image")
    return ((image - low) * (65535.0 / (high - low))).astype(np.uint16)


def crop_breast(image: np.ndarray) -> np.ndarray:
    """Largest contour of the 5%-threshold mask; outside it zeroed; cropped to its bounding box."""
    copy8 = (image.astype(np.float32) / image.max() * 255).astype(np.uint8)
    _, binary = cv2.threshold(copy8, int(copy8.max() * CROP_THRESHOLD), 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
    mask = cv2.drawContours(np.zeros_like(binary), contours, largest, 255, -1)
    breast = cv2.bitwise_and(image, image, mask=mask)
    x, y, w, h = cv2.boundingRect(contours[largest])
    return breast[y:y + h, x:x + w]


def pad_to_2_to_1(image: np.ndarray) -> np.ndarray:
    """Centred in a (2w, w) or (h, h/2) canvas of the image's minimum, whichever holds it."""
    h, w = image.shape
    out_h, out_w = (h, h // 2) if h > 2 * w else (2 * w, w)
    canvas = np.full((out_h, out_w), image.min(), dtype=image.dtype)
    top, left = (out_h - h) // 2, (out_w - w) // 2
    canvas[top:top + h, left:left + w] = image
    return canvas


def preprocess_to_png(path: str, pngs: dict[Size, str]) -> None:
    """One DICOM file -> one 16-bit PNG per member size (the seed's preprocessing script)."""
    image = pad_to_2_to_1(crop_breast(read_uint16(path)))
    for (height, width), png in pngs.items():
        if not cv2.imwrite(png, cv2.resize(image, (width, height))):
            raise OSError(f"cannot write {png}")


def load_png(png: str) -> np.ndarray:
    """The seed's loader: the 16-bit PNG back from disk, per-image min-max to uint8."""
    image = cv2.imread(png, cv2.IMREAD_UNCHANGED).astype(np.float32)
    low, high = image.min(), image.max()
    return ((image - low) / max(high - low, 1e-6) * 255).astype(np.uint8)


def run_seed_style(paths: list[str], members: list[SeedMember], work_dir: Path, workers: int,
                   threads: int | None = None) -> SeedResult:
    """Score `paths` the seed's way; PNGs go under `work_dir`."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    sizes = list(dict.fromkeys(m.size for m in members))
    pngs = {path: {size: str(work_dir / f"{i:06d}_{size[0]}x{size[1]}.png") for size in sizes}
            for i, path in enumerate(paths)}
    started = time.perf_counter()
    failed = _preprocess_all(paths, pngs, workers)
    preprocessed = time.perf_counter()
    ready = [p for p in paths if p not in failed]
    sums = dict.fromkeys(ready, 0.0)
    load_s = 0.0
    for member in members:  # each member in turn over every image, as the seed's loop did
        loading = time.perf_counter()
        module = torch.export.load(str(member.torch_file)).module()
        load_s += time.perf_counter() - loading
        for path in ready:
            image = torch.from_numpy(load_png(pngs[path][member.size]))[None, None]
            with torch.no_grad():
                output = module(image)
            sums[path] += float((output[0] if isinstance(output, (tuple, list)) else output).reshape(-1)[0])
    finished = time.perf_counter()
    probs = {path: total / len(members) for path, total in sums.items()}
    return SeedResult(probs, failed, {"preprocess_s": preprocessed - started, "load_s": load_s,
                                      "model_s": finished - preprocessed - load_s, "wall_s": finished - started})


def _preprocess_all(paths: list[str], pngs: dict[str, dict[Size, str]], workers: int) -> dict[str, str]:
    """Run the preprocessing in a pool; returns path -> error for the files that failed."""
    failed: dict[str, str] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {path: pool.submit(preprocess_to_png, path, pngs[path]) for path in paths}
        for path, future in futures.items():
            error: Any = future.exception()
            if error is not None:  # the seed printed and moved on
                failed[path] = f"{type(error).__name__}: {error}"[:300]
    return failed

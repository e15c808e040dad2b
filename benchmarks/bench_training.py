"""Training and export speed per architecture on this machine (the `train` extra).

    python benchmarks/bench_training.py [--size 256x128] [--batch 16] [--archs tiny,resnet18,...]

Training images/s: forward + backward + AdamW step on random uint8 batches at the demo size
(the loop's own augmentation excluded). Export: ONNX (TorchScript exporter) and torch.export.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mammo_batch.build.export import export_onnx, export_torch
from mammo_batch.train.models import ProbabilityModel, create_model, list_archs

ROOT = Path(__file__).resolve().parents[1]


def train_speed(arch: str, height: int, width: int, batch: int, steps: int = 5) -> float:
    model = create_model(arch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 256, (batch, 1, height, width), dtype=torch.uint8).float()
    y = torch.randint(0, 2, (batch,)).float()

    def step() -> None:
        loss = F.binary_cross_entropy_with_logits(model(x).view(-1), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    model.train()
    step()  # warm up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def real_size_step(arch: str = "tf_efficientnet_b2", height: int = 1536, width: int = 768,
                   batch: int = 2) -> float:
    """Seconds for one training step (forward, backward, AdamW) at the seed's size."""
    model = create_model(arch).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, 256, (batch, 1, height, width), dtype=torch.uint8)
    y = torch.ones(batch)
    start = time.perf_counter()
    loss = F.binary_cross_entropy_with_logits(model(x).view(-1), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def export_times(arch: str, height: int, width: int) -> dict:
    model = ProbabilityModel(create_model(arch)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        export_onnx(model, Path(tmp) / "m.onnx", height, width)
        onnx_s = time.perf_counter() - start
        start = time.perf_counter()
        export_torch(model, Path(tmp) / "m.pt2", height, width)
        return {"onnx_s": onnx_s, "torch_export_s": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x128")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--archs", default="tiny,resnet18,efficientnet_b2,convnext_small")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training.json")
    parser.add_argument("--real-step", action="store_true",
                        help="Only time one tf_efficientnet_b2 step at 1536x768, batch 2 (the seed's setup).")
    args = parser.parse_args()
    if args.real_step:
        seconds = real_size_step()
        print(f"tf_efficientnet_b2 1536x768 batch 2: one training step {seconds:.1f} s "
              f"({torch.get_num_threads()} threads)")
        return
    height, width = (int(v) for v in args.size.split("x"))
    results = {"size": args.size, "batch": args.batch, "threads": torch.get_num_threads(), "archs": {}}
    for arch in args.archs.split(","):
        assert arch in list_archs(), arch
        row = {"train_images_per_s": train_speed(arch, height, width, args.batch),
               **export_times(arch, height, width)}
        results["archs"][arch] = row
        print(f"{arch:<16} {row['train_images_per_s']:7.1f} images/s  export: onnx "
              f"{row['onnx_s']:.1f} s, torch.export {row['torch_export_s']:.1f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""The training loop for one fold model: data, optimisation, validation, checkpoints, resume."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from mammo_batch import __version__
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.pixels.settings import FULL_SCALE
from mammo_batch.train.augment import augment
from mammo_batch.train.cache import PreprocessCache
from mammo_batch.train.dataset_index import ViewItem, build_index
from mammo_batch.train.folds import make_folds, read_folds, write_folds
from mammo_batch.train.labels import read_labels
from mammo_batch.train.metrics import auc, study_auc
from mammo_batch.train.models import create_model

log = logging.getLogger("mammo_batch.train")

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "val_image_auc", "val_study_auc", "lr",
                  "seconds", "images_per_s", "train_positive_share", "optimizer_steps"]


@dataclass
class TrainConfig:
    arch: str = "tiny"
    height: int = 256
    width: int = 128
    fold: int = 0
    n_folds: int = 4
    epochs: int = 10
    batch_size: int = 16
    accumulate: int = 1  # gradient accumulation steps
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    balanced: bool = False  # sample positives and negatives equally often
    ema: float = 0.0  # EMA decay; 0 = off
    pos_weight: float = 1.0  # BCE weight of positive images
    seed: int = 0
    workers: int = 0  # preprocessing processes for the cache (0 = one per core)
    threads: int = 0  # torch intra-op threads while training (0 = torch's default); see _reproducible
    window: str = "dicom"
    crop: bool = True
    dtype: str = "uint8"
    augment: bool = True
    amp: str = "auto"  # auto | bf16 | fp16 | off (CUDA only)
    init: str | None = None  # "FORMAT:PATH" or a state dict path (train/importers)
    trust_pickle: bool = False  # let the restricted unpickler read a pickled model (Mirai)
    extra: dict = field(default_factory=dict)

    @property
    def settings(self) -> PreprocessSettings:
        return PreprocessSettings(window=self.window, crop=self.crop, dtype=self.dtype)

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width


class CachedViews(Dataset):
    def __init__(self, items: list[ViewItem], cache: PreprocessCache) -> None:
        self.items, self.cache = items, cache

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item = self.items[index]
        image = torch.from_numpy(np.ascontiguousarray(self.cache.get(item.path)))
        return image.unsqueeze(0), torch.tensor(float(item.label)), index


def train_run(config: TrainConfig, labels_csv: Path, images: Path, out: Path, cache_dir: Path,
              folds_csv: Path | None = None) -> dict:
    """Train (or resume) one fold; returns the summary written to out/summary.json."""
    with _reproducible(config):
        return _train_run(config, labels_csv, images, out, cache_dir, folds_csv)


@contextmanager
def _reproducible(config: TrainConfig) -> Iterator[None]:
    """Seeded everything, deterministic kernels where torch has them, a fixed thread count.

    The same seed, thread count and CPU give the same model bit for bit. Another CPU (AVX-512 vs
    AVX2) still rounds differently in its kernels, so results across machines agree only within a
    band (README, "Quick start"). A fixed thread count also matters for speed: on a loaded 2-core
    machine torch's default two threads spin against other processes (measured 9x slower per step
    for the tiny model than one thread).
    """
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn, never fail, where none exists
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train_run(config: TrainConfig, labels_csv: Path, images: Path, out: Path, cache_dir: Path,
               folds_csv: Path | None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    labels = read_labels(labels_csv)
    folds = read_folds(folds_csv) if folds_csv else make_folds(labels, config.n_folds, config.seed)
    write_folds(out / "folds.csv", labels, folds)
    items = build_index(images, labels, workers=config.workers)
    cache = PreprocessCache(cache_dir, config.settings, config.size)
    items, preprocessed = _cached(items, cache, config.workers)
    train_items = [i for i in items if folds[i.accession_number] != config.fold]
    val_items = [i for i in items if folds[i.accession_number] == config.fold]
    if not train_items or not val_items:
        raise ValueError(f"fold {config.fold} leaves {len(train_items)} training and "
                         f"{len(val_items)} validation views")
    _check_same_run(out, config)
    _write_config(out, config, labels_csv, images, items)

    model = create_model(config.arch, config.dtype, config.init, trust_pickle=config.trust_pickle)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_items) / (config.batch_size * config.accumulate))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch))
    ema = _make_ema(model, config.ema)
    state = _resume(out / "last.pt", model, optimizer, scheduler, ema)  # after a crash
    loader = _loader(train_items, cache, config)
    targets = {i.study_key: i.target for i in items}

    for epoch in range(state["epoch"] + 1, config.epochs):
        start = time.monotonic()
        train_loss, positive_share, steps = _train_epoch(model, loader, optimizer, scheduler, ema, config,
                                                         epoch, device)
        seconds = time.monotonic() - start
        evaluated = ema.module if ema is not None else model
        probs, val_loss = predict(evaluated, val_items, cache, config, device)
        row = {
            "epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
            "val_image_auc": auc([i.label for i in val_items], probs),
            "val_study_auc": study_auc([i.study_key for i in val_items],
                                       [i.laterality for i in val_items], probs, targets),
            "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 2),
            "images_per_s": round(len(train_items) / seconds, 1),
            "train_positive_share": round(positive_share, 4), "optimizer_steps": steps,
        }
        _append_metrics(out / "metrics.csv", row)
        log.info("fold %d epoch %d/%d: loss %.4f val loss %.4f image AUC %.3f study AUC %.3f "
                 "(%.1f images/s)", config.fold, epoch + 1, config.epochs, train_loss, val_loss,
                 row["val_image_auc"], row["val_study_auc"], row["images_per_s"])
        if _better(row["val_study_auc"], state["best_auc"]):
            state.update(best_auc=row["val_study_auc"], best_epoch=epoch)
            _atomic_save(evaluated.state_dict(), out / "best.pt")
            _write_oof(out / "oof.csv", val_items, probs)
        state["epoch"] = epoch
        _atomic_save(_checkpoint(model, optimizer, scheduler, ema, state), out / "last.pt")

    summary = {"fold": config.fold, "arch": config.arch, "best_epoch": state["best_epoch"],
               "val_study_auc": state["best_auc"], "train_views": len(train_items),
               "val_views": len(val_items), "views_preprocessed": preprocessed,
               "decoded_during_epochs": cache.misses}  # 0: every epoch read the cache
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@torch.no_grad()
def predict(model, items: list[ViewItem], cache: PreprocessCache, config: TrainConfig,
            device) -> tuple[list[float], float]:
    """Probabilities for `items` (no augmentation) and the mean BCE loss."""
    model.eval()
    probs, losses = [], []
    for start in range(0, len(items), config.batch_size):
        chunk = items[start : start + config.batch_size]
        x = torch.from_numpy(np.stack([cache.get(i.path) for i in chunk])).unsqueeze(1).to(device)
        y = torch.tensor([float(i.label) for i in chunk], device=device)
        logits = model(x).float().view(-1)
        losses.append(F.binary_cross_entropy_with_logits(logits, y, reduction="sum").item())
        probs += torch.sigmoid(logits).cpu().tolist()
    return probs, sum(losses) / max(1, len(items))


def _train_epoch(model, loader, optimizer, scheduler, ema, config: TrainConfig, epoch: int,
                 device) -> tuple[float, float, int]:
    """One epoch; returns the mean loss, the share of positive samples drawn and the optimizer steps
    (recorded in metrics.csv, so that balanced sampling and accumulation can be checked)."""
    model.train()
    generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)  # resumable
    loader.sampler.generator = generator  # the epoch's order depends on (seed, epoch) only
    autocast, scaler = _amp(config, device)
    total, count, positives, steps = 0.0, 0, 0, 0
    optimizer.zero_grad(set_to_none=True)
    for step, (x, y, _) in enumerate(loader):
        x = augment(x, FULL_SCALE[config.dtype], generator) if config.augment else x.float()
        x, y = x.to(device), y.to(device)
        with autocast:
            logits = model(x).float().view(-1)
        weight = torch.where(y > 0.5, config.pos_weight, 1.0)
        loss = F.binary_cross_entropy_with_logits(logits, y, weight=weight)
        scaler.scale(loss / config.accumulate).backward()
        if (step + 1) % config.accumulate == 0:
            _optimizer_step(model, optimizer, scaler, scheduler, ema)
            steps += 1
        total, count = total + loss.item() * len(y), count + len(y)
        positives += int((y > 0.5).sum())
    if count and (step + 1) % config.accumulate:
        _optimizer_step(model, optimizer, scaler, scheduler, ema)
        steps += 1
    return total / max(1, count), positives / max(1, count), steps


def _optimizer_step(model, optimizer, scaler, scheduler, ema) -> None:
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    if ema is not None:
        ema.update(model)


def _amp(config: TrainConfig, device):
    """Mixed precision on CUDA only: bf16 where supported, else fp16 with a loss scaler."""
    off = torch.autocast("cpu", enabled=False), torch.amp.GradScaler("cpu", enabled=False)
    if device.type != "cuda" or config.amp == "off":
        return off
    bf16 = config.amp == "bf16" or (config.amp == "auto" and torch.cuda.is_bf16_supported())
    dtype = torch.bfloat16 if bf16 else torch.float16
    return torch.autocast("cuda", dtype=dtype), torch.amp.GradScaler("cuda", enabled=not bf16)


def _loader(items: list[ViewItem], cache: PreprocessCache, config: TrainConfig) -> DataLoader:
    dataset = CachedViews(items, cache)
    if config.balanced:
        labels = np.array([i.label for i in items])
        weights = np.where(labels == 1, 0.5 / max(1, labels.sum()), 0.5 / max(1, (1 - labels).sum()))
        sampler = WeightedRandomSampler(torch.tensor(weights), num_samples=len(items))
        return DataLoader(dataset, batch_size=config.batch_size, sampler=sampler)
    return DataLoader(dataset, batch_size=config.batch_size, shuffle=True)


def _warmup_cosine(warmup_steps: float, total_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1.0, warmup_steps)
        progress = (step - warmup_steps) / max(1.0, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _make_ema(model, decay: float):
    if decay <= 0:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=decay)


def _cached(items: list[ViewItem], cache: PreprocessCache, workers: int) -> tuple[list[ViewItem], int]:
    """Fill the cache (in parallel); views whose file cannot be decoded are dropped, loudly.

    Returns the usable views and how many were preprocessed now (0 when the cache was warm).
    """
    computed = cache.warm([i.path for i in items], workers)
    kept = [i for i in items if i.path not in cache.warm_failures]
    for path, error in cache.warm_failures.items():
        log.warning("skipping a view that cannot be preprocessed: %s (%s)", path, error)
    return kept, computed


def _checkpoint(model, optimizer, scheduler, ema, state: dict) -> dict:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ema": ema.module.state_dict() if ema is not None else None, "state": state}


def _resume(path: Path, model, optimizer, scheduler, ema) -> dict:
    state = {"epoch": -1, "best_auc": float("nan"), "best_epoch": -1}
    if not path.exists():
        return state
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    if ema is not None and checkpoint["ema"] is not None:
        ema.module.load_state_dict(checkpoint["ema"])
    state.update(checkpoint["state"])
    log.info("resuming after epoch %d (best study AUC %.3f)", state["epoch"] + 1, state["best_auc"])
    return state


def _better(value: float, best: float) -> bool:
    if math.isnan(value):
        return math.isnan(best)  # keep a first checkpoint even when AUC is undefined
    return math.isnan(best) or value > best


def _atomic_save(obj, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(obj, temporary)
    os.replace(temporary, path)


def _append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _write_oof(path: Path, items: list[ViewItem], probs: list[float]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "study_key", "laterality", "label", "target", "prob"])
        for item, prob in zip(items, probs, strict=True):
            writer.writerow([item.path, item.study_key, item.laterality, item.label, item.target,
                             f"{prob:.6f}"])
    os.replace(temporary, path)


def _check_same_run(out: Path, config: TrainConfig) -> None:
    """Resuming into a folder that holds a different run would mix two models."""
    previous = out / "config.json"
    if not (out / "last.pt").exists() or not previous.exists():
        return
    before = json.loads(previous.read_text())["config"]
    fixed = ("arch", "height", "width", "fold", "dtype", "window", "crop", "seed")
    changed = [k for k in fixed if before.get(k) != getattr(config, k)]
    if changed:
        raise ValueError(f"{out} holds a run with different {', '.join(changed)}: "
                         "use a new --out to start another run")


def _write_config(out: Path, config: TrainConfig, labels_csv: Path, images: Path, items) -> None:
    fingerprint = _data_fingerprint(items)
    document = {"config": asdict(config), "labels": str(labels_csv), "images": str(images),
                "data_fingerprint": fingerprint, "code_version": __version__,
                "command": sys.argv, "views": len(items)}
    (out / "config.json").write_text(json.dumps(document, indent=2))


def _data_fingerprint(items) -> str:
    import hashlib

    digest = hashlib.sha256()
    for item in sorted(items, key=lambda i: i.path):
        stat = os.stat(item.path)
        digest.update(f"{item.path}|{stat.st_size}|{stat.st_mtime_ns}|{item.label}\n".encode())
    return digest.hexdigest()

"""The RSNA 2023 winner's ConvNeXt-S folds (`best_convnext_fold_{k}.pth.tar`).

Verbatim timm training checkpoints {epoch, arch, state_dict, optimizer, version, args,
amp_scaler, state_dict_ema, metric}; keys are already timm `convnext_small` keys (max-pool
head, one output). The run selected its checkpoints on the EMA model, so `state_dict_ema` is
used when present. `args` is an argparse.Namespace, on the plain-data allow-list (data_globals.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from mammo_batch.train.importers.common import ImportedWeights, InitWeightsError, read_checkpoint

CONVNEXT_KEYS = ("stem.0.weight", "stages.3.blocks.0.conv_dw.weight", "head.fc.weight")


def import_rsna_convnext(path: Path, trust_pickle: bool = False) -> ImportedWeights:
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    if not isinstance(checkpoint, Mapping):
        raise InitWeightsError(f"{path}: expected a timm checkpoint dict, found {type(checkpoint).__name__}")
    for source in ("state_dict_ema", "state_dict"):
        weights = checkpoint.get(source)
        if isinstance(weights, Mapping) and weights:
            break
    else:
        raise InitWeightsError(f"{path}: neither 'state_dict_ema' nor 'state_dict' in the checkpoint "
                               f"(keys: {', '.join(map(str, list(checkpoint)[:8]))})")
    tensors = {_strip_module(k): v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    absent = [k for k in CONVNEXT_KEYS if k not in tensors]
    if absent:
        raise InitWeightsError(f"{path}: {source} is not a timm ConvNeXt (no {', '.join(absent)})")
    notes = [f"used {source}" + ("" if source == "state_dict_ema" else " (the file has no EMA weights)")]
    arch = checkpoint.get("arch")
    if isinstance(arch, str):
        notes.append(f"trained as {arch}")
    return ImportedWeights(tensors, source, arch="convnext_small", notes=notes)


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key

"""Mammo-CLIP's pretrained image encoders (`b2-model-best-epoch-10.tar`, `b5-model-best-epoch-7.tar`).

The file is a training checkpoint {model, optimizer, scheduler, config, epoch, train_loss};
`model` is the whole CLIP model's state dict, whose `image_encoder.*` tensors are lukemelas'
EfficientNet. They are renamed onto timm `tf_efficientnet_b2` / `_b5`, which our
`tf_efficientnet_b2` / `_b5` archs run with lukemelas' fixed pads (train/lukemelas_efficientnet.py).
Pass the .tar straight in: it is torch's zip format, not a tar archive to unpack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from mammo_batch.train.importers.common import (
    ImportedWeights,
    InitWeightsError,
    read_checkpoint,
    require_mapping,
    tensors_under,
)

# lukemelas' per-stage repeats for B0, scaled by ceil(depth multiplier): B2 1.2, B5 2.2.
BASE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
DEPTH_MULTIPLIER = {"b2": 1.2, "b5": 2.2}
FEATURES = {"b2": 1408, "b5": 2048}
# Mammo-CLIP's config names for its encoders (breastclip/model/modules/__init__.py).
CONFIG_NAMES = {"tf_efficientnetv2-detect": "b2", "tf_efficientnet_b5_ns-detect": "b5"}
TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
# Block sub-modules: stage 0 holds depthwise-separable blocks, later stages inverted residuals.
DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
            "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}
IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
            "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl",
            "_bn2": "bn3"}
BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def stage_starts(variant: str) -> list[int]:
    """Index of the first lukemelas block of each stage: B2 [0,2,5,8,12,16,21,23]."""
    starts = [0]
    for repeats in BASE_REPEATS:
        starts.append(starts[-1] + math.ceil(DEPTH_MULTIPLIER[variant] * repeats))
    return starts


def variant_of(encoder: Mapping[str, torch.Tensor], path: Path) -> str:
    """B2 or B5, from the number of blocks."""
    blocks = {int(m.group(1)) for k in encoder if (m := BLOCK_KEY.fullmatch(k))}
    for variant in DEPTH_MULTIPLIER:
        if len(blocks) == stage_starts(variant)[-1]:
            return variant
    raise InitWeightsError(f"{path}: {len(blocks)} EfficientNet blocks; expected 23 (B2) or 39 (B5)")


def lukemelas_to_timm(encoder: Mapping[str, torch.Tensor], path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """Rename lukemelas EfficientNet keys to timm's; `_fc.*` (PyPI's 1000-class head) is dropped."""
    variant = variant_of(encoder, path)
    starts = stage_starts(variant)
    renamed, unknown = {}, []
    for key, tensor in encoder.items():
        if key.startswith("_fc."):
            continue
        new = _rename(key, starts)
        if new is None:
            unknown.append(key)
        else:
            renamed[new] = tensor
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise InitWeightsError(f"{path}: {len(unknown)} keys are not lukemelas EfficientNet keys: {shown}")
    return renamed, variant


def _rename(key: str, starts: list[int]) -> str | None:
    module, _, leaf = key.rpartition(".")
    if module in TOP_LEVEL:
        return f"{TOP_LEVEL[module]}.{leaf}"
    match = BLOCK_KEY.fullmatch(key)
    if not match:
        return None
    index, part, leaf = int(match.group(1)), match.group(2), match.group(3)
    stage = max(s for s in range(len(starts) - 1) if starts[s] <= index)
    table = DS_BLOCK if stage == 0 else IR_BLOCK
    if part not in table:
        return None
    return f"blocks.{stage}.{index - starts[stage]}.{table[part]}.{leaf}"


def import_mammo_clip(path: Path, trust_pickle: bool = False) -> ImportedWeights:
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    model = require_mapping(checkpoint.get("model") if isinstance(checkpoint, Mapping) else None, path,
                            "a Mammo-CLIP checkpoint (a dict with 'model': the CLIP state dict)")
    encoder = tensors_under(model, "image_encoder.")
    if not encoder:
        raise InitWeightsError(f"{path}: 'model' has no image_encoder.* tensors; not a Mammo-CLIP checkpoint")
    weights, variant = lukemelas_to_timm(encoder, path)
    notes = [f"EfficientNet-{variant.upper()} ({len(weights)} encoder tensors)"]
    named = _config_variant(checkpoint)
    if named is not None and named != variant:
        raise InitWeightsError(f"{path}: config names EfficientNet-{named.upper()} but the weights are "
                               f"{variant.upper()}")
    ignored = sorted(k for k in model if not k.startswith("image_encoder."))
    return ImportedWeights(weights, "model[image_encoder.*]", arch=f"tf_efficientnet_{variant}",
                           mapped=len(weights), ignored=ignored, notes=notes)


def _config_variant(checkpoint: Mapping) -> str | None:
    try:
        name = checkpoint["config"]["model"]["image_encoder"]["name"]
    except (KeyError, TypeError):
        return None
    return CONFIG_NAMES.get(str(name).lower())

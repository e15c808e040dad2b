"""The seed's own fold checkpoints (Kaggle_SPR `model_best.pth.tar`).

{epoch, state_dict, best_auc (a numpy float64), optimizer, train/valid/test_result}; the
numpy scalar is why plain weights_only refuses them; numpy's scalar and dtypes are on the
plain-data allow-list (data_globals.py). `state_dict` is one of the seed's wrappers:
- FineTuneMammoClip: `image_encoder.<lukemelas EfficientNet>` + `classifier.{1,4}` (its MLP
  head) -> our `tf_efficientnet_b2` / `_b5` (same head, same names);
- FineTuneRSNA: `model.<timm convnext_small>` with a one-output `head.fc` -> `convnext_small`;
- FineTuneMIRAI: refused. Its features concatenate risk-factor predictions made by a modified
  Mirai pool, which has no timm counterpart here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mammo_batch.train.importers.common import (
    ImportedWeights,
    InitWeightsError,
    read_checkpoint,
    require_mapping,
    tensors_under,
)
from mammo_batch.train.importers.mammo_clip import lukemelas_to_timm
from mammo_batch.train.importers.rsna_convnext import CONVNEXT_KEYS

HEAD_KEYS = ("classifier.1.weight", "classifier.1.bias", "classifier.4.weight", "classifier.4.bias")


def import_seed(path: Path, trust_pickle: bool = False) -> ImportedWeights:
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    if not isinstance(checkpoint, Mapping):
        found = type(checkpoint).__name__
        raise InitWeightsError(f"{path}: expected the seed's checkpoint dict, found {found}")
    raw = require_mapping(checkpoint.get("state_dict"), path, "a 'state_dict' (the seed's checkpoint)")
    weights = {k[len("module."):] if k.startswith("module.") else k: v for k, v in raw.items()}
    notes = [f"epoch {checkpoint.get('epoch')}, best AUC {_float(checkpoint.get('best_auc'))}"]
    if "image_encoder._conv_stem.weight" in weights:
        return _mammo_clip(weights, path, notes)
    if "model.stem.0.weight" in weights:
        return _rsna(weights, path, notes)
    if "image_encoder.0.conv1.weight" in weights or any(k.startswith("rf_pool.") for k in weights):
        raise InitWeightsError(f"{path}: a FineTuneMIRAI checkpoint; not supported (its head reads "
                               "risk factors from Mirai's modified pool); use the ConvNeXt or "
                               "EfficientNet folds")
    shown = ", ".join(list(weights)[:5])
    raise InitWeightsError(f"{path}: state_dict is none of the seed's wrappers (keys start: {shown})")


def _mammo_clip(weights: Mapping[str, Any], path: Path, notes: list[str]) -> ImportedWeights:
    absent = [k for k in HEAD_KEYS if k not in weights]
    if absent:
        raise InitWeightsError(f"{path}: FineTuneMammoClip without its head ({', '.join(absent)} missing)")
    extra = [k for k in weights if not k.startswith(("image_encoder.", "classifier."))]
    if extra:
        raise InitWeightsError(f"{path}: unexpected keys next to the FineTuneMammoClip ones: "
                               f"{', '.join(extra[:5])}")
    encoder, variant = lukemelas_to_timm(tensors_under(weights, "image_encoder."), path)
    head = tensors_under(weights, "")
    tensors = {**encoder, **{k: head[k] for k in HEAD_KEYS}}
    _one_output(tensors["classifier.4.weight"], path)
    return ImportedWeights(tensors, "state_dict (FineTuneMammoClip)", arch=f"tf_efficientnet_{variant}",
                           mapped=len(encoder), notes=[f"EfficientNet-{variant.upper()}", *notes])


def _rsna(weights: Mapping[str, Any], path: Path, notes: list[str]) -> ImportedWeights:
    extra = [k for k in weights if not k.startswith("model.")]
    if extra:
        raise InitWeightsError(f"{path}: unexpected keys next to the FineTuneRSNA ones: "
                               f"{', '.join(extra[:5])}")
    tensors = tensors_under(weights, "model.")
    absent = [k for k in CONVNEXT_KEYS if k not in tensors]
    if absent:
        raise InitWeightsError(f"{path}: FineTuneRSNA without a timm ConvNeXt ({', '.join(absent)} missing)")
    _one_output(tensors["head.fc.weight"], path)
    return ImportedWeights(tensors, "state_dict (FineTuneRSNA)", arch="convnext_small",
                           notes=["ConvNeXt-S", *notes])


def _one_output(weight: torch.Tensor, path: Path) -> None:
    if weight.ndim != 2 or weight.shape[0] != 1:
        raise InitWeightsError(f"{path}: the head has {weight.shape[0]} outputs; the seed's recall "
                               "models have one (num_output_neurons=1)")


def _float(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "?"

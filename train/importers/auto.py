"""`auto`: a plain state dict, or one nested under state_dict_ema / state_dict / model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mammo_batch.train.importers.common import ImportedWeights, InitWeightsError, read_checkpoint

# Where trainers keep the weights inside a checkpoint dict, best first: EMA weights are the
# ones a timm / RSNA-style run selects, then the plain ones, then our own last.pt's "model".
NESTED_KEYS = ("state_dict_ema", "state_dict", "model")
# Wrappers that prefix parameter names: DataParallel/DDP ("module."), Lightning or a
# RecallNet-like wrapper ("model.", "backbone."). Stripped repeatedly, e.g. "module.model.".
PREFIXES = ("module.", "model.", "backbone.")


def import_auto(path: Path, trust_pickle: bool = False) -> ImportedWeights:
    checkpoint = read_checkpoint(path, trust_pickle=trust_pickle)
    weights, source = _unwrap(checkpoint, path)
    tensors = {_strip_prefixes(k): v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InitWeightsError(f"{path}: no tensors found ({source}); expected a state dict "
                               "(parameter name -> tensor)")
    return ImportedWeights(tensors, source)


def _unwrap(checkpoint: Any, path: Path) -> tuple[Mapping[str, Any], str]:
    if not isinstance(checkpoint, Mapping):
        raise InitWeightsError(f"{path}: expected a dict (a state dict), found {type(checkpoint).__name__}")
    for key in NESTED_KEYS:
        nested = checkpoint.get(key)
        if isinstance(nested, Mapping) and nested:
            return nested, key
    return checkpoint, "top level"


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key

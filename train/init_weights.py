"""Initial weights for a RecallNet's backbone from a local checkpoint (`train --init PATH`).

    report = load_init(net, Path("pretrained.pth"))       # importer="auto"
    print(report.summary())

Checkpoints are read with `torch.load(weights_only=True)` only: a file that needs arbitrary
classes unpickled (say a whole pickled nn.Module) is refused, never loaded unsafely, because
unpickling runs code from the file. Keys that do not fit the backbone (another head, another
number of classes) are skipped and reported rather than crashing the run.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # models.py imports this module lazily; avoid a cycle at import time
    from mammo_batch.train.models import RecallNet

log = logging.getLogger(__name__)

# Where trainers keep the weights inside a checkpoint dict, best first: EMA weights are the
# ones a timm / RSNA-style run selects, then the plain ones, then our own last.pt's "model".
NESTED_KEYS = ("state_dict_ema", "state_dict", "model")
# Wrappers that prefix parameter names: DataParallel/DDP ("module."), Lightning or a
# RecallNet-like wrapper ("model.", "backbone."). Stripped repeatedly, e.g. "module.model.".
PREFIXES = ("module.", "model.", "backbone.")


class InitWeightsError(ValueError):
    """The checkpoint cannot be used as initial weights (missing, unsafe or not weights)."""


@dataclass
class InitReport:
    """What `load_init` did: which backbone keys got weights and which did not."""

    path: Path
    source: str  # where the weights were in the file: "state_dict_ema", ..., or "top level"
    loaded: list[str] = field(default_factory=list)  # backbone keys that got checkpoint values
    missing: list[str] = field(default_factory=list)  # backbone keys the checkpoint lacks
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the backbone lacks
    # checkpoint keys whose shape differs from the backbone's: (key, checkpoint, backbone shape)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.path} ({self.source}): {len(self.loaded)} tensors loaded, "
                f"{len(self.missing)} missing, {len(self.unexpected)} unexpected, "
                f"{len(self.mismatched)} shape-mismatched (skipped)")
        if self.mismatched:
            shown = [f"{key} {ckpt} vs {own}" for key, ckpt, own in self.mismatched[:5]]
            text += "; mismatched: " + ", ".join(shown) + (", ..." if len(self.mismatched) > 5 else "")
        return text


@dataclass
class ImportedWeights:
    """An importer's result: tensors named as the backbone names them, and where they came from."""

    state_dict: dict[str, torch.Tensor]
    source: str


def auto_import(path: Path) -> ImportedWeights:
    """A plain state dict, or one nested under state_dict_ema / state_dict / model; prefixes stripped."""
    checkpoint = read_checkpoint(path)
    weights, source = _unwrap(checkpoint, path)
    tensors = {_strip_prefixes(k): v for k, v in weights.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InitWeightsError(f"{path}: no tensors found ({source}); expected a state dict "
                               "(parameter name -> tensor)")
    return ImportedWeights(tensors, source)


# Importer name -> function(path) -> ImportedWeights. Only "auto" exists now. Format-specific
# importers plug in here (a later issue): "mammo-clip" (renames lukemelas EfficientNet keys
# under `image_encoder.` to timm's tf_efficientnet names), "rsna" (timm ConvNeXt-S checkpoints;
# "auto" already reads them) and "mirai" (a pickled nn.Module: its tensors extracted with a
# restricted unpickler behind an explicit trust option, never torch.load without weights_only).
IMPORTERS: dict[str, Callable[[Path], ImportedWeights]] = {"auto": auto_import}


def load_init(model: RecallNet, path: Path, importer: str = "auto") -> InitReport:
    """Load the checkpoint at `path` into `model.backbone` (strict=False) and report what fitted.

    Tensors whose shape differs from the backbone's (a 1000-class ImageNet head, say) are
    skipped and listed in `InitReport.mismatched`; the rest is loaded.
    """
    if importer not in IMPORTERS:
        raise ValueError(f"unknown importer {importer!r}; choose one of {', '.join(IMPORTERS)}")
    path = Path(path)
    imported = IMPORTERS[importer](path)
    own = model.backbone.state_dict()
    report = InitReport(path=path, source=imported.source)
    usable = {}
    for key, tensor in imported.state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tensor.shape != own[key].shape:
            report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
        else:
            usable[key] = tensor
    result = model.backbone.load_state_dict(usable, strict=False)
    report.loaded = sorted(usable)
    report.missing = sorted(result.missing_keys)
    log.info("initial weights: %s", report.summary())
    return report


def read_checkpoint(path: Path) -> Any:
    """torch.load with weights_only=True, with errors that say what to do instead."""
    if not path.is_file():
        raise InitWeightsError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only met something other than tensors and containers. Torch's own message
        # suggests weights_only=False; we never do that: unpickling runs the file's code.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        what = f"it contains a pickled {found.group(1)}" if found else _unpickler_detail(e)
        raise InitWeightsError(
            f"{path}: refused by torch.load(weights_only=True) ({what}). It must be a plain state "
            "dict (parameter name -> tensor, possibly under 'state_dict_ema', 'state_dict' or "
            "'model'), not a pickled model or other objects: re-save it where it was made with "
            "torch.save(model.state_dict(), path)") from None
    except (RuntimeError, OSError, EOFError) as e:
        raise InitWeightsError(f"{path}: cannot read as a torch checkpoint: {e}") from None


def _unwrap(checkpoint: Any, path: Path) -> tuple[Mapping[str, Any], str]:
    """The state dict inside a checkpoint, and where it was found."""
    if not isinstance(checkpoint, Mapping):
        raise InitWeightsError(f"{path}: expected a dict (a state dict), found {type(checkpoint).__name__}")
    for key in NESTED_KEYS:
        nested = checkpoint.get(key)
        if isinstance(nested, Mapping) and nested:
            return nested, key
    return checkpoint, "top level"


def _unpickler_detail(error: Exception) -> str:
    """The one informative line of torch's weights_only error (after "WeightsUnpickler error:")."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if rest:
            return rest[0]
    return text.splitlines()[0] if text else type(error).__name__


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key

"""Initial weights for a RecallNet's backbone from a local checkpoint (`train --init [FORMAT:]PATH`).

    report = load_init(net, Path("b2-model-best-epoch-10.tar"), importer="mammo-clip")
    print(report.summary())

The file is read by an importer (train/importers/, one per format). Checkpoints are read with
`torch.load(weights_only=True)`, plus a few harmless globals a format needs; a whole pickled
model (Mirai) only through the restricted unpickler, and only with trust_pickle.

`auto` (a plain or nested state dict) is lenient: keys that do not fit are skipped and
reported. A named format is strict: every tensor must land on a backbone parameter of the
same shape, and every backbone parameter but the classifier head must get one; otherwise
InitWeightsError names the file and the keys (a wrong --arch, a truncated or foreign file).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammo_batch.train.importers import IMPORTERS, ImportedWeights, InitWeightsError, parse_init
from mammo_batch.train.importers.common import read_checkpoint

if TYPE_CHECKING:  # models.py imports this module lazily; avoid a cycle at import time
    from torch import nn

    from mammo_batch.train.models import RecallNet

log = logging.getLogger(__name__)
SHOWN = 5  # keys listed in a message


@dataclass
class InitReport:
    """What `load_init` did: which backbone keys got weights and which did not."""

    path: Path
    source: str  # where the weights were in the file: "state_dict_ema", ..., or "top level"
    importer: str = "auto"
    loaded: list[str] = field(default_factory=list)  # backbone keys that got checkpoint values
    missing: list[str] = field(default_factory=list)  # backbone keys that got no checkpoint value
    unexpected: list[str] = field(default_factory=list)  # checkpoint keys the backbone lacks
    # checkpoint keys whose shape differs from the backbone's: (key, checkpoint, backbone shape)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    mapped: int = 0  # tensors the format's key map renamed
    ignored: list[str] = field(default_factory=list)  # checkpoint tensors the format leaves out
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = (f"{self.path} ({self.importer}, {self.source}): {len(self.loaded)} tensors loaded "
                f"({self.mapped} renamed), {len(self.missing)} missing, {len(self.unexpected)} "
                f"unexpected, {len(self.mismatched)} shape-mismatched (skipped), "
                f"{len(self.ignored)} left out by the format")
        if self.mismatched:
            shown = [f"{key} {ckpt} vs {own}" for key, ckpt, own in self.mismatched[:SHOWN]]
            text += "; mismatched: " + ", ".join(shown) + (", ..." if len(self.mismatched) > SHOWN else "")
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def load_init(model: RecallNet, path: Path, importer: str = "auto", *, trust_pickle: bool = False,
              arch: str | None = None) -> InitReport:
    """Load the checkpoint at `path` into `model.backbone` with `importer` and report what fitted.

    `arch` (the model's `create_model` name), when given, must be the one a named format's
    weights belong to (Mammo-CLIP B2 -> tf_efficientnet_b2, ...).
    """
    if importer not in IMPORTERS:
        raise ValueError(f"unknown importer {importer!r}; choose one of {', '.join(IMPORTERS)}")
    path = Path(path)
    imported = IMPORTERS[importer](path, trust_pickle=trust_pickle)
    if arch is not None and imported.arch is not None and imported.arch != arch:
        raise InitWeightsError(f"{path}: {importer} weights for --arch {imported.arch}, not {arch}")
    report = _fit(model.backbone, imported, path, importer)
    if importer != "auto":
        _require_complete(report, _head_keys(model.backbone), path)
    usable = {k: imported.state_dict[k] for k in report.loaded}
    model.backbone.load_state_dict(usable, strict=False)
    log.info("initial weights: %s", report.summary())
    return report


def load_init_spec(model: RecallNet, spec: str | Path, *, trust_pickle: bool = False,
                   arch: str | None = None) -> InitReport:
    """`load_init` from a "FORMAT:PATH" spec (a bare path is "auto")."""
    importer, path = parse_init(spec)
    return load_init(model, path, importer, trust_pickle=trust_pickle, arch=arch)


def _fit(backbone: nn.Module, imported: ImportedWeights, path: Path, importer: str) -> InitReport:
    own = backbone.state_dict()
    report = InitReport(path=path, source=imported.source, importer=importer, mapped=imported.mapped,
                        ignored=imported.ignored, notes=imported.notes)
    for key, tensor in imported.state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif tensor.shape != own[key].shape:
            report.mismatched.append((key, tuple(tensor.shape), tuple(own[key].shape)))
        else:
            report.loaded.append(key)
    report.loaded.sort()
    report.missing = sorted(set(own) - set(report.loaded))  # mismatched ones included
    return report


def _require_complete(report: InitReport, head: set[str], path: Path) -> None:
    """A named format must cover the backbone (the head may stay fresh) and nothing else."""
    problems = []
    if report.unexpected:
        problems.append(f"{len(report.unexpected)} unexpected keys ({_some(report.unexpected)})")
    wrong = [f"{k} {c} vs {o}" for k, c, o in report.mismatched if k not in head]
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches, checkpoint vs model ({_some(wrong)})")
    missing = [k for k in report.missing if k not in head]
    if missing:
        problems.append(f"{len(missing)} model keys missing from the checkpoint ({_some(missing)})")
    if problems:
        raise InitWeightsError(f"{path}: does not fit the model (wrong --arch or a damaged file?): "
                               + "; ".join(problems))


def _head_keys(backbone: nn.Module) -> set[str]:
    """The classifier's state-dict keys: a format may bring its own head or leave it fresh."""
    classifier = backbone.get_classifier() if hasattr(backbone, "get_classifier") else None
    for name, module in backbone.named_modules():
        if module is classifier:
            return {f"{name}.{key}" for key in module.state_dict()}
    return set()


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (", ..." if len(keys) > SHOWN else "")


__all__ = ["IMPORTERS", "InitReport", "InitWeightsError", "load_init", "load_init_spec", "read_checkpoint"]

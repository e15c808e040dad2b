"""Mirai's image encoder (`mgh_mammo_MIRAI_Base_May20_2019.p`): a whole pickled module.

Only with trust_pickle (`--trust-pickle`): the file is read by the restricted unpickler
(restricted_pickle.py), which builds none of onconet's classes and runs none of its code,
then the ResNet18 trunk is renamed onto timm `resnet18`: `downsampler.{conv1,bn1}` ->
`{conv1,bn1}`, `layerL_b.*` -> `layerL.b.*`. The risk-factor pool, `fc` and the survival
layer are not part of the trunk and are left out (reported).
"""

from __future__ import annotations

import re
from pathlib import Path

from mammo_batch.train.importers.common import ImportedWeights, InitWeightsError
from mammo_batch.train.importers.restricted_pickle import module_tensors, restricted_load

STEM = "downsampler.conv1.weight"
LAYER = re.compile(r"layer([1-4])_([01])\.(.+)")


def import_mirai(path: Path, trust_pickle: bool = False) -> ImportedWeights:
    if not trust_pickle:
        raise InitWeightsError(f"{path}: Mirai snapshots are whole pickled models; reading one needs "
                               "--trust-pickle (a restricted unpickler: no foreign classes or code)")
    tensors = module_tensors(restricted_load(path))
    stems = [k[: -len(STEM)] for k in tensors if k.endswith(STEM)]
    if len(stems) != 1:
        raise InitWeightsError(f"{path}: expected one Mirai ResNet (a '{STEM}' tensor), found {len(stems)}")
    prefix = stems[0]
    mapped, ignored = {}, []
    for key, tensor in tensors.items():
        new = _rename(key[len(prefix):]) if key.startswith(prefix) else None
        if new is None:
            ignored.append(key)
        else:
            mapped[new] = tensor
    notes = [f"ResNet trunk under '{prefix or '(top level)'}'"]
    return ImportedWeights(mapped, f"pickled module[{prefix}*]", arch="resnet18", mapped=len(mapped),
                           ignored=sorted(ignored), notes=notes)


def _rename(key: str) -> str | None:
    if key.startswith("downsampler.conv1.") or key.startswith("downsampler.bn1."):
        return key[len("downsampler."):]
    match = LAYER.fullmatch(key)
    return f"layer{match.group(1)}.{match.group(2)}.{match.group(3)}" if match else None

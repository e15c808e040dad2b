"""Checkpoint importers: a peer's file -> tensors named as our backbone (timm) names them.

    weights = IMPORTERS["mammo-clip"](Path("b2-model-best-epoch-10.tar"))
    fmt, path = parse_init("seed:/ckpt/model_best.pth.tar")       # "FORMAT:PATH" or a bare path

One file per format; docs/importers.md gives each source, layout and licence. Every importer
takes (path, trust_pickle) and raises InitWeightsError naming the file and what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mammo_batch.train.importers.auto import import_auto
from mammo_batch.train.importers.common import ImportedWeights, InitWeightsError
from mammo_batch.train.importers.mammo_clip import import_mammo_clip
from mammo_batch.train.importers.mirai import import_mirai
from mammo_batch.train.importers.rsna_convnext import import_rsna_convnext
from mammo_batch.train.importers.seed import import_seed

Importer = Callable[..., ImportedWeights]  # (path: Path, trust_pickle: bool = False)

IMPORTERS: dict[str, Importer] = {
    "auto": import_auto,
    "mammo-clip": import_mammo_clip,
    "rsna-convnext": import_rsna_convnext,
    "mirai": import_mirai,
    "seed": import_seed,
}


def parse_init(spec: str | Path) -> tuple[str, Path]:
    """"FORMAT:PATH" -> (format, path); a spec without a known format prefix is ("auto", spec)."""
    text = str(spec)
    name, sep, rest = text.partition(":")
    if sep and name in IMPORTERS and rest:
        return name, Path(rest)
    return "auto", Path(text)


__all__ = ["IMPORTERS", "ImportedWeights", "InitWeightsError", "parse_init"]

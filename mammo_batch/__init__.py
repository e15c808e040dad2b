"""mammo-batch: batch inference for screening mammography recall models.

The subsystems live in sibling folders and install as subpackages:
``mammo_batch.engine`` (runtime), ``mammo_batch.train`` (finetuning),
``mammo_batch.build`` (checkpoints -> model bundle), ``mammo_batch.bench`` (vs the seed's pipeline).

The scoring API (engine/api.py), importable from here:

    import mammo_batch
    summary = mammo_batch.score(["/studies"], out="scores.parquet", models="bundle/")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {"score": "mammo_batch.engine.api", "ScoreOptions": "mammo_batch.engine.api",
        "ScoreSummary": "mammo_batch.engine.api", "ScoreUsageError": "mammo_batch.engine.api",
        "Ensemble": "mammo_batch.engine.ensemble"}
__all__ = ["__version__", *_API]


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


def __getattr__(name: str) -> Any:
    """The API is imported on first use: `import mammo_batch` alone stays cheap (the CLI's --version)."""
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'mammo_batch' has no attribute {name!r}")

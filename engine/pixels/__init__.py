"""The pixel path: decoded stored values -> model inputs (see pipeline.py)."""

from mammo_batch.engine.pixels.pipeline import Prepared, PreprocessSettings, preprocess

__all__ = ["Prepared", "PreprocessSettings", "preprocess"]

"""The pixel path: decoded stored values -> model inputs (see pipeline.py)."""

from mammo_batch.engine.pixels.pipeline import Prepared, preprocess
from mammo_batch.engine.pixels.plan import Plan, plan_view
from mammo_batch.engine.pixels.render import render
from mammo_batch.engine.pixels.settings import DTYPES, FULL_SCALE, PreprocessSettings

__all__ = ["DTYPES", "FULL_SCALE", "Plan", "Prepared", "PreprocessSettings", "plan_view", "preprocess", "render"]

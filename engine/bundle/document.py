"""The bundle.json documents, spelled once: `build`, the test helpers and the benchmarks all write
their bundles through these two functions (then `write_bundle_json`, then `load_bundle` to check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mammo_batch.engine.bundle.checksums import sha256_file
from mammo_batch.engine.bundle.model import FORMAT_VERSION
from mammo_batch.engine.pixels.settings import FULL_SCALE

ORIENTATION = "chest_wall_left"  # what the pixel path produces


def member_document(directory: str | Path, *, name: str, fold: int, arch: str, height: int, width: int,
                    onnx: str, torch: str | None = None, dtype: str = "uint8", window: str = "dicom",
                    crop: bool = True, metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """One member's entry; artifact paths are relative to `directory`, their sha256 computed here."""
    directory = Path(directory)
    files = [onnx] + ([torch] if torch else [])
    return {
        "name": name, "fold": fold, "arch": arch,
        "input": {"height": height, "width": width, "channels": 1, "dtype": dtype,
                  "value_range": [0, FULL_SCALE[dtype]]},
        "preprocess": {"window": window, "crop": crop, "orientation": ORIENTATION},
        "artifacts": {"onnx": onnx, "torch": torch, "tensorrt": []},
        "sha256": {file: sha256_file(directory / file) for file in files},
        "metrics": dict(metrics or {}),
    }


def bundle_document(*, name: str, members: list[dict[str, Any]], threshold: float, created: str,
                    description: str, provenance: dict[str, Any], breast_agg: str = "mean",
                    study_agg: str = "max") -> dict[str, Any]:
    """The whole bundle.json document (the bundle id hashes its bytes: keep `created` fixed to
    reproduce an id)."""
    return {
        "format_version": FORMAT_VERSION, "name": name, "created": created, "description": description,
        "members": members, "ensemble": "mean", "aggregation": {"breast": breast_agg, "study": study_agg},
        "threshold": threshold, "provenance": provenance,
    }

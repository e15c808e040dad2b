"""The bundle.json documents, spelled once: `build`, the test helpers and the benchmarks all write
their bundles through these two functions (then `write_bundle_json`, then `load_bundle` to check).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mammo_batch.engine.bundle.checksums import sha256_file
from mammo_batch.engine.bundle.model import FORMAT_VERSION
from mammo_batch.engine.pixels.settings import FULL_SCALE

# What each preprocessing profile produces: the pixel path puts the chest wall on the left; the seed's
# recipe leaves views as stored.
ORIENTATION_BY_PROFILE = {"mammo-batch": "chest_wall_left", "seed": "as_stored"}


def member_document(directory: str | Path, *, name: str, fold: int, arch: str, height: int, width: int,
                    onnx: str, torch: str | None = None, onnx_fp16: str | None = None, dtype: str = "uint8",
                    window: str = "dicom",
                    crop: bool = True, profile: str = "mammo-batch", metrics: dict[str, Any] | None = None,
                    bf16_gate: dict[str, Any] | None = None) -> dict[str, Any]:
    """One member's entry; artifact paths are relative to `directory`, their sha256 computed here.
    `bf16_gate`: the build's bf16 check (build.parity.check_bf16, as a dict), or None: never checked."""
    directory = Path(directory)
    files = [onnx] + [file for file in (torch, onnx_fp16) if file]
    return {
        "name": name, "fold": fold, "arch": arch,
        "input": {"height": height, "width": width, "channels": 1, "dtype": dtype,
                  "value_range": [0, FULL_SCALE[dtype]]},
        "preprocess": {"window": window, "crop": crop, "orientation": ORIENTATION_BY_PROFILE[profile],
                       "profile": profile},
        "artifacts": {"onnx": onnx, "torch": torch, **({"onnx_fp16": onnx_fp16} if onnx_fp16 else {}),
                      "tensorrt": []},
        "sha256": {file: sha256_file(directory / file) for file in files},
        "metrics": dict(metrics or {}),
        **({"bf16_gate": bf16_gate} if bf16_gate is not None else {}),
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

"""What every importer shares: the result type, the error type, safe reading and key helpers."""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mammo_batch.train.importers.data_globals import data_globals, to_plain


class InitWeightsError(ValueError):
    """The checkpoint cannot be used (missing, truncated, unsafe, wrong format or arch)."""


@dataclass
class ImportedWeights:
    """An importer's result: tensors named as our backbone names them, and where they came from."""

    state_dict: dict[str, torch.Tensor]
    source: str  # where in the file: "state_dict_ema", "model[image_encoder.*]", ...
    arch: str | None = None  # the `create_model` arch these weights belong to, when the format says
    mapped: int = 0  # tensors renamed by the format's key map
    ignored: list[str] = field(default_factory=list)  # checkpoint tensors deliberately left out
    notes: list[str] = field(default_factory=list)  # what the importer chose and why


def read_checkpoint(path: Path, allowed_globals: Iterable[Any] = (), *, trust_pickle: bool = False) -> Any:
    """torch.load(weights_only=True) with the plain-data allow-list (data_globals.py) and a few
    more harmless globals a format needs; omegaconf configs come back as dicts and lists.

    A file holding other objects is refused, naming the first one, unless `trust_pickle`:
    then the restricted unpickler reads it with inert stand-ins (restricted_pickle.py).
    Errors name the file and say what is in it instead; nothing is ever unpickled unsafely.
    """
    if not path.is_file():
        raise InitWeightsError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals([*data_globals(), *allowed_globals]):
            return to_plain(torch.load(path, map_location="cpu", weights_only=True))
    except pickle.UnpicklingError as e:
        if trust_pickle:
            from mammo_batch.train.importers.restricted_pickle import restricted_load  # imports this module

            return to_plain(restricted_load(path))
        # weights_only met something other than tensors and plain data. Torch's own message
        # suggests weights_only=False; we never do that: unpickling runs the file's code.
        # "Unsupported global: GLOBAL x.y ..." or "unsupported GLOBAL x.y whose module x is blocked"
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f"it contains a pickled {found.group(1)}" if found else unpickler_detail(e)
        raise InitWeightsError(
            f"{path}: refused by torch.load(weights_only=True) ({what}). It must be a plain state "
            "dict or a checkpoint of plain data (tensors, containers, numbers, omegaconf configs, "
            "numpy scalars, argparse.Namespace), not a pickled model or other objects: re-save it "
            "where it was made with torch.save(model.state_dict(), path). If you trust the file, "
            "--trust-pickle reads it with inert stand-ins for such classes (none of their code "
            "runs; calls to functions stay refused)") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise InitWeightsError(f"{path}: cannot read as a torch checkpoint (truncated or not one?): "
                               f"{first_line(e)}") from None


def tensors_under(weights: Mapping[str, Any], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose key starts with `prefix`, the prefix removed."""
    return {k[len(prefix):]: v for k, v in weights.items()
            if k.startswith(prefix) and isinstance(v, torch.Tensor)}


def require_mapping(value: Any, path: Path, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not value:
        found = type(value).__name__ if not isinstance(value, Mapping) else "an empty dict"
        raise InitWeightsError(f"{path}: expected {what}, found {found}")
    return value


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unpickler_detail(error: Exception) -> str:
    """The one informative line of torch's weights_only error (after "WeightsUnpickler error:")."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        rest = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        if rest:
            return rest[0]
    return first_line(error)

"""Read the tensors of a whole pickled model without building its classes or running its code.

    tree = restricted_load(path)           # only behind an explicit --trust-pickle
    tensors = module_tensors(tree)         # "a.b.weight" -> tensor, as state_dict() would name them

A pickled nn.Module (Mirai's snapshot) names its classes (onconet.models..., torch.nn...)
and asks the loader to create them. Here every class outside a short allow-list becomes an
inert stand-in that only records the attribute dict pickle hands it: no import, no
__init__, no __setstate__ of the real class. Calling any non-allowed global (the
`os.system` of a malicious REDUCE) is refused. Allowed: tensor/storage rebuild helpers,
OrderedDict, set, torch.device/Size/dtypes, all of which build plain data, and the
checkpoint data types of data_globals.py (defaultdict -> dict, numpy scalars, enum values).
"""

from __future__ import annotations

import _compat_pickle
import collections
import pickle
import types
import warnings
from pathlib import Path
from typing import Any

import torch

from mammo_batch.train.importers.common import InitWeightsError, first_line
from mammo_batch.train.importers.data_globals import data_callables
from mammo_batch.train.importers.stand_ins import Foreign, RefusedCall, stand_in


def _device(*args: Any) -> str:
    return ":".join(str(a) for a in args)  # a string is all a device means to us


_DTYPES = {name: getattr(torch, name) for name in dir(torch) if isinstance(getattr(torch, name), torch.dtype)}
ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "device"): _device,
    ("torch", "Size"): tuple,
    **{("torch", name): dtype for name, dtype in _DTYPES.items()},
    **{("torch._utils", name): getattr(torch._utils, name) for name in (
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")},
}
DATA = data_callables()


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (protocol 2 pickles say __builtin__.set), as pickle's own find_class maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        return ALLOWED.get((module, name)) or DATA.get(f"{module}.{name}") or stand_in(module, name)


def _load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


# torch.load takes a pickle module: it handles both the zip and the legacy container formats
# and storages itself, and calls our Unpickler for the object graph.
PICKLE_MODULE = types.ModuleType("mammo_batch_restricted_pickle")
PICKLE_MODULE.Unpickler = RestrictedUnpickler
PICKLE_MODULE.load = _load


def restricted_load(path: Path) -> Any:
    """The file's object graph, with stand-ins for every class; raises InitWeightsError."""
    if not path.is_file():
        raise InitWeightsError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():  # legacy files: torch cannot diff a stand-in's source
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=PICKLE_MODULE)
    except RefusedCall as e:
        raise InitWeightsError(f"{path}: unsafe pickle: {e}") from None
    except Exception as e:  # any parse failure of an untrusted file is "unreadable", not a crash
        raise InitWeightsError(f"{path}: cannot read as a pickled torch model (truncated or not "
                               f"one?): {type(e).__name__}: {first_line(e)}") from None


def module_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every parameter and buffer in a graph of stand-in modules, named as state_dict() would."""
    found: dict[str, torch.Tensor] = {}
    if isinstance(obj, Foreign):
        state = getattr(obj, "state", None)
        if isinstance(state, dict):
            for slot in ("_parameters", "_buffers"):
                for name, tensor in (state.get(slot) or {}).items():
                    if isinstance(tensor, torch.Tensor):
                        found[prefix + name] = tensor.detach()
            for name, child in (state.get("_modules") or {}).items():
                found.update(module_tensors(child, f"{prefix}{name}."))
    elif isinstance(obj, dict):  # a checkpoint dict around the model, e.g. {"model": ...}
        for key, value in obj.items():
            found.update(module_tensors(value, f"{prefix}{key}."))
    return found

"""The plain data training checkpoints carry besides tensors, read without running their code.

    with torch.serialization.safe_globals(data_globals()):
        checkpoint = to_plain(torch.load(path, weights_only=True))

Trainers save more than weights: Mammo-CLIP's config is half converted from omegaconf (list
values stay ListConfig, each pointing at its DictConfig parent, whose metadata holds a
collections.defaultdict), timm saves its argparse.Namespace, the seed numpy scalars. Each
type here is allowed by name and is inert:
- omegaconf containers, nodes and metadata, and the typing and builtin type names their
  metadata refers to, are stand-ins (stand_ins.py) built from their pickled state; omegaconf is
  never imported, and none of them can be called (a file could otherwise make `bytes(10**12)`);
- a defaultdict becomes a plain dict (its default factory is dropped, never called);
- enum members of a few training libraries become EnumValue records (the enum is not imported);
- numpy scalars and dtypes and argparse.Namespace are real: building them runs no code of the
  file's choosing.
`to_plain` then turns the omegaconf stand-ins into the dicts, lists and values they hold.
"""

from __future__ import annotations

import argparse
import collections
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from mammo_batch.train.importers.stand_ins import qualified_name, stand_in

DICT_CONFIG = "omegaconf.dictconfig.DictConfig"
LIST_CONFIG = "omegaconf.listconfig.ListConfig"
OMEGACONF_NODES = ("AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode", "BytesNode",
                   "PathNode", "EnumNode")
STAND_INS = {
    "omegaconf.dictconfig": ("DictConfig",),
    "omegaconf.listconfig": ("ListConfig",),
    "omegaconf.base": ("Metadata", "ContainerMetadata"),
    "omegaconf.nodes": OMEGACONF_NODES,
    # ref_type / object_type / key_type of omegaconf metadata: type references, never called
    "typing": ("Any", "Dict", "List", "Tuple", "Optional", "Union"),
    "builtins": ("dict", "list", "tuple", "int", "float", "str", "bytes", "bool"),
}
NODES = {f"omegaconf.nodes.{name}" for name in OMEGACONF_NODES}
# Enums that training libraries put into the configs they save (hydra's run mode, transformers'
# TrainingArguments). An enum member pickles as a call of its class with the value.
ENUMS = ("hydra.types.RunMode", "hydra.types.ConvertMode", "transformers.trainer_utils.IntervalStrategy",
         "transformers.trainer_utils.SaveStrategy", "transformers.trainer_utils.SchedulerType",
         "transformers.trainer_utils.HubStrategy", "transformers.training_args.OptimizerNames")


@dataclass(frozen=True)
class EnumValue:
    """An enum member of a class we do not import: its class's name and its value."""

    enum: str
    value: Any


def plain_dict(*args: Any) -> dict:
    """What a pickled collections.defaultdict(factory) becomes: a dict (pickle adds the items)."""
    return {}


def numpy_globals() -> list[Any]:
    """numpy's scalar reconstructor and dtypes, under numpy 2's and numpy 1's module names."""
    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    dtypes = [np.dtype, *(type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG")]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), *dtypes]


@functools.cache
def _enum_factories() -> dict[str, Any]:
    return {name: functools.partial(EnumValue, name) for name in ENUMS}


def data_callables() -> dict[str, Any]:
    """Full name -> what a pickle may call or reference by that name (besides stand-ins)."""
    found: dict[str, Any] = {"collections.defaultdict": plain_dict, "argparse.Namespace": argparse.Namespace,
                             **_enum_factories()}
    for entry in numpy_globals():
        value, name = entry if isinstance(entry, tuple) else (entry, f"{entry.__module__}.{entry.__qualname__}")
        found[name] = value
    return found


def data_stand_ins() -> dict[str, type]:
    """Full name -> inert stand-in class, for the omegaconf, typing and builtin type names."""
    return {f"{module}.{name}": stand_in(module, name) for module, names in STAND_INS.items() for name in names}


def data_globals() -> list[Any]:
    """The allow-list in torch.serialization.safe_globals' form: (object, "module.name") pairs."""
    named = {**data_callables(), **data_stand_ins()}
    return [(value, name) for name, value in named.items()]


def to_plain(obj: Any) -> Any:
    """omegaconf stand-ins -> the dicts, lists and values they hold; everything else as it is.

    Containers are rebuilt only where something inside changed (a state dict keeps its type
    and its `_metadata`). A node's parent is not followed: it is where the node came from.
    """
    name = qualified_name(obj)
    if name in (DICT_CONFIG, LIST_CONFIG) or name in NODES:
        state = getattr(obj, "state", None)
        state = state if isinstance(state, dict) else {}
        return to_plain(state.get("_val" if name in NODES else "_content"))
    if isinstance(obj, dict):
        items = {key: to_plain(value) for key, value in obj.items()}
        return obj if all(items[key] is value for key, value in obj.items()) else _rebuild(obj, items)
    if type(obj) in (list, tuple):
        values = [to_plain(value) for value in obj]
        return obj if all(a is b for a, b in zip(values, obj, strict=True)) else type(obj)(values)
    return obj


def _rebuild(obj: dict, items: dict) -> dict:
    if type(obj) is not collections.OrderedDict:
        return items
    rebuilt = collections.OrderedDict(items)
    if hasattr(obj, "_metadata"):
        rebuilt._metadata = obj._metadata  # a state dict's version info
    return rebuilt


__all__ = ["EnumValue", "data_callables", "data_globals", "numpy_globals", "to_plain"]

"""Inert stand-ins for classes a checkpoint names but we never import.

    cls = stand_in("omegaconf.dictconfig", "DictConfig")   # the same class object every time
    obj = cls.__new__(cls); obj.__setstate__(state)         # what pickle's NEWOBJ + BUILD do

A stand-in records the state pickle hands it and nothing else: no import of the real module,
no __init__, no __setstate__ of the real class. Calling one (pickle's REDUCE, how functions such
as `os.system` and enum members are pickled) is refused, so a file cannot run code through it.
"""

from __future__ import annotations

import pickle
from typing import Any


class RefusedCall(pickle.UnpicklingError):
    """The pickle asked to call something that is not on the allow-list."""


class _Inert(type):
    """Metaclass of stand-ins: creating one by a call (pickle's REDUCE) is refused."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise RefusedCall(f"the file calls {cls.__qualname__}(...); refused (no foreign code is run)")


class Foreign(metaclass=_Inert):
    """An object of a class we did not build: its pickled state, nothing else."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Foreign:  # pickle's NEWOBJ: no __init__ runs
        return object.__new__(cls)

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "state", state)

    def __reduce__(self) -> Any:  # never re-pickle a stand-in
        raise TypeError("stand-ins are not picklable")


_stand_ins: dict[str, type] = {}


def stand_in(module: str, name: str) -> type:
    """The one stand-in class for `module.name` (created on first use)."""
    qualified = f"{module}.{name}"
    if qualified not in _stand_ins:
        _stand_ins[qualified] = _Inert(name, (Foreign,), {"__qualname__": qualified, "__module__": module})
    return _stand_ins[qualified]


def qualified_name(obj: Any) -> str | None:
    """"omegaconf.dictconfig.DictConfig" for a stand-in object, None for anything else."""
    return type(obj).__qualname__ if isinstance(obj, Foreign) else None

"""Typed reads from parsed JSON, with errors that say which file and which key is wrong.

`Fields(document, file, "members[1]").integer("height")` either returns an int or raises
BundleError("…/bundle.json: members[1].height: expected an integer, got 'abc'").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mammo_batch.engine.bundle.errors import BundleError

MISSING = object()


class Fields:
    """One JSON object, the file it came from and where it sits in that file."""

    def __init__(self, data: Any, file: Path, where: str = "", _family: list[Fields] | None = None) -> None:
        self.file = file
        self.where = where
        if not isinstance(data, dict):
            raise self.error(f"expected an object, got {_show(data)}")
        self.data = data
        self._read: set[str] = set()
        self._family = [] if _family is None else _family  # every Fields object of one document
        self._family.append(self)

    def unknown_keys(self) -> list[str]:
        """Keys of this document that no reader asked for (a typo, or a field of another version)."""
        return sorted(f._path(key) for f in self._family for key in f.data if key not in f._read)

    def entries(self) -> dict:
        """All of this object's keys, each counted as read (a map such as file -> sha256)."""
        self._read.update(self.data)
        return self.data

    def free_form(self, key: str) -> dict:
        """An object whose keys are the writer's own (provenance, metrics): returned as it is."""
        value = self.raw(key, {})
        if not isinstance(value, dict):
            raise self.error(f"expected an object, got {_show(value)}", key)
        return value

    def error(self, problem: str, key: str | None = None) -> BundleError:
        location = self._path(key) if key else self.where
        return BundleError(f"{self.file}: {location + ': ' if location else ''}{problem}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = MISSING) -> Any:
        self._read.add(key)
        if key in self.data:
            return self.data[key]
        if default is MISSING:
            raise self.error("missing required field", key)
        return default

    def child(self, key: str, default: Any = MISSING) -> Fields:
        return Fields(self.raw(key, default), self.file, self._path(key), self._family)

    def children(self, key: str) -> list[Fields]:
        items = self.raw(key)
        if not isinstance(items, list):
            raise self.error(f"expected a list, got {_show(items)}", key)
        return [Fields(item, self.file, f"{self._path(key)}[{i}]", self._family) for i, item in enumerate(items)]

    def string(self, key: str, default: Any = MISSING, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(f"expected a non-empty string, got {_show(value)}", key)
        if choices and value not in choices:
            raise self.error(f"must be one of {', '.join(choices)}; got {value!r}", key)
        return value

    def optional_string(self, key: str) -> str | None:
        return None if self.raw(key, None) is None else self.string(key)

    def integer(self, key: str, default: Any = MISSING, minimum: int | None = None) -> int:
        value = self.raw(key, default)
        if not isinstance(value, int) or isinstance(value, bool):  # bool is an int in Python
            raise self.error(f"expected an integer, got {_show(value)}", key)
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum}, got {value}", key)
        return value

    def number(self, key: str, default: Any = MISSING) -> float:
        value = self.raw(key, default)
        if not is_number(value):
            raise self.error(f"expected a number, got {_show(value)}", key)
        return float(value)

    def boolean(self, key: str, default: Any = MISSING) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {_show(value)}", key)
        return value

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

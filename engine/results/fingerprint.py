"""A cheap fingerprint of a study's files, to skip unchanged studies on a rerun.

Only file metadata is read (path, size, mtime_ns), never content: fingerprinting a nightly backlog of
millions of files must cost a stat each, not a read. A file rewritten in place with the same size and
the same mtime is not noticed; that is the price (the same one rsync and make pay).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable


def study_fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 hex over the sorted (path, size, mtime_ns) of the files; a missing file adds "missing"."""
    entries = [_file_entry(path) for path in sorted({os.fspath(p) for p in paths})]
    # JSON keeps the encoding unambiguous whatever characters the paths hold.
    document = json.dumps(entries, separators=(",", ":"))
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def _file_entry(path: str) -> list[str | int]:
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return [path, "missing"]
    except OSError as error:  # e.g. permission denied: still a stable, distinct entry
        return [path, f"unreadable:{error.errno}"]
    return [path, stat.st_size, stat.st_mtime_ns]

"""Writing bundle.json: one format for `build` and the tests, so ids are reproducible."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mammo_batch.engine.bundle.model import BUNDLE_FILE


def write_bundle_json(bundle_dir: str | Path, document: dict) -> Path:
    """Write `document` as `bundle_dir`/bundle.json (atomically) and return that path.

    The bundle id hashes these bytes, so the format is fixed: 2-space indent, key order as
    given, UTF-8, one trailing newline. The document is not validated here: call
    load_bundle() afterwards (the build does), which also checks the artifacts' sha256.
    """
    directory = Path(bundle_dir)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    target = directory / BUNDLE_FILE
    # temp + rename: a reader never sees half a bundle.json. A plain open() (not mkstemp)
    # keeps the umask's permissions, so other users can read a shared model directory.
    temp = directory / f".{BUNDLE_FILE}.tmp"
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target

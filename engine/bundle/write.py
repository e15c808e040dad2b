"""Writing bundle.json: one byte format for every writer, so that ids are reproducible."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mammo_batch.engine.bundle.document import bundle_document
from mammo_batch.engine.bundle.load import load_bundle
from mammo_batch.engine.bundle.model import BUNDLE_FILE, Bundle


def write_bundle(bundle_dir: str | Path, bundle: Bundle) -> Bundle:
    """Serialise `bundle` (document.py) into `bundle_dir`, whose artifacts are already there, and
    load it back: the returned Bundle is validated, checksums included (BundleError if not)."""
    write_bundle_json(bundle_dir, bundle_document(bundle))
    return load_bundle(bundle_dir)


def write_bundle_json(bundle_dir: str | Path, document: dict) -> Path:
    """Write `document` as `bundle_dir`/bundle.json (atomically) and return that path.

    The bundle id hashes these bytes, so the format is fixed: 2-space indent, key order as
    given, UTF-8, one trailing newline. The document is not validated here (tests write
    broken ones on purpose); builders call write_bundle, which validates.
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

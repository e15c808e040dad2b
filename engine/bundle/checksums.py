"""sha256 of artifact files: computed when a bundle is written, checked when it is loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mammo_batch.engine.bundle.errors import BundleError

CHUNK = 1 << 20  # models are hundreds of MB: hash in chunks, never read a file whole


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, expected: str) -> None:
    """Raise BundleError unless the file's sha256 equals `expected`."""
    try:
        actual = sha256_file(path)
    except OSError as e:
        raise BundleError(f"{path}: cannot read: {e.strerror or e}") from None
    if actual != expected.lower():
        raise BundleError(
            f"{path}: checksum mismatch: bundle.json expects sha256 {expected[:12]}..., "
            f"the file has {actual[:12]}... (the file was changed or corrupted after the bundle was built)"
        )

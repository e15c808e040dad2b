"""bundle.json -> Bundle, checking everything docs/scoring.md ("Bundle") promises.

Order: the JSON structure first, then that the members agree on preprocessing, and last the
artifact checksums (the slow part: it reads every model file once). Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from mammo_batch.engine.bundle.checksums import verify_file
from mammo_batch.engine.bundle.document import bundle_from_document
from mammo_batch.engine.bundle.errors import BundleError
from mammo_batch.engine.bundle.fields import Fields
from mammo_batch.engine.bundle.model import BUNDLE_FILE, Bundle, Member

log = logging.getLogger(__name__)
# Fields that every member must share; sizes (input.height/width) may differ.
SHARED = ("input.dtype", "input.channels", "preprocess.window", "preprocess.crop", "preprocess.orientation",
          "preprocess.profile")


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate the bundle directory `path`; raise BundleError on any problem."""
    directory = Path(os.path.abspath(path))  # absolute for messages and logs; symlinks kept
    file = _bundle_file(directory)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise BundleError(f"{file}: cannot read: {e.strerror or e}") from None
    top = Fields(_parse_json(raw, file), file)
    bundle = bundle_from_document(top, directory, hashlib.sha256(raw).hexdigest())
    unknown = top.unknown_keys()
    if unknown:  # a typo (say "preprocesss") would otherwise fall back to a default without a word
        log.warning("%s: unknown key(s) ignored: %s", file, ", ".join(unknown))
    _check_shared_preprocessing(bundle.members, file)
    for member in bundle.members:
        _check_artifacts(member, directory)
    return bundle


def _bundle_file(directory: Path) -> Path:
    if not directory.exists():
        raise BundleError(f"{directory}: no such bundle directory")
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a directory (a bundle is a directory holding {BUNDLE_FILE})")
    file = directory / BUNDLE_FILE
    if not file.is_file():
        raise BundleError(f"{file}: missing: a bundle directory must hold {BUNDLE_FILE}")
    return file


def _parse_json(raw: bytes, file: Path) -> object:
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except UnicodeDecodeError:
        raise BundleError(f"{file}: not valid JSON: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{file}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:  # a duplicate key
        raise BundleError(f"{file}: not valid JSON: {e}") from None


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    # json silently keeps the last of two equal keys: a hand-edited bundle could hide a change.
    document = {}
    for key, value in pairs:
        if key in document:
            raise ValueError(f"duplicate key {key!r}")
        document[key] = value
    return document


def _check_shared_preprocessing(members: tuple[Member, ...], file: Path) -> None:
    first = members[0]
    problems = []
    for member in members[1:]:
        differences = [
            f"{field} ({_get(member, field)!r} vs {_get(first, field)!r})"
            for field in SHARED
            if _get(member, field) != _get(first, field)
        ]
        if differences:
            problems.append(f"{member.name!r} differs from {first.name!r} in {', '.join(differences)}")
    if problems:
        raise BundleError(
            f"{file}: members have mismatched preprocessing: {'; '.join(problems)}. Every member must "
            f"share input.dtype, input.channels and preprocess (only input sizes may differ)"
        )


def _get(member: Member, dotted: str) -> object:
    value: object = member
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _check_artifacts(member: Member, directory: Path) -> None:
    inside = directory.resolve()
    for name in member.artifacts.files():
        path = directory / name
        # A symlink (of the file or of a folder on its way) may lead out of the bundle: refuse it.
        if path.exists() and not path.resolve().is_relative_to(inside):
            raise BundleError(f"{path}: artifact of member {member.name!r} resolves to "
                              f"{path.resolve()}, outside the bundle directory {inside}")
        if not path.is_file():
            raise BundleError(f"{path}: missing artifact of member {member.name!r} (named in {BUNDLE_FILE})")
        verify_file(path, member.sha256[name])

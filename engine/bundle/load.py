"""bundle.json -> Bundle, checking everything docs/scoring.md ("Bundle") promises.

Order: the JSON structure first, then that the members agree on preprocessing, and last the
artifact checksums (the slow part: it reads every model file once). Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path, PurePosixPath

from mammo_batch.engine.bundle.checksums import verify_file
from mammo_batch.engine.bundle.document import ORIENTATION_BY_PROFILE
from mammo_batch.engine.bundle.errors import BundleError
from mammo_batch.engine.bundle.fields import Fields, is_number
from mammo_batch.engine.bundle.model import (
    BUNDLE_FILE,
    FORMAT_VERSION,
    Artifacts,
    Bf16Gate,
    Bundle,
    Member,
    MemberInput,
    Preprocess,
    TensorRTEngine,
)
from mammo_batch.engine.pixels.settings import DTYPES, FULL_SCALE
from mammo_batch.engine.pixels.voi import VOI_DICOM, VOI_MINMAX

NAME = re.compile(r"[A-Za-z0-9_.-]+")  # also safe in file names and Parquet column names
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# What the pixel path delivers for each input dtype (render.as_model_dtype).
VALUE_RANGES = {dtype: (0.0, float(top)) for dtype, top in FULL_SCALE.items()}
log = logging.getLogger(__name__)
WINDOWS = (VOI_DICOM, VOI_MINMAX)
ORIENTATIONS = ("chest_wall_left", "as_stored")
PROFILES = ORIENTATION_BY_PROFILE  # preprocessing profile -> the orientation it produces
ENSEMBLE_RULES = ("mean",)
BREAST_RULES = ("mean", "max")
STUDY_RULES = ("max", "mean", "max-image")
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
    _check_format_version(top)
    bundle = _bundle(top, directory, hashlib.sha256(raw).hexdigest())
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


def _check_format_version(top: Fields) -> None:
    version = top.raw("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not 1.0, not true
        raise top.error(f"unknown format_version {version!r}: this engine reads version {FORMAT_VERSION}")


def _bundle(top: Fields, directory: Path, digest: str) -> Bundle:
    members = tuple(_member(fields) for fields in top.children("members"))
    if not members:
        raise top.error("a bundle needs at least one member", "members")
    _check_unique_names(members, top)
    threshold = top.number("threshold")
    if not 0.0 <= threshold <= 1.0:
        raise top.error(f"must be a probability in [0, 1], got {threshold}", "threshold")
    aggregation = top.child("aggregation")
    return Bundle(
        path=directory,
        digest=digest,
        format_version=FORMAT_VERSION,
        name=_name(top, "name"),
        created=_timestamp(top, "created"),
        description=_description(top),
        members=members,
        ensemble=top.string("ensemble", choices=ENSEMBLE_RULES),
        aggregation={
            "breast": aggregation.string("breast", choices=BREAST_RULES),
            "study": aggregation.string("study", choices=STUDY_RULES),
        },
        threshold=threshold,
        provenance=top.free_form("provenance"),
    )


def _description(top: Fields) -> str:
    text = top.raw("description", None)
    if text is not None and not isinstance(text, str):
        raise top.error(f"expected a string, got {text!r}", "description")
    return text or ""


def _name(fields: Fields, key: str) -> str:
    name = fields.string(key)
    if not NAME.fullmatch(name):
        raise fields.error(f"{name!r} is not a valid name: use letters, digits, '_', '.', '-'", key)
    return name


def _timestamp(fields: Fields, key: str) -> str:
    text = fields.string(key)
    try:  # Python 3.10 does not read a trailing Z
        datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise fields.error(f"expected an ISO 8601 timestamp, got {text!r}", key) from None
    return text


def _check_unique_names(members: tuple[Member, ...], top: Fields) -> None:
    seen = set()
    for member in members:
        if member.name in seen:
            raise top.error(f"duplicate member name {member.name!r}", "members")
        seen.add(member.name)


def _member(fields: Fields) -> Member:
    name = _name(fields, "name")
    artifacts = _artifacts(fields.child("artifacts"))
    return Member(
        name=name,
        fold=None if fields.raw("fold", None) is None else fields.integer("fold", minimum=0),
        arch=fields.string("arch"),
        input=_input(fields.child("input")),
        preprocess=_preprocess(fields.child("preprocess")),
        artifacts=artifacts,
        sha256=_checksums(fields.child("sha256"), artifacts),
        metrics=_metrics(fields.child("metrics", {})),
        bf16_gate=None if fields.raw("bf16_gate", None) is None else _bf16_gate(fields.child("bf16_gate")),
    )


def _bf16_gate(fields: Fields) -> Bf16Gate:
    passed = fields.boolean("passed")
    auc_change = None if fields.raw("study_auc_change", None) is None else fields.number("study_auc_change")
    if passed and auc_change is None:
        raise fields.error("passed is true but study_auc_change is null: the gate needs both numbers")
    return Bf16Gate(
        passed=passed,
        views=fields.integer("views", minimum=1),
        studies=fields.integer("studies", minimum=0),
        max_prob_diff=fields.number("max_prob_diff"),
        study_auc_change=auc_change,
        max_prob_diff_tolerance=fields.number("max_prob_diff_tolerance"),
        study_auc_change_tolerance=fields.number("study_auc_change_tolerance"),
    )


def _input(fields: Fields) -> MemberInput:
    dtype = fields.string("dtype", choices=DTYPES)
    channels = fields.integer("channels")
    if channels != 1:
        raise fields.error(f"must be 1 (the pixel path makes one grayscale channel), got {channels}",
                           "channels")
    value_range = fields.raw("value_range")
    expected = VALUE_RANGES[dtype]
    if not (isinstance(value_range, list) and all(is_number(v) for v in value_range)
            and tuple(float(v) for v in value_range) == expected):
        raise fields.error(f"the pixel path feeds {dtype} in [{expected[0]:g}, {expected[1]:g}]; "
                           f"got {value_range!r}", "value_range")
    return MemberInput(
        height=fields.integer("height", minimum=1),
        width=fields.integer("width", minimum=1),
        channels=channels,
        dtype=dtype,
        value_range=expected,
    )


def _preprocess(fields: Fields) -> Preprocess:
    profile = fields.string("profile", "mammo-batch", choices=tuple(PROFILES))
    orientation = fields.string("orientation", choices=ORIENTATIONS)
    if orientation != PROFILES[profile]:
        raise fields.error(f"the {profile} profile produces {PROFILES[profile]!r}, got {orientation!r}",
                           "orientation")
    return Preprocess(
        window=fields.string("window", choices=WINDOWS),
        crop=fields.boolean("crop"),
        orientation=orientation,
        profile=profile,
    )


def _artifacts(fields: Fields) -> Artifacts:
    torch = fields.optional_string("torch")
    fp16 = fields.optional_string("onnx_fp16")
    engines = fields.children("tensorrt") if fields.raw("tensorrt", None) is not None else []
    return Artifacts(
        onnx=_relative_file(fields, "onnx"),
        torch=None if torch is None else _relative_file(fields, "torch"),
        tensorrt=tuple(_tensorrt(engine) for engine in engines),
        onnx_fp16=None if fp16 is None else _relative_file(fields, "onnx_fp16"),
    )


def _tensorrt(fields: Fields) -> TensorRTEngine:
    return TensorRTEngine(
        file=_relative_file(fields, "file"),
        compute_capability=fields.string("compute_capability"),
        tensorrt_version=fields.string("tensorrt_version"),
        precision=fields.string("precision"),
        gpu_name=fields.optional_string("gpu_name") or "",
        batch_sizes=tuple(int(b) for b in fields.raw("batch_sizes", ())),
    )


def _relative_file(fields: Fields, key: str) -> str:
    # Artifacts live inside the bundle: a path out of it would make the bundle not self-contained.
    name = fields.string(key)
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name:
        raise fields.error(f"{name!r} must be a relative path inside the bundle directory", key)
    return name


def _checksums(fields: Fields, artifacts: Artifacts) -> dict[str, str]:
    files = artifacts.files()
    for file in files:
        if not fields.has(file):
            raise fields.error(f"no checksum for artifact {file!r}")
        if not SHA256.fullmatch(fields.string(file)):
            raise fields.error(f"expected 64 hex digits, got {fields.raw(file)!r}", file)
    extra = sorted(set(fields.entries()) - set(files))
    if extra:
        raise fields.error(f"names {', '.join(map(repr, extra))}, not artifacts of this member")
    return {file: fields.data[file].lower() for file in files}


def _metrics(fields: Fields) -> dict[str, float]:
    return {key: fields.number(key) for key in fields.entries()}


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

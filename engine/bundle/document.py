"""bundle.json <-> the bundle dataclasses (model.py): the one module that spells its keys.

Reading (`bundle_from_document`) checks structure and values with located errors; files and
checksums are load.py's. Writing (`bundle_document`) is its inverse: every bundle, whether
`build`, `import-seed`, `build-engines`, `bench` or a test helper writes it, is a Bundle
serialised here. `new_member` makes a member whose artifacts are already in a directory.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from mammo_batch.engine.bundle.checksums import sha256_file
from mammo_batch.engine.bundle.fields import Fields, is_number
from mammo_batch.engine.bundle.model import (
    FORMAT_VERSION,
    Artifacts,
    Bf16Gate,
    Bundle,
    Fp16Gate,
    Member,
    MemberInput,
    Preprocess,
    TensorRTEngine,
)
from mammo_batch.engine.pixels.settings import DTYPES, FULL_SCALE
from mammo_batch.engine.pixels.voi import VOI_DICOM, VOI_MINMAX

# What each preprocessing profile produces: the pixel path puts the chest wall on the left; the seed's
# recipe leaves views as stored.
ORIENTATION_BY_PROFILE = {"mammo-batch": "chest_wall_left", "seed": "as_stored"}
NAME = re.compile(r"[A-Za-z0-9_.-]+")  # also safe in file names and Parquet column names
SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# What the pixel path delivers for each input dtype (render.as_model_dtype).
VALUE_RANGES = {dtype: (0.0, float(top)) for dtype, top in FULL_SCALE.items()}
WINDOWS = (VOI_DICOM, VOI_MINMAX)
ORIENTATIONS = ("chest_wall_left", "as_stored")
PROFILES = ORIENTATION_BY_PROFILE  # preprocessing profile -> the orientation it produces
ENSEMBLE_RULES = ("mean",)
BREAST_RULES = ("mean", "max")
STUDY_RULES = ("max", "mean", "max-image")


# ---- writing ---------------------------------------------------------------------------------

def new_member(directory: str | Path, *, name: str, fold: int | None, arch: str, height: int, width: int,
               onnx: str, torch: str | None = None, onnx_fp16: str | None = None, dtype: str = "uint8",
               window: str = "dicom", crop: bool = True, profile: str = "mammo-batch",
               metrics: dict[str, float] | None = None, bf16_gate: Bf16Gate | None = None,
               fp16_gate: Fp16Gate | None = None) -> Member:
    """A member whose artifact files are in `directory` (paths relative to it); their sha256 is
    computed here. Values are not validated: write_bundle loads the result back, which does."""
    artifacts = Artifacts(onnx=onnx, torch=torch, onnx_fp16=onnx_fp16)
    return Member(
        name=name, fold=fold, arch=arch,
        input=MemberInput(height, width, 1, dtype, VALUE_RANGES.get(dtype, (0.0, 1.0))),
        preprocess=Preprocess(window, crop, ORIENTATION_BY_PROFILE[profile], profile),
        artifacts=artifacts,
        sha256={file: sha256_file(Path(directory) / file) for file in artifacts.files()},
        metrics=dict(metrics or {}), bf16_gate=bf16_gate, fp16_gate=fp16_gate)


def with_checksums(member: Member, directory: str | Path) -> Member:
    """`member` with the sha256 of each of its artifacts as they are in `directory` now."""
    files = member.artifacts.files()
    return dataclasses.replace(member, sha256={file: sha256_file(Path(directory) / file) for file in files})


def member_document(member: Member) -> dict[str, Any]:
    """One member's bundle.json entry."""
    artifacts = member.artifacts
    document: dict[str, Any] = {
        "name": member.name, "fold": member.fold, "arch": member.arch,
        "input": {"height": member.input.height, "width": member.input.width, "channels": member.input.channels,
                  "dtype": member.input.dtype, "value_range": [_plain(v) for v in member.input.value_range]},
        "preprocess": {"window": member.preprocess.window, "crop": member.preprocess.crop,
                       "orientation": member.preprocess.orientation, "profile": member.preprocess.profile},
        "artifacts": {"onnx": artifacts.onnx, "torch": artifacts.torch,
                      **({"onnx_fp16": artifacts.onnx_fp16} if artifacts.onnx_fp16 else {}),
                      "tensorrt": [_engine_document(engine) for engine in artifacts.tensorrt]},
        "sha256": dict(member.sha256),
        "metrics": dict(member.metrics),
    }
    for key, gate in (("bf16_gate", member.bf16_gate), ("fp16_gate", member.fp16_gate)):
        if gate is not None:
            entry = dataclasses.asdict(gate)
            if not entry["reason"]:
                del entry["reason"]
            document[key] = entry
    return document


def bundle_document(bundle: Bundle) -> dict[str, Any]:
    """The whole bundle.json document (the bundle id hashes its bytes: keep `created` fixed to
    reproduce an id)."""
    return {
        "format_version": bundle.format_version, "name": bundle.name, "created": bundle.created,
        "description": bundle.description, "members": [member_document(m) for m in bundle.members],
        "ensemble": bundle.ensemble, "aggregation": dict(bundle.aggregation), "threshold": bundle.threshold,
        "provenance": bundle.provenance,
    }


def _engine_document(engine: TensorRTEngine) -> dict[str, Any]:
    document = {"file": engine.file, "compute_capability": engine.compute_capability,
                "tensorrt_version": engine.tensorrt_version, "precision": engine.precision}
    if engine.gpu_name:
        document["gpu_name"] = engine.gpu_name
    if engine.batch_sizes:
        document["batch_sizes"] = list(engine.batch_sizes)
    return document


def _plain(value: float) -> float | int:
    """255.0 -> 255: the value range reads as the pixel path's integers."""
    return int(value) if float(value).is_integer() else value


# ---- reading ---------------------------------------------------------------------------------

def _check_format_version(top: Fields) -> None:
    version = top.raw("format_version")
    if type(version) is not int or version != FORMAT_VERSION:  # not 1.0, not true
        raise top.error(f"unknown format_version {version!r}: this engine reads version {FORMAT_VERSION}")


def bundle_from_document(top: Fields, directory: Path, digest: str) -> Bundle:
    """The Bundle a parsed bundle.json describes (structure and values checked; files not)."""
    _check_format_version(top)
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
        fp16_gate=None if fields.raw("fp16_gate", None) is None else _fp16_gate(fields.child("fp16_gate")),
    )


def _bf16_gate(fields: Fields) -> Bf16Gate:
    passed = fields.boolean("passed")
    max_diff = _optional_number(fields, "max_prob_diff")
    auc_change = _optional_number(fields, "study_auc_change")
    if passed and (auc_change is None or max_diff is None):
        raise fields.error("passed is true but max_prob_diff or study_auc_change is null: the gate needs both")
    return Bf16Gate(
        passed=passed,
        views=fields.integer("views", minimum=1 if passed else 0),
        studies=fields.integer("studies", minimum=0),
        max_prob_diff=max_diff,
        study_auc_change=auc_change,
        max_prob_diff_tolerance=fields.number("max_prob_diff_tolerance"),
        study_auc_change_tolerance=fields.number("study_auc_change_tolerance"),
        reason=_reason(fields),
    )


def _fp16_gate(fields: Fields) -> Fp16Gate:
    passed = fields.boolean("passed")
    max_diff = _optional_number(fields, "max_prob_diff")
    if passed and max_diff is None:
        raise fields.error("passed is true but max_prob_diff is null")
    return Fp16Gate(passed=passed, views=fields.integer("views", minimum=1 if passed else 0),
                    max_prob_diff=max_diff, tolerance=fields.number("tolerance"), reason=_reason(fields))


def _optional_number(fields: Fields, key: str) -> float | None:
    return None if fields.raw(key, None) is None else fields.number(key)


def _reason(fields: Fields) -> str:
    reason = fields.raw("reason", "")
    if not isinstance(reason, str):
        raise fields.error(f"expected a string, got {reason!r}", "reason")
    return reason


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

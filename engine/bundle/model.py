"""What a loaded bundle is: frozen dataclasses whose fields mirror the keys of bundle.json.

Field names equal the JSON keys on purpose: `dataclasses.asdict(member)` gives back the
member's JSON (`bundle show --json` relies on it). Parsing and validation live in load.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mammo_batch.engine.pixels import PreprocessSettings

FORMAT_VERSION = 1
BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class MemberInput:
    """The model's input tensor: (batch, channels, height, width) of `dtype`."""

    height: int
    width: int
    channels: int  # always 1: the pixel path makes one grayscale channel
    dtype: str  # uint8 | uint16 | float32, the pixel path's output dtype
    value_range: tuple[float, float]  # the pixel path's range for that dtype


@dataclass(frozen=True)
class Preprocess:
    """How views are prepared for the member; the same for every member of a bundle."""

    window: str  # dicom | minmax
    crop: bool
    orientation: str  # chest_wall_left (mammo-batch profile) | as_stored (seed profile: no flip)
    # mammo-batch: the engine's pixel path; seed: engine/pixels/seed_profile.py (window and
    # crop are then not used), for models trained on the seed's pixels
    profile: str = "mammo-batch"


@dataclass(frozen=True)
class TensorRTEngine:
    """A serialized TensorRT engine: valid only for one GPU architecture and TensorRT version."""

    file: str
    compute_capability: str  # e.g. "9.0" for an H100
    tensorrt_version: str  # e.g. "10.3.0"
    precision: str  # e.g. "fp16"
    gpu_name: str = ""  # e.g. "NVIDIA H100 80GB HBM3" (informative; matching uses the two fields above)
    batch_sizes: tuple[int, ...] = ()  # the optimization profile's (min, opt, max) batch


@dataclass(frozen=True)
class Artifacts:
    """Files of one member, relative to the bundle directory. ONNX is always there."""

    onnx: str
    torch: str | None = None  # a torch.export archive (.pt2)
    tensorrt: tuple[TensorRTEngine, ...] = ()
    onnx_fp16: str | None = None  # FP16 ONNX (FP32 islands): what TensorRT engines are built from

    def files(self) -> list[str]:
        """Every artifact file named, in a stable order."""
        names = [self.onnx] + ([self.torch] if self.torch else []) + ([self.onnx_fp16] if self.onnx_fp16 else [])
        return names + [engine.file for engine in self.tensorrt]


@dataclass(frozen=True)
class Bf16Gate:
    """The build's check that the member may run in bf16 (docs/scoring.md, "bf16 gate").

    On real held-out views, bf16 probabilities vs fp32: the largest absolute difference and
    the change in study-level AUC (None when the views lacked labels of both classes, and
    then the gate is not passed). `passed` is the build's verdict against the tolerances.
    A gate the build skipped (a CPU without bf16 instructions: the runtime cannot use it
    there) has views 0, no numbers and the reason; it is not passed.
    """

    passed: bool
    views: int
    studies: int
    max_prob_diff: float | None  # None: not measured (skipped), or the bf16 output held NaN
    study_auc_change: float | None
    max_prob_diff_tolerance: float
    study_auc_change_tolerance: float
    reason: str = ""  # why it did not pass, or why it was skipped ("" when passed)


@dataclass(frozen=True)
class Fp16Gate:
    """The build's check of the FP16 ONNX (what TensorRT engines are built from) against the
    FP32 model on real views. A copy that misses it is kept, recorded as not passed: the FP16
    runtimes refuse that member (or fall back to FP32) and say why."""

    passed: bool
    views: int
    max_prob_diff: float | None  # None: the FP16 output held NaN
    tolerance: float
    reason: str = ""  # why it did not pass ("" when passed)


@dataclass(frozen=True)
class Member:
    """One model of the ensemble (typically one cross-validation fold)."""

    name: str
    fold: int | None
    arch: str
    input: MemberInput
    preprocess: Preprocess
    artifacts: Artifacts
    # Dicts are left out of the hash so that members (and bundles) can be dict keys.
    sha256: dict[str, str] = field(hash=False)  # artifact file -> hex digest, checked at load
    metrics: dict[str, float] = field(default_factory=dict, hash=False)
    bf16_gate: Bf16Gate | None = None  # absent: never checked, so never run in bf16 by auto
    fp16_gate: Fp16Gate | None = None  # absent: no FP16 ONNX, or a bundle older than the gate

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.input.height, self.input.width


@dataclass(frozen=True, kw_only=True)
class Bundle:
    """A model bundle. Loaded (load_bundle): validated, every artifact exists and matches its
    checksum. Being built: `path` and `digest` are unset until write_bundle has written it."""

    path: Path = Path()  # the bundle directory, absolute
    digest: str = ""  # sha256 hex of the bundle.json bytes
    format_version: int = FORMAT_VERSION
    name: str
    created: str
    description: str = ""
    members: tuple[Member, ...]
    ensemble: str = "mean"  # mean: a view's probability is the mean over members
    # {"breast": mean|max, "study": max|mean|max-image}
    aggregation: dict[str, str] = field(default_factory=lambda: {"breast": "mean", "study": "max"}, hash=False)
    threshold: float  # recall = study score >= threshold
    provenance: dict = field(default_factory=dict, hash=False)

    @property
    def id(self) -> str:
        """The bundle id, `<name>@<12 hex of sha256(bundle.json)>`: any change to bundle.json
        (an artifact checksum included) gives a new id, so scores record what produced them."""
        return f"{self.name}@{self.digest[:12]}"

    @property
    def settings(self) -> PreprocessSettings:
        """The pixel path's settings, shared by all members (load checked that they agree)."""
        first = self.members[0]
        return PreprocessSettings(window=first.preprocess.window, crop=first.preprocess.crop,
                                  dtype=first.input.dtype, profile=first.preprocess.profile)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """Distinct member input sizes (height, width), in member order: one resize each."""
        return list(dict.fromkeys(m.input_size for m in self.members))

    def member(self, name: str) -> Member:
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"bundle {self.name!r} has no member {name!r}")

    def artifact_path(self, file: str) -> Path:
        """Absolute path of an artifact named in bundle.json."""
        return self.path / file

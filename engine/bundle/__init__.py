"""Model bundles: a directory with bundle.json and the members' artifacts (docs/scoring.md).

    bundle = load_bundle("models/demo")   # validates everything, checksums included
    bundle.id, bundle.settings, bundle.sizes, bundle.members[0].input_size

Files: model.py (the dataclasses), document.py (bundle.json <-> dataclasses: its keys are spelled
there only), load.py (a directory -> a validated Bundle), fields.py (typed JSON reads with located
errors), checksums.py (sha256), write.py (Bundle -> bundle.json), errors.py.
"""

from mammo_batch.engine.bundle.checksums import sha256_file
from mammo_batch.engine.bundle.document import bundle_document, member_document, new_member, with_checksums
from mammo_batch.engine.bundle.errors import BundleError
from mammo_batch.engine.bundle.load import load_bundle
from mammo_batch.engine.bundle.model import (
    BUNDLE_FILE,
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
from mammo_batch.engine.bundle.write import write_bundle, write_bundle_json

__all__ = [
    "BUNDLE_FILE",
    "FORMAT_VERSION",
    "Artifacts",
    "Bf16Gate",
    "Bundle",
    "BundleError",
    "Fp16Gate",
    "Member",
    "MemberInput",
    "Preprocess",
    "TensorRTEngine",
    "bundle_document",
    "load_bundle",
    "member_document",
    "new_member",
    "sha256_file",
    "with_checksums",
    "write_bundle",
    "write_bundle_json",
]

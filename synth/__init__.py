"""Synthetic screening mammography studies as real DICOM files (``mammo-batch synth``).

Deterministic, realistic enough to exercise every branch of the pixel path: vendor-like
variants (photometric, bit depth, transfer syntax, VOI, orientation, tag placement),
awkward study shapes (one breast, repeats, extra views, two studies per patient), two
folder layouts, and planted lesions with SPR-style labels.

    phantom.py       the anatomy image (canonical: chest wall left, MONOCHROME2 sense)
    lesions.py       masses and calcification clusters planted into it
    views.py         view codes (CID 4014) and the orientation convention
    variants.py      vendor-like variants and the supported transfer syntaxes
    dicom_writer.py  one image -> one DICOM dataset in a variant's encoding
    plan.py          which studies/views/labels/layouts to write, all drawn from the seed
    studies.py       rendering the plan to disk, labels.csv and manifest.csv
"""

from mammo_batch.synth.dicom_writer import (
    ViewIds,
    make_view_dataset,
    tissue_window,
    write_dataset,
)
from mammo_batch.synth.lesions import KINDS as LESION_KINDS
from mammo_batch.synth.lesions import Lesion, draw_lesion
from mammo_batch.synth.phantom import BreastParams, phantom_view
from mammo_batch.synth.plan import LAYOUTS, StudyPlan, ViewPlan, plan_studies
from mammo_batch.synth.studies import (
    DEFAULT_SIZE,
    LABEL_COLUMNS,
    MANIFEST_COLUMNS,
    SynthSummary,
    chest_wall_side,
    relative_path,
    write_studies,
)
from mammo_batch.synth.variants import (
    PROFILES,
    TRANSFER_SYNTAXES,
    VARIANTS,
    Variant,
    get_variant,
    resolve_transfer_syntax,
)
from mammo_batch.synth.views import (
    VIEW_CODES,
    conventional_chest_wall_side,
    patient_orientation,
)

__all__ = [
    "DEFAULT_SIZE",
    "LABEL_COLUMNS",
    "LAYOUTS",
    "LESION_KINDS",
    "MANIFEST_COLUMNS",
    "PROFILES",
    "TRANSFER_SYNTAXES",
    "VARIANTS",
    "VIEW_CODES",
    "BreastParams",
    "Lesion",
    "StudyPlan",
    "SynthSummary",
    "Variant",
    "ViewIds",
    "ViewPlan",
    "chest_wall_side",
    "conventional_chest_wall_side",
    "draw_lesion",
    "get_variant",
    "make_view_dataset",
    "patient_orientation",
    "phantom_view",
    "plan_studies",
    "relative_path",
    "resolve_transfer_syntax",
    "tissue_window",
    "write_dataset",
    "write_studies",
]

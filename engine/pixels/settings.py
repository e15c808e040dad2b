"""What a bundle says about preparing its views (bundle.json `preprocess` and the input dtype)."""

from __future__ import annotations

from dataclasses import dataclass

from mammo_batch.engine.pixels import voi

# Model input dtypes and the value that stands for full white in each (bundle value_range).
FULL_SCALE = {"uint8": 255, "uint16": 65535, "float32": 1.0}
DTYPES = tuple(FULL_SCALE)
PROFILES = ("mammo-batch", "seed")  # the engine's pixel path | the seed's recipe (seed_profile.py)


@dataclass(frozen=True)
class PreprocessSettings:
    """How a bundle member wants its views prepared (bundle.json `preprocess`)."""

    window: str = voi.VOI_DICOM  # voi.VOI_DICOM | voi.VOI_MINMAX
    crop: bool = True
    dtype: str = "uint8"  # model input: uint8 0..255, uint16 0..65535 or float32 0..1
    profile: str = "mammo-batch"  # "seed": the seed's recipe; window and crop are then its own

    def __post_init__(self) -> None:
        if self.window not in (voi.VOI_DICOM, voi.VOI_MINMAX):
            raise ValueError(f"window must be 'dicom' or 'minmax', not {self.window!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {self.profile!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, not {self.dtype!r}")

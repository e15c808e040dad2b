"""Which side of the image the chest wall is on, from the tags and from the image.

The pixel path puts the chest wall on the LEFT edge of every model input (the nipple
points right), whatever the vendor, laterality or flip.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom import Dataset

from mammo_batch.engine.dicom.vocabulary import laterality_of, multi_values
from mammo_batch.engine.pixels.mask import BreastMask

LEFT, RIGHT = "left", "right"
# The image decides when the breast covers this much more of one edge band than the other.
IMAGE_MIN_COVER = 0.15
IMAGE_MIN_RATIO = 2.0


@dataclass(frozen=True)
class Orientation:
    chest_wall: str  # LEFT | RIGHT, in the stored pixels
    source: str  # "image", "tags", "image-overrode-tags", "default"


def side_from_tags(ds: Dataset) -> str | None:
    """PatientOrientation's row direction; else the display convention for the laterality.

    Row direction "A" means moving right goes toward the nipple: chest wall on the left.
    Without it, a right breast is conventionally stored facing left (chest wall right),
    unless FieldOfViewHorizontalFlip says the field of view was flipped.
    """
    orientation = multi_values(ds, "PatientOrientation")
    if orientation:
        row = str(orientation[0]).upper()[:1]
        if row in ("A", "P"):
            return LEFT if row == "A" else RIGHT
    laterality = laterality_of(ds)
    if not laterality:
        return None
    side = RIGHT if laterality == "R" else LEFT
    if str(ds.get("FieldOfViewHorizontalFlip", "")).upper() == "YES":
        side = LEFT if side == RIGHT else RIGHT
    return side


def side_from_image(breast: BreastMask) -> str | None:
    """The edge the breast covers clearly more of, or None when the image is ambiguous."""
    left, right = breast.touches_left, breast.touches_right
    if max(left, right) < IMAGE_MIN_COVER:
        return None
    if left >= IMAGE_MIN_RATIO * right:
        return LEFT
    if right >= IMAGE_MIN_RATIO * left:
        return RIGHT
    return None


def decide(ds: Dataset, breast: BreastMask) -> Orientation:
    """The image wins when it is clear (tags are sometimes missing or wrong); else the tags."""
    tags, image = side_from_tags(ds), side_from_image(breast)
    if image is not None:
        source = "image" if tags in (None, image) else "image-overrode-tags"
        return Orientation(image, source)
    if tags is not None:
        return Orientation(tags, "tags")
    return Orientation(LEFT, "default")

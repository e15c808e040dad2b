"""View vocabulary and orientation conventions shared by the phantom and the DICOM writer.

View codes: DICOM CID 4014 "View for Mammography", SNOMED CT (scheme "SCT").
"""

from __future__ import annotations

# view -> (SNOMED CT code value, code meaning)
VIEW_CODES: dict[str, tuple[str, str]] = {
    "CC": ("399162004", "cranio-caudal"),
    "MLO": ("399368009", "medio-lateral oblique"),
    "ML": ("399260004", "medio-lateral"),
    "XCCL": ("399192008", "cranio-caudal exaggerated laterally"),
}

# Views taken from the side: the pectoral muscle shows and the breast reaches the top edge.
OBLIQUE_VIEWS = frozenset({"MLO", "ML", "LM", "LMO"})

LEFT, RIGHT = "left", "right"


def conventional_chest_wall_side(laterality: str) -> str:
    """Usual display convention: a right breast faces left (chest wall on the RIGHT edge),
    a left breast faces right (chest wall on the LEFT edge)."""
    return RIGHT if laterality.upper() == "R" else LEFT


def patient_orientation(laterality: str, view: str, chest_wall_side: str) -> list[str]:
    """PatientOrientation as [row direction, column direction], telling the truth.

    Row direction: "A" when moving right goes toward the nipple (chest wall LEFT), "P"
    when the chest wall is on the RIGHT. Column direction: "F" for MLO-type views; for
    CC-type views "L" for a right breast and "R" for a left breast (a horizontal flip
    does not change it).
    """
    row = "A" if chest_wall_side == LEFT else "P"
    cc_column = "L" if laterality.upper() == "R" else "R"
    return [row, "F" if view.upper() in OBLIQUE_VIEWS else cc_column]

"""Laterality and view vocabulary: DICOM tags and codes -> "L"/"R" and "CC"/"MLO"/...

View codes are DICOM CID 4014 (View for Mammography), in SNOMED CT ("SCT") and the
older SNOMED RT ("SRT") spellings; modifiers from CID 4015.
"""

from __future__ import annotations

from pydicom import Dataset

VIEW_BY_CODE = {
    "399162004": "CC", "R-10242": "CC",
    "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML",
    "399352003": "LM", "R-10228": "LM",
    "399099002": "LMO", "R-10230": "LMO",
    "399192008": "XCCL", "R-1024A": "XCCL", "Y-X1770": "XCCL",
    "399101009": "XCCM", "R-1024B": "XCCM", "Y-X1771": "XCCM",
    "399196006": "FB", "R-10244": "FB",
    "399188001": "SIO", "R-102D0": "SIO",
    "441555000": "ISO", "R-40AAA": "ISO",
}

VIEW_BY_MEANING = {
    "cranio-caudal": "CC",
    "medio-lateral oblique": "MLO",
    "medio-lateral": "ML",
    "latero-medial": "LM",
    "latero-medial oblique": "LMO",
    "cranio-caudal exaggerated laterally": "XCCL",
    "cranio-caudal exaggerated medially": "XCCM",
    "caudo-cranial (from below)": "FB",
    "superolateral to inferomedial oblique": "SIO",
    "inferomedial to superolateral oblique": "ISO",
}

# Modifiers that change what the model sees enough to be part of the view name.
MODIFIER_SUFFIX_BY_CODE = {"399209000": "ID", "R-102D5": "ID"}  # implant displaced

LATERALITY_VALUES = {"L": "L", "R": "R"}  # "B" (both) and "U" (unpaired) are not one breast


def multi_values(ds: Dataset, keyword: str) -> list[str]:
    """A possibly multi-valued string element as a list (a single value is not iterated by char)."""
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value.strip()]
    return [str(v).strip() for v in value]


def laterality_of(ds: Dataset) -> str:
    """ImageLaterality, else Laterality, else FrameLaterality of the functional groups."""
    for keyword in ("ImageLaterality", "Laterality"):
        value = str(ds.get(keyword, "") or "").strip().upper()
        if value in LATERALITY_VALUES:
            return LATERALITY_VALUES[value]
    for group_seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(group_seq, [])[:1]:
            for anatomy in group.get("FrameAnatomySequence", []):
                value = str(anatomy.get("FrameLaterality", "") or "").strip().upper()
                if value in LATERALITY_VALUES:
                    return LATERALITY_VALUES[value]
    return ""


def view_of(ds: Dataset) -> str:
    """ViewPosition, else the View Code Sequence; implant-displaced views get an "ID" suffix."""
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    codes = list(ds.get("ViewCodeSequence", []))
    if not view and codes:
        view = _view_from_code(codes[0])
    if not view:
        view = _view_from_orientation(ds)
    if view and codes and not view.endswith("ID"):
        for modifier in codes[0].get("ViewModifierCodeSequence", []):
            view += MODIFIER_SUFFIX_BY_CODE.get(str(modifier.get("CodeValue", "")), "")
    return view


def _view_from_code(code: Dataset) -> str:
    value = str(code.get("CodeValue", "") or "").strip()
    if value in VIEW_BY_CODE:
        return VIEW_BY_CODE[value]
    meaning = str(code.get("CodeMeaning", "") or "").strip().lower()
    return VIEW_BY_MEANING.get(meaning, "")


def _view_from_orientation(ds: Dataset) -> str:
    """Some digitised-film exports (CBIS-DDSM) put the view name in PatientOrientation."""
    values = [v.upper() for v in multi_values(ds, "PatientOrientation")]
    known = set(VIEW_BY_CODE.values())
    return next((v for v in values if v in known), "")

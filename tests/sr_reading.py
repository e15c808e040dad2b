"""Reading our SR files back, independently of the writer: a plain walk of the content tree (pydicom)."""

from __future__ import annotations

from pydicom.dataset import Dataset


def measurement_groups(sr: Dataset) -> dict[str, dict]:
    """Tracking identifier -> {concept meaning: value(s)} of each Measurement Group in the SR.

    NUM items map to a float (a list when repeated), CODE items to the code meaning; IMAGE items are
    collected under "images" (referenced SOPInstanceUIDs), and a NUM inferred from one image also
    under "by image" ({SOPInstanceUID: value}).
    """
    groups: dict[str, dict] = {}
    for container in _children(sr):
        if _meaning(container) != "Imaging Measurements":
            continue
        for group in _children(container):
            items: dict = {"images": [], "by image": {}}
            for item in _children(group):
                _collect(item, items)
            groups[items.pop("Tracking Identifier")] = items
    return groups


def library_images(sr: Dataset) -> set[str]:
    images: set[str] = set()
    for container in _children(sr):
        if _meaning(container) == "Image Library":
            for group in _children(container):
                images |= {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _children(group)}
    return images


def _collect(item: Dataset, items: dict) -> None:
    kind, name = item.ValueType, _meaning(item)
    if kind == "NUM":
        value = float(item.MeasuredValueSequence[0].NumericValue)
        for image in (i for i in _children(item) if i.ValueType == "IMAGE"):
            items["by image"][image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID] = value
        if name in items:
            items[name] = [*(items[name] if isinstance(items[name], list) else [items[name]]), value]
        else:
            items[name] = value
    elif kind == "CODE":
        items[name] = item.ConceptCodeSequence[0].CodeMeaning
    elif kind in ("TEXT", "UIDREF") and name not in items:
        items[name] = item.get("TextValue", item.get("UID"))
    elif kind == "IMAGE":
        items["images"].append(item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)


def _children(item: Dataset) -> list[Dataset]:
    return list(item.get("ContentSequence", []))


def _meaning(item: Dataset) -> str:
    return item.ConceptNameCodeSequence[0].CodeMeaning

"""Small real DICOM mammograms with chosen identifiers, for discovery and grouping tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from mammo_batch.synth import make_view_dataset, phantom_view


def write_view(path: Path, patient: str, accession: str, study_uid: str, lat: str = "L",
               view: str = "CC", sop_uid: str = "", **attributes) -> Path:
    """A 96x80 For-Presentation MG view; a blank `accession` or `study_uid` is written empty."""
    image = phantom_view(np.random.default_rng(len(path.name)), (96, 80), lat, view)
    ds = make_view_dataset(image, "hologic", lat, view, patient_id=patient,
                           accession_number=accession or "X", study_instance_uid=study_uid or "1.2.3")
    ds.AccessionNumber, ds.StudyInstanceUID = accession, study_uid
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_uid or pydicom.uid.generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path

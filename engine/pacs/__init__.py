"""Around the engine, the PACS: pull studies in over DICOMweb, push results out as DICOM SR.

Folders stay the engine's interface (docs/pacs.md):

    credentials.py  HTTP basic / bearer credentials from the environment only (never logged)
    dicomweb.py     one DICOMweb client for pull and push (dicomweb-client over a requests session)
    pull.py         QIDO-RS: MG studies in a date window; WADO-RS: their instances into a folder
    sr_content.py   one study's results -> one TID 1500 Comprehensive 3D SR (highdicom)
    sr.py           write_srs: finished outputs -> one SR per changed study, superseding the last one
    push.py         SR files -> a PACS: STOW-RS, or DIMSE C-STORE (pynetdicom)
"""

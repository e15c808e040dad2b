"""`pull`: the MG studies of a date window from a DICOMweb PACS into a folder that `score` reads.

QIDO-RS finds the studies (ModalitiesInStudy=MG, StudyDate in the window) and their MG series and
instances; WADO-RS fetches each instance as stored (transfer-syntax=*: no transcoding). Layout:

    DIR/<hash of StudyInstanceUID>/<hash of SOPInstanceUID>.dcm

(hashes: no path is built from a tag value). An instance whose file exists is skipped, each file is
written to a temp name and renamed, so an interrupted pull resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dicomweb_client.api import DICOMwebClient

from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.results.files import temp_name

log = logging.getLogger("mammo_batch.pull")

PAGE = 100  # QIDO-RS page size (servers cap it anyway)
STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"
ORIGINAL_SYNTAX = (("application/dicom", "*"),)  # WADO-RS: the file as stored


class PullError(RuntimeError):
    """The PACS refused or did not answer a search (authentication, network, server error)."""


@dataclass
class PullCounts:
    studies: int = 0
    instances: int = 0
    fetched: int = 0
    skipped: int = 0  # already in the folder
    failed: int = 0


def dicom_date_range(since: date, until: date | None) -> str:
    """QIDO-RS StudyDate range: YYYYMMDD-YYYYMMDD (open-ended without `until`)."""
    return f"{since:%Y%m%d}-{until:%Y%m%d}" if until else f"{since:%Y%m%d}-"


def pull(client: DICOMwebClient, since: date, until: date | None, to: str | os.PathLike,
         progress: Callable[[int], None] | None = None) -> PullCounts:
    """Fetch every MG instance of the MG studies dated `since`..`until` into `to`; returns the counts."""
    to = Path(to)
    to.mkdir(parents=True, exist_ok=True)
    counts = PullCounts()
    for study_uid in _studies(client, dicom_date_range(since, until)):
        counts.studies += 1
        for series_uid, sop_uid in _instances(client, study_uid):
            counts.instances += 1
            _fetch(client, (study_uid, series_uid, sop_uid), instance_path(to, study_uid, sop_uid), counts)
            if progress is not None:
                progress(1)
    log.info("pull: %d studies, %d MG instances: %d fetched, %d already here, %d failed", counts.studies,
             counts.instances, counts.fetched, counts.skipped, counts.failed)
    return counts


def instance_path(to: Path, study_uid: str, sop_uid: str) -> Path:
    return to / _hash(study_uid) / f"{_hash(sop_uid)}.dcm"


def _hash(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()[:24]


def _paged(search: Callable[..., list[dict]], **kwargs) -> Iterator[dict]:
    import requests

    offset = 0
    while True:
        try:
            page = search(limit=PAGE, offset=offset, **kwargs)
        except requests.RequestException as error:
            raise PullError(f"the QIDO-RS search failed: {safe_error(error)}") from None
        yield from page
        if len(page) < PAGE:
            return
        offset += len(page)


def _studies(client: DICOMwebClient, dates: str) -> Iterator[str]:
    seen: set[str] = set()
    for study in _paged(client.search_for_studies, search_filters={"ModalitiesInStudy": "MG", "StudyDate": dates}):
        uid = _value(study, STUDY_UID)
        if uid and uid not in seen:  # a page boundary that moved under us must not fetch twice
            seen.add(uid)
            yield uid


def _instances(client: DICOMwebClient, study_uid: str) -> Iterator[tuple[str, str]]:
    """(series, SOP instance) of the study's MG series only (its SR, US ... series are not ours to score)."""
    for series in _paged(client.search_for_series, study_instance_uid=study_uid, search_filters={"Modality": "MG"}):
        series_uid = _value(series, SERIES_UID)
        for instance in _paged(client.search_for_instances, study_instance_uid=study_uid,
                               series_instance_uid=series_uid):
            yield series_uid, _value(instance, SOP_UID)


def _fetch(client: DICOMwebClient, uids: tuple[str, str, str], path: Path, counts: PullCounts) -> None:
    if path.exists():
        counts.skipped += 1
        return
    try:
        dataset = client.retrieve_instance(*uids, media_types=ORIGINAL_SYNTAX)
    except Exception as error:  # noqa: BLE001 - one instance that cannot be fetched fails one instance
        counts.failed += 1
        log.warning("pull: instance %d of this run could not be fetched: %s", counts.instances, safe_error(error))
        return
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_name(temp_name(path))
    dataset.save_as(temporary, enforce_file_format=True)
    os.replace(temporary, path)
    counts.fetched += 1


def _value(item: dict, tag: str) -> str | None:
    values = item.get(tag, {}).get("Value")
    return str(values[0]) if values else None

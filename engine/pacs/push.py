"""`push`: the SR files of a folder into a PACS, over STOW-RS (http/https) or DIMSE C-STORE (dicom://).

    dicom://AET@host:port   C-STORE to that called AE title (pynetdicom), for sites without DICOMweb

Which files: those the folder's manifest names (the current SR of each study, see sr.py), else every
`*.dcm`. A ledger per destination (`pushed-<hash>.json`) records the SOPInstanceUIDs accepted, so a
nightly push sends only new SRs; `resend=True` sends all. Re-sending is harmless anyway: an SR has one
SOPInstanceUID per content version, and a PACS that receives the same instance again keeps one copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from mammo_batch.engine.dicom.quiet import safe_error
from mammo_batch.engine.pacs.dicomweb import dicomweb_client
from mammo_batch.engine.pacs.sr import MANIFEST
from mammo_batch.engine.results.files import temp_name

log = logging.getLogger("mammo_batch.push")

STOW_BATCH = 20
DEFAULT_CALLING_AET = "MAMMOBATCH"
SUCCESS_STATUSES = {0x0000, 0xB000, 0xB007, 0xB006}  # success and the C-STORE warnings (stored anyway)


class PushUsageError(ValueError):
    """A destination that cannot be used."""


@dataclass
class PushCounts:
    files: int = 0
    sent: int = 0
    already: int = 0  # in the ledger of this destination
    failed: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DimseTarget:
    called_aet: str
    host: str
    port: int


def parse_dimse(url: str) -> DimseTarget:
    """dicom://AET@host:port -> DimseTarget; PushUsageError when a part is missing."""
    parts = urlsplit(url)
    if parts.scheme != "dicom" or not parts.username or not parts.hostname or not parts.port:
        raise PushUsageError("a DIMSE destination is dicom://AET@host:port")
    if parts.password is not None:
        raise PushUsageError("a DIMSE destination holds no password")
    return DimseTarget(parts.username, parts.hostname, parts.port)


def push(sr_dir: str | os.PathLike, destination: str, *, calling_aet: str = DEFAULT_CALLING_AET,
         resend: bool = False) -> PushCounts:
    """Send the folder's SR files to `destination` (a DICOMweb root URL or dicom://AET@host:port)."""
    sr_dir = Path(sr_dir)
    ledger_path = sr_dir / f"pushed-{hashlib.sha256(destination.encode()).hexdigest()[:16]}.json"
    ledger = set() if resend or not ledger_path.exists() else set(json.loads(ledger_path.read_text()))
    counts = PushCounts()
    datasets = []
    for path in sr_files(sr_dir):
        counts.files += 1
        try:
            dataset = pydicom.dcmread(path)
        except (OSError, InvalidDicomError) as error:  # a file removed or damaged by hand: the others go
            _failed(counts, 1, f"{path.name}: {safe_error(error)}")
            continue
        if dataset.SOPInstanceUID in ledger:
            counts.already += 1
        else:
            datasets.append(dataset)
    if datasets:
        send = _send_dimse if destination.startswith("dicom://") else _send_stow
        accepted = send(datasets, destination, calling_aet, counts)
        ledger |= accepted
        _write_ledger(ledger_path, ledger)
    log.info("push: %d SR files, %d sent, %d sent before, %d failed", counts.files, counts.sent,
             counts.already, counts.failed)
    return counts


def sr_files(sr_dir: Path) -> list[Path]:
    manifest = sr_dir / MANIFEST
    if manifest.exists():
        return sorted(sr_dir / entry["file"] for entry in json.loads(manifest.read_text()).values())
    return sorted(p for p in sr_dir.glob("*.dcm") if not p.name.startswith("."))


def _send_stow(datasets: list[Dataset], url: str, _calling_aet: str, counts: PushCounts) -> set[str]:
    client = dicomweb_client(url)
    accepted: set[str] = set()
    for start in range(0, len(datasets), STOW_BATCH):
        batch = datasets[start:start + STOW_BATCH]
        try:
            response = client.store_instances(batch)
        except Exception as error:  # noqa: BLE001 - HTTP or connection errors fail this batch, not the push
            _failed(counts, len(batch), safe_error(error))
            continue
        failed = {item.ReferencedSOPInstanceUID for item in response.get("FailedSOPSequence", [])}
        for dataset in batch:
            if dataset.SOPInstanceUID in failed:
                _failed(counts, 1, "refused by the server (STOW-RS FailedSOPSequence)")
            else:
                accepted.add(dataset.SOPInstanceUID)
                counts.sent += 1
    return accepted


def _send_dimse(datasets: list[Dataset], url: str, calling_aet: str, counts: PushCounts) -> set[str]:
    from pynetdicom import AE  # only sites without DICOMweb need it

    target = parse_dimse(url)
    ae = AE(ae_title=calling_aet)
    for sop_class in sorted({str(d.SOPClassUID) for d in datasets}):
        ae.add_requested_context(sop_class)
    association = ae.associate(target.host, target.port, ae_title=target.called_aet)
    if not association.is_established:
        _failed(counts, len(datasets), f"no association with {target.called_aet} at {target.host}:{target.port}")
        return set()
    accepted: set[str] = set()
    try:
        for dataset in datasets:
            status = association.send_c_store(dataset)
            code = status.get("Status") if status else None
            if code in SUCCESS_STATUSES:
                accepted.add(dataset.SOPInstanceUID)
                counts.sent += 1
            else:
                _failed(counts, 1, f"C-STORE status {code:#06x}" if code is not None else "C-STORE: no answer")
    finally:
        association.release()
    return accepted


def _failed(counts: PushCounts, n: int, reason: str) -> None:
    counts.failed += n
    counts.errors.append(reason)
    log.warning("push: %d file(s) not stored: %s", n, reason)


def _write_ledger(path: Path, uids: Iterable[str]) -> None:
    temporary = path.with_name(temp_name(path))
    temporary.write_text(json.dumps(sorted(uids)), encoding="utf-8")
    os.replace(temporary, path)

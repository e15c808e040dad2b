"""One DICOMweb client for pull and push: dicomweb-client over a session with the environment's credentials."""

from __future__ import annotations

from dicomweb_client.api import DICOMwebClient

from mammo_batch.engine.pacs.credentials import authenticated_session, check_url


def dicomweb_client(url: str) -> DICOMwebClient:
    """A client for the DICOMweb root `url` (QIDO, WADO and STOW under it), authenticated from the environment."""
    return DICOMwebClient(url=check_url(url).rstrip("/"), session=authenticated_session())

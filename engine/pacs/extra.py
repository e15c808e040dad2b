"""The `pacs` extra (highdicom, dicomweb-client, pynetdicom): a clear usage error where it is missing."""

from __future__ import annotations

import importlib.util

MODULES = ("highdicom", "dicomweb_client", "pynetdicom")


class PacsExtraMissing(RuntimeError):
    pass


def require_pacs_extra(feature: str) -> None:
    """Raise PacsExtraMissing naming `feature` when a module of the `pacs` extra is not installed."""
    missing = [m for m in MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise PacsExtraMissing(f"{feature} needs the pacs extra ({', '.join(missing)} not installed): "
                               "pip install 'mammo-batch[pacs]'")

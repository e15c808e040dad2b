"""DICOMweb credentials: from the environment only, never from the command line, never logged.

    MAMMO_BATCH_DICOMWEB_TOKEN      a bearer token (Authorization: Bearer ...), or
    MAMMO_BATCH_DICOMWEB_USER       HTTP basic user name,
    MAMMO_BATCH_DICOMWEB_PASSWORD   and its password.

A token wins over a user name. A URL with credentials in it (https://user:pw@host) is refused: it would
end up in shell history, process lists and logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

TOKEN_ENV = "MAMMO_BATCH_DICOMWEB_TOKEN"
USER_ENV = "MAMMO_BATCH_DICOMWEB_USER"
PASSWORD_ENV = "MAMMO_BATCH_DICOMWEB_PASSWORD"


class CredentialsError(ValueError):
    """Credentials given where they must not be, or half given."""


def check_url(url: str) -> str:
    """The URL, if it is http(s) and carries no credentials; else CredentialsError (no secret in the text)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CredentialsError("the DICOMweb URL must be http:// or https:// with a host")
    if parts.username is not None or parts.password is not None:
        raise CredentialsError(f"the DICOMweb URL must not hold credentials; set {TOKEN_ENV}, or {USER_ENV} "
                               f"and {PASSWORD_ENV}, in the environment instead")
    return url


def authenticated_session(environ: Mapping[str, str] | None = None) -> requests.Session:
    """A requests session carrying the environment's credentials (none when none are set)."""
    import requests  # the `pacs` extra brings it

    environ = os.environ if environ is None else environ
    session = requests.Session()
    token, user, password = (environ.get(name) for name in (TOKEN_ENV, USER_ENV, PASSWORD_ENV))
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user or password:
        if not (user and password):
            raise CredentialsError(f"set both {USER_ENV} and {PASSWORD_ENV} for HTTP basic authentication")
        session.auth = (user, password)
    return session


def describe_auth(environ: Mapping[str, str] | None = None) -> str:
    """Which kind of credentials are in use, for logs: never the values."""
    environ = os.environ if environ is None else environ
    if environ.get(TOKEN_ENV):
        return f"bearer token from {TOKEN_ENV}"
    if environ.get(USER_ENV):
        return f"HTTP basic from {USER_ENV}/{PASSWORD_ENV}"
    return "no credentials"

"""The one error a bad bundle raises: the CLI turns it into exit code 2 (configuration error)."""

from __future__ import annotations


class BundleError(ValueError):
    """A model bundle cannot be used; the message names the file and the problem."""

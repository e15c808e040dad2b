"""Silence C libraries that write to file descriptor 2 (nvImageCodec without its GPU wheels prints
library-load errors and OpenCV colour-space warnings at import and per decode): a nightly log must
not fill with them. What they wrote is kept at debug level."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

log = logging.getLogger("mammo_batch.decoders")
_lock = threading.Lock()  # fd 2 is process-wide: one redirection at a time


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    with _lock, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("decoder library output: %s", text[:2000])

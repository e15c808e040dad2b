"""Keep third-party DICOM libraries from printing tag values, and say what they saw in our words.

pydicom warns (and logs) with the offending value quoted: for a damaged header that is the
patient's name, ID and birth date, hundreds of lines of it. Nothing of that may reach a log or
stderr. `silence_third_party` turns their loggers and warnings off for the whole process (the
decode workers too: they import this package); `captured` collects them around one file's read
so that the file's record can carry one summary in fixed words, and `safe_error` turns an
exception into a message with no quoted values and no object addresses.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# Loggers of pydicom and its decoder plugins (the J2K decoder logs whole tracebacks at ERROR).
THIRD_PARTY_LOGGERS = ("pydicom", "pylibjpeg", "openjpeg", "libjpeg", "jpeg_ls", "pyjpegls")
THIRD_PARTY_MODULES = r"(pydicom|pylibjpeg|openjpeg|libjpeg|jpeg_ls|pyjpegls)(\.|$)"

# What a warning is about, recognised by fixed phrases; only the label is ever shown.
_KINDS = (
    (re.compile(r"^malformed value in ([A-Za-z]+)$"), "implausible {0} (ignored)"),
    (re.compile(r"Invalid value for VR ([A-Z]{2})"), "invalid {0} value"),
    (re.compile(r"exceeds the maximum length of \d+ allowed for VR ([A-Z]{2})"), "over-long {0} value"),
    (re.compile(r"escape sequence|character set|encoding", re.I), "unknown character set"),
    (re.compile(r"End of file reached before delimiter", re.I), "file ends inside pixel data"),
    (re.compile(r"\bVR\b"), "malformed element"),
)
# Every summary says this; discovery logs one line per file whose record carries it.
WARNINGS_MARK = "from the DICOM reader"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|b'[^']*'")
_OBJECT = re.compile(r"<([\w.]+) object at 0x[0-9a-fA-F]+>")  # a repr: keep the type, drop the address
_ADDRESS = re.compile(r"\s*\bat 0x[0-9a-fA-F]+|0x[0-9a-fA-F]{6,}")
_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")


def silence_third_party() -> None:
    """Their log records stop at their own loggers; their warnings are ignored unless captured."""
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = False
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module=THIRD_PARTY_MODULES)


@dataclass
class Captured:
    """The warnings and log records third-party code emitted inside one `captured()` block (live)."""

    warned: list = field(default_factory=list)  # warnings.WarningMessage, filled by catch_warnings
    logged: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        """pydicom both logs and warns most problems: each message once."""
        warned = [str(w.message) for w in self.warned]
        return warned + [m for m in self.logged if m not in warned]

    def __len__(self) -> int:
        return len(self.messages)

    def contains(self, phrase: str) -> bool:
        return any(phrase in m for m in self.messages)

    def summary(self) -> str:
        """'3 warnings from the DICOM reader: invalid UI value x2, unknown character set x1 (values
        withheld)'; built from fixed labels only, never from the messages' text."""
        kinds = Counter(_kind(m) for m in self.messages)
        parts = ", ".join(f"{kind} x{n}" for kind, n in kinds.most_common())
        plural = "s" if len(self) != 1 else ""
        return f"{len(self)} warning{plural} {WARNINGS_MARK}: {parts} (values withheld)"


@contextmanager
def captured() -> Iterator[Captured]:
    """Collect third-party warnings and log records (WARNING and up) instead of showing them."""
    handler = _ListHandler([])
    loggers = [logging.getLogger(name) for name in THIRD_PARTY_LOGGERS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = Captured(caught, handler.sink)
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield result
        finally:
            for logger in loggers:
                logger.removeHandler(handler)


def safe_error(exc: BaseException, limit: int = 200) -> str:
    """'TypeName: message' with quoted values, object addresses and control bytes removed.

    The one sanitiser for every exception that becomes stored or printed text (views.parquet, the
    report, a log line): a header value quoted by pydicom is PHI, and an address differs between
    runs and engines (a rerun would see a changed error for the same file).
    """
    text = _OBJECT.sub(r"<\1>", str(exc))
    text = _QUOTED.sub("'…'", text)
    text = _ADDRESS.sub("", text)
    text = _UNPRINTABLE.sub("", text.replace("…", "...")).strip()
    return f"{type(exc).__name__}: {text}"[:limit] if text else type(exc).__name__


def _kind(message: str) -> str:
    for pattern, label in _KINDS:
        match = pattern.search(message)
        if match:
            return label.format(*match.groups())
    return "other"


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.sink.append(record.getMessage())

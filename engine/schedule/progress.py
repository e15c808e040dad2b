"""Progress on long runs: a bar on a terminal, a plain log line now and then otherwise."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("mammo_batch.score")

LOG_EVERY_S = 30.0


class Progress:
    def __init__(self, total_studies: int, quiet: bool = False) -> None:
        self.total = total_studies
        self.quiet = quiet
        self.studies = 0
        self.views = 0
        self.start = time.monotonic()
        self._last_log = self.start
        self._bar = None
        if not quiet and sys.stderr.isatty():
            self._bar = tqdm(total=total_studies, unit="study", dynamic_ncols=True, file=sys.stderr)

    def update(self, studies: int, views: int) -> None:
        self.studies += studies
        self.views += views
        if self._bar is not None:
            self._bar.update(studies)
            self._bar.set_postfix_str(f"{self.views_per_second:.1f} views/s", refresh=False)
        elif not self.quiet and time.monotonic() - self._last_log >= LOG_EVERY_S:
            self._last_log = time.monotonic()
            log.info("%s", self.line())

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def views_per_second(self) -> float:
        return self.views / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.studies / self.elapsed if self.elapsed > 0 else 0.0
        left = (self.total - self.studies) / rate if rate > 0 else float("nan")
        return (f"{self.studies}/{self.total} studies, {self.views} views, "
                f"{rate:.2f} studies/s, {self.views_per_second:.2f} views/s, ETA {left:.0f} s")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

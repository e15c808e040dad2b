"""The Executor interface and the registry of executors (`--engine`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from mammo_batch.engine.dicom.catalog import HeaderCatalog
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.results.outcome import StudyResult
from mammo_batch.engine.schedule.run import StageTimes
from mammo_batch.engine.studies import Study

Sink = Callable[[list[StudyResult]], None]


class Executor(Protocol):
    """One run's steps on some machinery. `options` is the run's api.ScoreOptions."""

    name: str

    def refusal(self, options: Any) -> str | None:
        """Why this executor cannot run with `options` (a usage error), or None."""

    def session(self, options: Any) -> AbstractContextManager:
        """The resources held for the whole run (a cluster connection, or nothing)."""

    def discover(self, paths: list[Path], options: Any) -> HeaderCatalog:
        """Read every file's header under `paths` (the view policy applied)."""

    def score(self, jobs: Iterable[Study], ensemble: Ensemble, options: Any, sink: Sink,
              should_stop: Callable[[], bool]) -> tuple[StageTimes, dict[str, Any]]:
        """Score the jobs, completed studies to `sink`; (stage times, what the machinery was)."""


# name -> "module:Class", imported when chosen (the ray executor imports Ray)
EXECUTORS = {"local": "mammo_batch.engine.executors.local:LocalExecutor",
             "ray": "mammo_batch.engine.executors.ray:RayExecutor"}


def make_executor(name: str) -> Executor:
    if name not in EXECUTORS:
        raise ValueError(f"unknown engine {name!r}: choose one of {', '.join(EXECUTORS)}")
    module, _, attribute = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), attribute)()

"""An Ensemble: a bundle's members loaded once into one runtime, grouped by input size.

Load it once and pass it to `score()` as many times as you like (a notebook, a service, `bench`):

    ensemble = Ensemble.load("bundle/", runtime="auto")
    print(ensemble.runtime_reason)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mammo_batch.engine.bundle import Bundle, load_bundle
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.runtimes import select_runtime
from mammo_batch.engine.runtimes.base import MemberRunner, Runtime

Size = tuple[int, int]


@dataclass(frozen=True)
class Ensemble:
    bundle: Bundle
    runtime: Runtime
    runtime_reason: str  # which runtime and why, one line (e.g. "onnxruntime-cpu (no CUDA device)")
    runners: tuple[MemberRunner, ...]  # in bundle member order

    @classmethod
    def load(cls, models: str | os.PathLike | Bundle, runtime: str = "auto", threads: int | None = None
             ) -> Ensemble:
        """Validate the bundle, choose the runtime, load every member.

        Raises BundleError (a bad bundle) or RuntimeUnavailableError (the runtime cannot run here).
        """
        bundle = models if isinstance(models, Bundle) else load_bundle(models)
        chosen, reason = select_runtime(runtime, bundle, threads=threads)
        runners = tuple(chosen.load(member, bundle.path) for member in bundle.members)
        return cls(bundle, chosen, reason, runners)

    @property
    def by_size(self) -> dict[Size, list[MemberRunner]]:
        """Model input size -> the runners of that size: one resize per size serves them all."""
        groups: dict[Size, list[MemberRunner]] = {}
        for runner in self.runners:
            groups.setdefault(runner.input_size, []).append(runner)
        return groups

    @property
    def member_names(self) -> tuple[str, ...]:
        return tuple(runner.name for runner in self.runners)

    @property
    def settings(self) -> PreprocessSettings:
        return self.bundle.settings

    @property
    def sizes(self) -> list[Size]:
        return self.bundle.sizes

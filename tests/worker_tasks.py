"""Tasks for CpuPoolPreparer's worker processes in tests (module level: spawned workers import them).

Each "file" is a text file holding one word that says what the task does with it: a number (the
image is filled with it), `crash` (the worker process dies, as when the OOM killer takes it),
`crash-once` (dies the first time only: a marker file remembers), `hang` (sleeps past any limit)
or `raise` (an ordinary exception, as a bad file gives). `scripted_studies` writes such files as studies.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np


def scripted(path: str, sizes: list[tuple[int, int]], settings) -> dict:
    word = Path(path).read_text().strip()
    if word == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if word == "crash-once":
        marker = Path(path + ".crashed")
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        word = "7"
    if word == "hang":
        time.sleep(600)
    if word == "raise":
        raise ValueError("this file is bad")
    return {size: np.full(size, int(word), np.uint8) for size in sizes}


def scripted_studies(root: Path, words: dict[str, list[str]]) -> list:
    """{study key: one word per view} -> Studies of scripted files under `root` (views L, R, L, ... CC)."""
    from mammo_batch.engine.dicom.record import ViewRecord  # not needed by the worker processes
    from mammo_batch.engine.studies import Study

    jobs = []
    for key, study_words in words.items():
        views = []
        for i, word in enumerate(study_words):
            path = root / f"{key}-{i}.txt"
            path.write_text(word)
            views.append(ViewRecord(str(path), laterality="LR"[i % 2], view="CC"))
        jobs.append(Study(key, views))
    return jobs

"""The same fault scenarios on both executors: `--engine local` always, `--engine ray` where Ray is
installed (the session's Ray, tests/conftest.py).

Each executor runs its real machinery (the local scheduler and worker pool; Ray's prepare actors and
scorer actors) with real ONNX Runtime members; only the per-view work is scripted
(tests/worker_tasks.py: a file's one word says to fill the image with a number, crash its worker
process, hang, or raise), so a crash or a hang happens exactly where a real decoder's would.
SIGTERM goes through the real CLI on real DICOM files.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from worker_tasks import scripted, scripted_studies

from mammo_batch.engine.api import ScoreOptions
from mammo_batch.engine.ensemble import Ensemble
from mammo_batch.engine.executors.local import LocalExecutor
from mammo_batch.engine.schedule.preparer import REASON_DECODE_ERROR, REASON_TIMEOUT, REASON_WORKER_CRASH
from mammo_batch.engine.studies import Study

MEMBERS = ({"name": "wide", "height": 96, "width": 48, "weight": 8.0, "bias": -3.0},
           {"name": "small", "height": 32, "width": 16, "weight": 4.0, "bias": -1.0})
ENGINES = ["local", pytest.param("ray", marks=pytest.mark.ray)]


def expected(word: str, member: dict) -> float:
    """What a mean-intensity member (tests/onnx_members.py) gives an image filled with `word`."""
    return 1 / (1 + math.exp(-(member["weight"] * int(word) / 255 + member["bias"])))


@pytest.fixture(scope="module")
def bundle(make_bundle) -> Path:
    return make_bundle(MEMBERS, threshold=0.5)


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    if request.param == "ray":
        pytest.importorskip("ray")
        request.getfixturevalue("ray_cluster")
    return request.param


def executor_for(engine: str):
    if engine == "ray":
        from mammo_batch.engine.executors.ray import RayExecutor

        return RayExecutor(task=scripted)
    return LocalExecutor(task=scripted)


def score_jobs(engine: str, jobs: list[Study], bundle: Path, stop_after: int | None = None, **options) -> dict:
    """{study key: StudyResult} of the studies the executor completed."""
    executor = executor_for(engine)
    run = ScoreOptions(workers=2, batch_size=2, progress=False, engine=engine, **options)
    done: list = []
    should_stop = (lambda: False) if stop_after is None else (lambda: len(done) >= stop_after)
    with executor.session(run):
        executor.score(jobs, Ensemble.load(bundle, "onnx", threads=1), run, done.extend, should_stop)
    keys = [result.study.key for result in done]
    assert len(keys) == len(set(keys)), "a study was handed to the sink twice"
    return {result.study.key: result for result in done}


def assert_scored(result, position: int, word: str) -> None:
    view = result.views[position]
    assert not view.failed, view.error
    for member in MEMBERS:
        assert view.member_probs[member["name"]] == pytest.approx(expected(word, member), abs=1e-6)


def test_every_view_comes_back_to_its_study(engine, bundle, tmp_path):
    words = {f"s{i}": [str(10 * i + j) for j in range(3)] for i in range(5)}
    done = score_jobs(engine, scripted_studies(tmp_path, words), bundle)
    assert set(done) == set(words)
    for key, study_words in words.items():
        for position, word in enumerate(study_words):
            assert_scored(done[key], position, word)


def test_a_file_that_kills_its_worker_fails_alone(engine, bundle, tmp_path):
    words = {"a": ["1", "crash", "2"], "b": ["3", "crash-once"], "c": ["crash", "6", "8"]}
    done = score_jobs(engine, scripted_studies(tmp_path, words), bundle)
    assert set(done) == set(words)
    for key, position in (("a", 1), ("c", 0)):
        view = done[key].views[position]
        assert view.reason == REASON_WORKER_CRASH and "alone" in view.error
    for key, position, word in (("a", 0, "1"), ("a", 2, "2"), ("b", 0, "3"), ("b", 1, "7"), ("c", 1, "6"),
                                ("c", 2, "8")):
        assert_scored(done[key], position, word)  # neighbours never blamed; crash-once scored on retry


@pytest.mark.timeout(500)  # the hang sleeps 600 s: a time limit that never fires fails here
def test_a_file_past_the_time_limit_fails_and_the_run_goes_on(engine, bundle, tmp_path):
    words = {"a": ["1", "hang"], "b": ["2", "3"]}
    done = score_jobs(engine, scripted_studies(tmp_path, words), bundle, time_limit_s=3.0)
    assert done["a"].views[1].reason == REASON_TIMEOUT and "time limit of 3 s" in done["a"].views[1].error
    assert_scored(done["a"], 0, "1")
    assert_scored(done["b"], 0, "2")
    assert_scored(done["b"], 1, "3")


def test_an_exception_fails_one_view(engine, bundle, tmp_path):
    done = score_jobs(engine, scripted_studies(tmp_path, {"a": ["raise", "6"]}), bundle)
    view = done["a"].views[0]
    assert view.reason == REASON_DECODE_ERROR and "this file is bad" in view.error and "0x" not in view.error
    assert_scored(done["a"], 1, "6")


def test_a_stop_request_hands_over_only_whole_studies(engine, bundle, tmp_path):
    words = {f"s{i}": ["1", "2"] for i in range(12)}
    done = score_jobs(engine, scripted_studies(tmp_path, words), bundle, stop_after=1)
    assert 1 <= len(done) < 12
    for result in done.values():
        assert_scored(result, 0, "1")
        assert_scored(result, 1, "2")


# SIGTERM through the CLI, on real DICOM files.

def cli(engine: str, studies: Path, out: Path, bundle: Path, ray_address: str | None, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--out", str(out),
               "--models", str(bundle), "--quiet", "--workers", "1", "--engine", engine, *extra]
    return command + (["--ray-address", ray_address] if ray_address else [])


def scores(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas().set_index("study_key").sort_index()[["score", "status", "n_views"]]


def test_sigterm_finishes_whole_studies_and_the_rerun_completes(engine, request, make_studies, bundle, tmp_path):
    address = request.getfixturevalue("ray_cluster") if engine == "ray" else None
    studies = make_studies(16, seed=11, size=(192, 160), layout="accession")
    reference = tmp_path / "reference.parquet"
    subprocess.run(cli("local", studies, reference, bundle, None), check=True, timeout=600)
    out = tmp_path / "s.parquet"
    journal = Path(f"{out}.journal")
    child = subprocess.Popen(cli(engine, studies, out, bundle, address, "--flush-every", "1", "--batch-size", "1"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and child.poll() is None and not list(journal.glob("part-*.files.parquet")):
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 128 + signal.SIGTERM, stderr
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    partial = scores(out)  # a complete, readable output of the studies finished so far
    assert 1 <= len(partial) < 16 and (partial["status"] == "ok").all()
    resumed = subprocess.run(cli(engine, studies, out, bundle, address), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr  # the lock was released
    pd.testing.assert_frame_equal(scores(out), scores(reference), check_exact=False, atol=1e-6)

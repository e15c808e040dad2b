"""The Scheduler and the CpuPoolPreparer with real worker processes: batching across studies, results
matched to views, and the faults a preparer must absorb (a worker killed on one file, a file that hangs,
a file that raises). The tasks (tests/worker_tasks.py) stand in for decoding: what is under test is the
scheduling and fault handling, with real processes, real signals and real time limits.
"""

from __future__ import annotations

import numpy as np
import pytest
from worker_tasks import scripted, scripted_studies

from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer
from mammo_batch.engine.schedule.preparer import REASON_DECODE_ERROR, REASON_TIMEOUT, REASON_WORKER_CRASH, Preparer
from mammo_batch.engine.schedule.run import Scheduler, SchedulerOptions

SIZES = [(8, 4), (6, 6)]


class MeanRunner:
    """A member that returns the mean pixel value / 100 (so a view's input is visible in its score)."""

    def __init__(self, name: str, size: tuple[int, int]) -> None:
        self.name, self.input_size, self.batches = name, size, []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        assert batch.shape[1:] == self.input_size
        self.batches.append(len(batch))
        return batch.reshape(len(batch), -1).mean(axis=1).astype(np.float32) / 100


def run(jobs, preparer: Preparer, batch_size: int = 3):
    runners = {size: [MeanRunner(f"m{i}", size)] for i, size in enumerate(SIZES)}
    scheduler = Scheduler(runners, preparer, SchedulerOptions(batch_size=batch_size, idle_flush_s=0.2))
    done = []
    try:
        completed = scheduler.run(jobs, done.extend)
    finally:
        preparer.close()
    return completed, {r.study.key: r for r in done}, runners


@pytest.fixture
def pool():
    def make(**kwargs) -> CpuPoolPreparer:
        return CpuPoolPreparer(SIZES, PreprocessSettings(), workers=2, task=scripted, **kwargs)
    return make


def probabilities(result) -> list[float | None]:
    return [None if v.failed else v.member_probs["m0"] for _, v in sorted(result.views.items())]


def test_every_view_comes_back_to_its_study_batched_across_studies(tmp_path, pool):
    jobs = scripted_studies(tmp_path, {f"s{i}": [str(10 * i + j) for j in range(2)] for i in range(5)})
    completed, done, runners = run(jobs, pool())
    assert completed and set(done) == {f"s{i}" for i in range(5)}
    for i in range(5):  # each view's probability is its own input's, whatever batch it rode in
        assert probabilities(done[f"s{i}"]) == pytest.approx([(10 * i + j) / 100 for j in range(2)])
    assert max(runners[SIZES[0]][0].batches) == 3  # batches mix views of different studies
    assert sum(runners[SIZES[0]][0].batches) == 10


def test_a_worker_killed_on_one_file_fails_that_view_only_never_its_neighbours(tmp_path, pool):
    jobs = scripted_studies(tmp_path, {"a": ["1", "crash", "2"], "b": ["3", "crash-once"], "c": ["4", "5"],
                                   "d": ["crash", "6", "8", "9"]})
    completed, done, _ = run(jobs, pool())
    assert completed
    crashed = done["a"].views[1]
    assert crashed.reason == REASON_WORKER_CRASH and "alone" in crashed.error
    assert probabilities(done["a"])[0::2] == pytest.approx([0.01, 0.02])  # its neighbours scored
    assert probabilities(done["b"]) == pytest.approx([0.03, 0.07]), done["b"].views[1]  # died once, then scored
    assert probabilities(done["c"]) == pytest.approx([0.04, 0.05])
    assert probabilities(done["d"])[1:] == pytest.approx([0.06, 0.08, 0.09])  # in flight with two crashers
    assert done["d"].views[0].reason == REASON_WORKER_CRASH


@pytest.mark.timeout(60)  # the hang sleeps 600 s: a time limit that never fires fails here within a minute
def test_a_file_past_the_time_limit_fails_and_the_run_goes_on(tmp_path, pool):
    jobs = scripted_studies(tmp_path, {"a": ["1", "hang"], "b": ["2", "3"]})
    completed, done, _ = run(jobs, pool(time_limit_s=2.0))
    assert completed
    assert done["a"].views[1].reason == REASON_TIMEOUT
    assert probabilities(done["a"])[0] == pytest.approx(0.01)
    assert probabilities(done["b"]) == pytest.approx([0.02, 0.03])


def test_an_exception_fails_one_view(tmp_path, pool):
    jobs = scripted_studies(tmp_path, {"a": ["raise", "6"]})
    _, done, _ = run(jobs, pool())
    assert done["a"].views[0].reason == REASON_DECODE_ERROR and "this file is bad" in done["a"].views[0].error
    assert probabilities(done["a"])[1] == pytest.approx(0.06)


def test_a_stop_request_finishes_open_studies_and_opens_no_more(tmp_path, pool):
    jobs = scripted_studies(tmp_path, {f"s{i}": ["1", "2"] for i in range(8)})
    preparer = pool()
    runners = {size: [MeanRunner(f"m{i}", size)] for i, size in enumerate(SIZES)}
    scheduler = Scheduler(runners, preparer, SchedulerOptions(batch_size=2, idle_flush_s=0.2))
    done = []
    try:
        completed = scheduler.run(jobs, done.extend, should_stop=lambda: len(done) >= 1)
    finally:
        preparer.close()
    assert not completed
    assert 1 <= len(done) < 8
    assert all(len(r.views) == 2 and not any(v.failed for v in r.views.values()) for r in done)

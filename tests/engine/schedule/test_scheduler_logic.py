"""The Scheduler's logic with an in-process preparer (no processes: they are not the subject here;
tests/engine/schedule/test_scheduler.py runs real pools for crashes, hangs and time limits): batching across
studies, the idle flush of a partial batch, the bound on views in flight, and a stop request.

A view's "path" is `<study>/<value>`; the fake preparer fills its image with `value`, and the member
scores a view as its mean pixel / 100, so each probability says which view it came from.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pytest

from mammo_batch.engine.dicom.record import ViewRecord
from mammo_batch.engine.schedule.preparer import PreparedView, Preparer
from mammo_batch.engine.schedule.run import Scheduler, SchedulerOptions
from mammo_batch.engine.studies import Study

SIZE = (4, 2)


class MeanRunner:
    def __init__(self, events: list) -> None:
        self.name, self.input_size, self.events = "m", SIZE, events

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.events.append(("batch", len(batch)))
        return batch.reshape(len(batch), -1).mean(axis=1).astype(np.float32) / 100


class FakePreparer:
    """Prepares in this process. `hold` paths come back only after `hold_collects` empty collects
    (a slow file); an empty collect waits its timeout, as a real preparer does."""

    def __init__(self, capacity: int, events: list, hold: frozenset[str] = frozenset(),
                 hold_collects: int = 0) -> None:
        self.capacity, self.events, self.hold, self.hold_collects = capacity, events, hold, hold_collects
        self.ready: deque[tuple[int, str]] = deque()
        self.held: list[tuple[int, str]] = []
        self.submitted: list[str] = []
        self.max_in_flight = 0

    @property
    def in_flight(self) -> int:
        return len(self.ready) + len(self.held)

    def submit(self, view_id: int, path: str) -> None:
        self.submitted.append(path)
        (self.held if path in self.hold else self.ready).append((view_id, path))
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def collect(self, timeout: float) -> list[PreparedView]:
        if not self.ready:
            time.sleep(timeout)
            self.hold_collects -= 1
            if self.hold_collects <= 0:
                self.ready.extend(self.held)
                self.held.clear()
            return []
        view_id, path = self.ready.popleft()
        self.events.append(("prepared", path))
        value = int(path.rsplit("/", 1)[1])
        return [PreparedView(view_id, {SIZE: np.full(SIZE, value, np.uint8)})]

    def close(self) -> None:
        pass


def jobs_of(studies: dict[str, list[int]]) -> list[Study]:
    return [Study(key, [ViewRecord(f"{key}/{v}", laterality="LR"[i % 2], view="CC") for i, v in enumerate(values)])
            for key, values in studies.items()]


def run(jobs, preparer: Preparer, events: list, batch_size: int, should_stop=lambda: False, done=None,
        idle_flush_s: float = 0.01):
    scheduler = Scheduler({SIZE: [MeanRunner(events)]}, preparer,
                          SchedulerOptions(batch_size=batch_size, idle_flush_s=idle_flush_s))
    done = [] if done is None else done
    completed = scheduler.run(jobs, done.extend, should_stop=should_stop)
    return completed, {r.study.key: r for r in done}


def probabilities(result) -> list[float]:
    return [v.member_probs["m"] for _, v in sorted(result.views.items())]


def test_batches_mix_studies_and_every_probability_returns_to_its_view():
    events: list = []
    studies = {f"s{i}": [10 * i + j for j in range(2)] for i in range(5)}
    # A long idle wait: every view is ready at once, so batches are cut by size only, never by time.
    completed, done = run(jobs_of(studies), FakePreparer(capacity=4, events=events), events, batch_size=3,
                          idle_flush_s=60.0)
    assert completed and set(done) == set(studies)
    for key, values in studies.items():
        assert probabilities(done[key]) == pytest.approx([v / 100 for v in values])
    sizes = [n for kind, n in events if kind == "batch"]
    assert sizes == [3, 3, 3, 1]  # full batches hold views of two studies (2 + 1); the rest at the end


def test_a_partial_batch_runs_after_the_idle_wait_without_waiting_for_slow_views():
    events: list = []
    preparer = FakePreparer(capacity=4, events=events, hold=frozenset({"s0/2", "s0/3"}), hold_collects=5)
    completed, done = run(jobs_of({"s0": [1, 2, 3]}), preparer, events, batch_size=8)
    assert completed and probabilities(done["s0"]) == pytest.approx([0.01, 0.02, 0.03])
    # the one ready view ran alone before the held ones were prepared: the partial batch did not wait
    assert events.index(("batch", 1)) < events.index(("prepared", "s0/2"))


@pytest.mark.parametrize("n_studies", [3, 40])
def test_views_in_flight_stay_bounded_whatever_the_number_of_studies(n_studies):
    events: list = []
    capacity, batch_size = 4, 3
    preparer = FakePreparer(capacity=capacity, events=events, hold=frozenset({"s0/0"}), hold_collects=3)
    studies = {f"s{i}": [1, 2, 3, 4] for i in range(n_studies)}
    completed, done = run(jobs_of(studies), preparer, events, batch_size=batch_size)
    assert completed and len(done) == n_studies
    assert preparer.max_in_flight <= capacity + batch_size
    if n_studies > 10:  # enough work to fill it: the bound is reached, not merely never tested
        assert preparer.max_in_flight == capacity + batch_size


def test_a_stop_request_finishes_the_open_studies_and_opens_no_more():
    events: list = []
    done: list = []
    preparer = FakePreparer(capacity=2, events=events)
    studies = {f"s{i}": [1, 2] for i in range(10)}
    completed, finished = run(jobs_of(studies), preparer, events, batch_size=2,
                              should_stop=lambda: len(done) >= 1, done=done)
    assert not completed
    assert 1 <= len(finished) < 10
    assert all(probabilities(r) == pytest.approx([0.01, 0.02]) for r in finished.values())
    opened = {path.split("/")[0] for path in preparer.submitted}
    assert opened == set(finished)  # every study that was opened was finished, and no other


def test_every_preparer_reason_is_in_the_policy_vocabulary():
    """One vocabulary: a reason a Preparer (local or in a Ray actor) reports is documented with the others."""
    from mammo_batch.engine.dicom.policy import REASONS
    from mammo_batch.engine.schedule import preparer

    codes = {value for name, value in vars(preparer).items() if name.startswith("REASON_")}
    assert {"decode_error", "worker_crash", "timeout", "not_readable_on_node"} <= codes <= set(REASONS)

"""The per-file time limit and the signal handling on a loaded machine: the same tests as
tests/engine/schedule/test_scheduler.py and tests/engine/executors (SIGTERM, local engine), run while
two processes burn a CPU each.

On a busy 2-core machine a spawned worker takes seconds to start; that time (and the wait in the
pool's queue) must never count against a file's time limit (engine/schedule/cpu_pool.py), and a
SIGTERM must still finish the studies in flight.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_executor_scenarios
import test_scheduler
from worker_tasks import scripted, scripted_studies

from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.schedule.cpu_pool import CpuPoolPreparer

BUSY_PROCESSES = 2


@pytest.fixture
def busy_cpus() -> Iterator[None]:
    """Two processes that spin until the test ends."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY_PROCESSES)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def pool(**kwargs) -> CpuPoolPreparer:
    return CpuPoolPreparer(test_scheduler.SIZES, PreprocessSettings(), workers=2, task=scripted, **kwargs)


@pytest.mark.timeout(120)
def test_a_file_past_the_time_limit_fails_and_the_others_pass_under_load(busy_cpus, tmp_path: Path):
    test_scheduler.test_a_file_past_the_time_limit_fails_and_the_run_goes_on(tmp_path, pool)


@pytest.mark.timeout(120)
def test_no_quick_file_times_out_while_workers_start_under_load(busy_cpus, tmp_path: Path):
    """Many quick files, a 2 s limit, a fresh pool on a busy machine: start-up is not their time."""
    jobs = scripted_studies(tmp_path, {f"s{i}": [str(i), str(i + 1)] for i in range(6)})
    completed, done, _ = test_scheduler.run(jobs, pool(time_limit_s=2.0))
    assert completed and all(not v.failed for r in done.values() for v in r.views.values())


@pytest.mark.timeout(300)
def test_sigterm_finishes_studies_in_flight_under_load(busy_cpus, request, make_bundle, make_studies, tmp_path: Path):
    bundle = make_bundle(test_executor_scenarios.MEMBERS, threshold=0.5)
    test_executor_scenarios.test_sigterm_finishes_whole_studies_and_the_rerun_completes(
        "local", request, make_studies, bundle, tmp_path)

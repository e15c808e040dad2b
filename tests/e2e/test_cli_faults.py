"""`mammo-batch score` under faults and misuse, through the real CLI in child processes: usage errors
caught before any work, a killed scorer leaving no orphaned workers, a full disk leaving the previous
output intact, a second run on a locked output. SIGTERM on both engines: tests/engine/executors.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

MEMBERS = [dict(name="wide", height=96, width=48, weight=8.0, bias=-3.0)]


@pytest.fixture(scope="module")
def bundle(make_bundle) -> Path:
    return make_bundle(MEMBERS, threshold=0.5)


@pytest.fixture(scope="module")
def studies(make_studies) -> Path:
    return make_studies(8, seed=11, size=(192, 160), layout="accession")


def command(studies: Path, out: Path, bundle: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--out", str(out),
            "--models", str(bundle), "--quiet", "--workers", "1", *extra]


def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, **kwargs)


def scores(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas().set_index("study_key").sort_index()[["score", "status", "n_views"]]


@pytest.mark.parametrize("extra, says", [
    (["--threshold", "nan"], "threshold"),
    (["--threshold", "inf"], "threshold"),
    (["--threshold", "1.5"], "threshold"),
    (["--threshold", "-0.2"], "threshold"),
    (["--view-filter", "CCC"], "CCC"),
])
def test_bad_options_exit_2_before_any_work(studies, bundle, tmp_path, extra, says):
    out = tmp_path / "scores.parquet"
    result = run(*command(studies, out, bundle, *extra))
    assert result.returncode == 2 and says in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_output_paths_exit_2_before_any_work(studies, bundle, tmp_path):
    missing_dir = run(*command(studies, tmp_path / "newdir" / "s.parquet", bundle))
    assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr
    out = tmp_path / "s.parquet"
    bad_views = run(*command(studies, out, bundle, "--views", str(tmp_path / "missing" / "v.parquet")))
    assert bad_views.returncode == 2 and "--views" in bad_views.stderr and not out.exists()
    same = run(*command(studies, out, bundle, "--views", str(out)))
    assert same.returncode == 2 and "Traceback" not in same.stderr and not out.exists()


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry))
    return members


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_scorer_leaves_no_worker_processes(studies, bundle, tmp_path):
    out = tmp_path / "s.parquet"
    child = subprocess.Popen(command(studies, out, bundle, "--rescore", "--workers", "2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_group_members(child.pid)) < 3:  # the scorer and its workers
        time.sleep(0.05)
    assert len(_group_members(child.pid)) >= 3, "the workers never started"
    child.kill()  # SIGKILL to the scorer only, as the OOM killer does
    child.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _group_members(child.pid):
        time.sleep(0.1)
    assert _group_members(child.pid) == [], "orphaned worker processes outlived their scorer"


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_keeps_the_previous_output_and_the_next_run_resumes(studies, bundle, tmp_path):
    out = tmp_path / "s.parquet"
    assert run(*command(studies, out, bundle)).returncode == 0
    before = scores(out)
    full = run(*command(studies, out, bundle, "--rescore"), preexec_fn=_limit_file_size(2000))
    assert full.returncode == 1 and "cannot write the results" in full.stderr, full.stderr
    assert "Traceback" not in full.stderr
    pd.testing.assert_frame_equal(scores(out), before)  # intact and readable
    again = run(*command(studies, out, bundle, "--rescore"))
    assert again.returncode == 0 and not Path(f"{out}.journal").exists()
    pd.testing.assert_frame_equal(scores(out), before)


def test_a_second_run_on_a_locked_output_names_the_holder(studies, bundle, tmp_path):
    from mammo_batch.engine.results.lock import OutputLock

    out = tmp_path / "s.parquet"
    with OutputLock(out):
        result = run(*command(studies, out, bundle))
    assert result.returncode == 2 and f"locked by process {os.getpid()}" in result.stderr, result.stderr


def test_preview_prints_only_its_summary_off_a_terminal(studies, tmp_path):
    result = run(sys.executable, "-m", "mammo_batch.engine.cli", "preview", str(studies), "--out", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [line for line in result.stdout.splitlines() if line.startswith("wrote ")]
    assert len(result.stdout.splitlines()) == 1

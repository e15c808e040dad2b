"""Results on disk: schemas, journal + final files, reruns, crash recovery, the lock, fingerprints.

Real files in tmp_path, real child processes killed with SIGKILL; no mocks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mammo_batch.engine.results import (
    SCORES_SCHEMA,
    OutputLock,
    OutputLocked,
    PreviousStudy,
    ResultsFileError,
    ResultStore,
    read_run_metadata,
    study_fingerprint,
    views_schema,
)
from mammo_batch.engine.results.store import journal_dir

MEMBERS = ("fold0", "fold1")
VIEWS_SCHEMA = views_schema(MEMBERS)
BUNDLE = "demo@0123456789ab"
SCORED_AT = datetime(2026, 11, 28, 6, 0, 0, 123456, tzinfo=timezone.utc)
TESTS_DIR = Path(__file__).resolve().parent


# -- rows and stores -------------------------------------------------------------------------------------


def scores_rows(keys: Sequence[str], fingerprint: str = "fp-1", status: str = "ok") -> pa.Table:
    n = len(keys)
    return pa.table(
        {
            "study_key": list(keys),
            "patient_id": [f"P-{key}" for key in keys],
            "accession_number": list(keys),
            "study_instance_uid": [f"1.2.3.{i}" for i in range(n)],
            "study_date": ["20261127"] * n,
            "score": [0.25] * n,
            "recall": [False] * n,
            "left_score": [0.25] * n,
            "right_score": [None] * n,
            "n_views": pa.array([2] * n, pa.int32()),
            "n_views_skipped": pa.array([0] * n, pa.int32()),
            "status": [status] * n,
            "error": [""] * n,
            "bundle_id": [BUNDLE] * n,
            "engine_version": ["0.1.0"] * n,
            "scored_at": [SCORED_AT] * n,  # microseconds: the store truncates to ms
            "fingerprint": [fingerprint] * n,
        }
    )


def views_rows(keys: Sequence[str], per_study: int = 2, prob: float = 0.25) -> pa.Table:
    """`per_study` files per study; `prob` tags the version that wrote them."""
    rows = [(key, i) for key in keys for i in range(per_study)]
    n = len(rows)
    return pa.table(
        {
            "path": [f"/data/{key}/{i}.dcm" for key, i in rows],
            "study_key": [key for key, _ in rows],
            "sop_instance_uid": [f"1.2.{i}" for i in range(n)],
            "patient_id": [f"P-{key}" for key, _ in rows],
            "accession_number": [key for key, _ in rows],
            "study_instance_uid": ["1.2.3"] * n,
            "laterality": ["L" if i % 2 == 0 else "R" for _, i in rows],
            "view": ["CC"] * n,
            "status": ["ok"] * n,
            "reason": [""] * n,
            "detail": [""] * n,
            "prob_fold0": pa.array([prob] * n, pa.float32()),
            "prob_fold1": pa.array([prob] * n, pa.float32()),
            "prob": pa.array([prob] * n, pa.float32()),
        }
    )


def make_store(tmp_path: Path, views: bool = True, schema: pa.Schema = VIEWS_SCHEMA) -> ResultStore:
    views_out = tmp_path / "views.parquet" if views else None
    return ResultStore(tmp_path / "scores.parquet", schema, {"bundle_id": BUNDLE, "run": 1}, views_out=views_out)


def final_scores(tmp_path: Path) -> dict[str, list]:
    return pq.read_table(tmp_path / "scores.parquet").to_pydict()


def final_views(tmp_path: Path) -> dict[str, list]:
    return pq.read_table(tmp_path / "views.parquet").to_pydict()


# -- schemas ---------------------------------------------------------------------------------------------


def test_schemas_follow_the_contract() -> None:
    assert SCORES_SCHEMA.names == [
        "study_key", "patient_id", "accession_number", "study_instance_uid", "study_date", "score",
        "recall", "left_score", "right_score", "n_views", "n_views_skipped", "status", "error",
        "bundle_id", "engine_version", "scored_at", "fingerprint", "config", "last_seen",
    ]  # fmt: skip
    assert SCORES_SCHEMA.field("scored_at").type == pa.timestamp("ms", tz="UTC")
    assert SCORES_SCHEMA.field("n_views").type == pa.int32()
    assert VIEWS_SCHEMA.names[-3:] == ["prob_fold0", "prob_fold1", "prob"]
    assert {"manufacturer", "prepare_s"} <= set(VIEWS_SCHEMA.names)
    assert VIEWS_SCHEMA.names[0] == "path"
    assert all(VIEWS_SCHEMA.field(name).type == pa.float32() for name in VIEWS_SCHEMA.names[-3:])
    with pytest.raises(ValueError, match="not unique"):
        views_schema(["a", "a"])
    with pytest.raises(TypeError):
        views_schema("fold0")


# -- round trip ------------------------------------------------------------------------------------------


def test_append_flush_finalize_round_trip(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert store.flush() is None  # nothing buffered: no journal
    assert not journal_dir(store.out).exists()

    store.append(scores_rows(["b", "a"]), views_rows(["b", "a"]))
    assert store.pending == 2
    part = store.flush()
    assert store.pending == 0
    assert part is not None and part.name == "part-000001.scores.parquet"
    assert (part.parent / "part-000001.views.parquet").exists()
    assert not store.out.exists()  # the final file appears only at finalize
    store.append(scores_rows(["c"], status="failed"), views_rows(["c"], per_study=1))
    store.finalize()

    scores = pq.read_table(store.out)
    assert scores.schema.equals(SCORES_SCHEMA)  # explicit schema survives Parquet
    assert scores["study_key"].to_pylist() == ["a", "b", "c"]
    assert scores["status"].to_pylist() == ["ok", "ok", "failed"]
    assert scores["scored_at"][0].as_py() == SCORED_AT.replace(microsecond=123000)
    views = pq.read_table(store.views_out)
    assert views.schema.equals(VIEWS_SCHEMA)
    assert views["path"].to_pylist() == ["/data/a/0.dcm", "/data/a/1.dcm", "/data/b/0.dcm", "/data/b/1.dcm",
                                         "/data/c/0.dcm"]  # fmt: skip

    metadata = read_run_metadata(store.out)
    assert metadata["bundle_id"] == BUNDLE and metadata["run"] == 1
    assert metadata["output_counts"] == {"studies": 3, "status": {"ok": 2, "failed": 1}, "views": 5, "not_seen": 3}
    assert read_run_metadata(store.views_out)["output_counts"]["views"] == 5
    assert not journal_dir(store.out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet", "scores.parquet.views.parquet",
                                                         "views.parquet"]  # no temps


def test_without_views_output_the_store_still_keeps_the_views(tmp_path: Path) -> None:
    store = make_store(tmp_path, views=False)
    store.append(scores_rows(["a"]), views_rows(["a"]))
    store.finalize()
    assert final_scores(tmp_path)["study_key"] == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet", "scores.parquet.views.parquet"]
    assert pq.read_table(store.views_store)["path"].to_pylist() == ["/data/a/0.dcm", "/data/a/1.dcm"]


def test_finalize_with_nothing_writes_empty_files(tmp_path: Path) -> None:
    make_store(tmp_path).finalize()
    assert pq.read_table(tmp_path / "scores.parquet").num_rows == 0
    assert pq.read_table(tmp_path / "views.parquet").schema.equals(VIEWS_SCHEMA)


# -- reruns ----------------------------------------------------------------------------------------------


def test_previous_returns_what_was_written(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    assert store.previous() == {}
    store.append(scores_rows(["a", "b"], fingerprint="fp-1"), views_rows(["a", "b"]))
    store.flush()
    store.append(scores_rows(["c"], fingerprint="fp-2", status="skipped"))
    store.flush()
    journal_only = store.previous()  # before finalize: from the journal
    store.finalize()
    after = make_store(tmp_path).previous()  # a new run: from the final file
    want = {
        "a": PreviousStudy("fp-1", BUNDLE, "ok", None, True),
        "b": PreviousStudy("fp-1", BUNDLE, "ok", None, True),
        "c": PreviousStudy("fp-2", BUNDLE, "skipped", None, False),
    }
    assert journal_only == want and after == want


def test_rescored_study_replaces_its_row_and_all_its_view_rows(tmp_path: Path) -> None:
    first = make_store(tmp_path)
    first.append(scores_rows(["a", "b", "c"], fingerprint="old"), views_rows(["a", "b", "c"], prob=0.1))
    first.finalize()

    second = make_store(tmp_path)
    # b changed on disk: now 3 files. a and c are unchanged: the caller skips them (not appended).
    second.append(scores_rows(["b"], fingerprint="new"), views_rows(["b"], per_study=3, prob=0.9))
    second.finalize()

    scores = final_scores(tmp_path)
    assert scores["study_key"] == ["a", "b", "c"]
    assert scores["fingerprint"] == ["old", "new", "old"]
    views = final_views(tmp_path)
    assert len(views["path"]) == len(set(views["path"])) == 7
    by_study = {key: [] for key in "abc"}
    for key, prob in zip(views["study_key"], views["prob"], strict=True):
        by_study[key].append(round(prob, 3))
    assert by_study == {"a": [0.1, 0.1], "b": [0.9, 0.9, 0.9], "c": [0.1, 0.1]}


def test_latest_append_wins_within_a_buffer_and_across_parts(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.append(scores_rows(["a", "b"], fingerprint="v1"), views_rows(["a", "b"], prob=0.1))
    # a again in the same buffer: replaces its first rows
    store.append(scores_rows(["a"], fingerprint="v2"), views_rows(["a"], per_study=1, prob=0.2))
    store.flush()
    store.append(scores_rows(["b"], fingerprint="v3"), views_rows(["b"], per_study=3, prob=0.3))
    store.flush()
    store.finalize()
    scores = final_scores(tmp_path)
    assert scores["study_key"] == ["a", "b"] and scores["fingerprint"] == ["v2", "v3"]
    views = final_views(tmp_path)
    assert views["study_key"] == ["a", "b", "b", "b"]
    assert [round(p, 3) for p in views["prob"]] == [0.2, 0.3, 0.3, 0.3]


def test_rescored_study_without_view_rows_loses_its_old_ones(tmp_path: Path) -> None:
    first = make_store(tmp_path)
    first.append(scores_rows(["a", "b"]), views_rows(["a", "b"]))
    first.finalize()
    second = make_store(tmp_path)
    second.append(scores_rows(["a"], fingerprint="new"))  # a rescored, no view rows given
    second.finalize()
    assert final_views(tmp_path)["study_key"] == ["b", "b"]


def test_member_columns_may_change_between_runs(tmp_path: Path) -> None:
    first = make_store(tmp_path)
    first.append(scores_rows(["a"]), views_rows(["a"]))
    first.finalize()
    new_schema = views_schema(["fold0", "fold9"])  # the bundle changed its members
    second = make_store(tmp_path, schema=new_schema)
    second.finalize()
    views = pq.read_table(tmp_path / "views.parquet")
    assert views.schema.equals(new_schema)
    assert views["prob_fold9"].to_pylist() == [None, None]  # kept rows of a study not rescored
    assert views["prob_fold0"].to_pylist() == [0.25, 0.25]


# -- validation and foreign files ------------------------------------------------------------------------


def test_append_rejects_rows_that_would_corrupt_the_results(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(ValueError, match="missing column"):
        store.append(scores_rows(["a"]).drop_columns(["fingerprint"]))
    with pytest.raises(ValueError, match="unexpected column"):
        store.append(scores_rows(["a"]).append_column("extra", pa.array([1])))
    with pytest.raises(ValueError, match="repeat a study_key"):
        store.append(scores_rows(["a", "a"]))
    with pytest.raises(ValueError, match="study status"):
        store.append(scores_rows(["a"], status="done"))
    with pytest.raises(ValueError, match="not in the scores rows"):
        store.append(scores_rows(["a"]), views_rows(["z"]))
    assert store.flush() is None  # nothing was buffered by the failed appends


def test_unreadable_journal_part_names_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.journal.mkdir()
    foreign = store.journal / "part-000001.scores.parquet"
    foreign.write_bytes(b"not parquet at all")
    with pytest.raises(ResultsFileError, match="part-000001.scores.parquet"):
        store.previous()
    pq.write_table(pa.table({"study_key": ["a"], "something": [1]}), foreign)
    with pytest.raises(ResultsFileError, match=r"part-000001\.scores\.parquet.*missing column"):
        store.finalize()


def test_finalize_removes_a_killed_writers_temp_files(tmp_path: Path) -> None:
    stale = tmp_path / ".scores.parquet.4242-deadbeef.tmp"
    stale.write_bytes(b"half a file")
    make_store(tmp_path).finalize()
    assert not stale.exists()


# -- crash and resume ------------------------------------------------------------------------------------

CRASHING_RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_results_store import make_store, scores_rows, views_rows
store = make_store(Path(sys.argv[1]))
store.append(scores_rows(["a", "b"], fingerprint="new"), views_rows(["a", "b"], prob=0.5))
store.flush()
store.append(scores_rows(["c"], fingerprint="new"), views_rows(["c"], prob=0.5))
store.flush()
store.append(scores_rows(["d"], fingerprint="new"), views_rows(["d"], prob=0.5))  # never flushed
print("flushed", flush=True)
time.sleep(60)
"""


def start_child(script: str, *args: str) -> subprocess.Popen[str]:
    """A child python that prints one line when it reached the point where it should be killed."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = child.stdout.readline()  # "" if the child died first
    if not line.strip():
        child.kill()
        pytest.fail(f"child did not get ready: {child.communicate(timeout=10)[1]}")
    return child


def sigkill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    child.stdout.close()
    child.stderr.close()


def test_killed_run_loses_only_unflushed_studies_and_rerun_has_no_duplicates(tmp_path: Path) -> None:
    earlier = make_store(tmp_path)  # a finished run before the crash
    earlier.append(scores_rows(["a", "x"], fingerprint="old"), views_rows(["a", "x"], prob=0.1))
    earlier.finalize()

    sigkill(start_child(CRASHING_RUN, str(tmp_path), str(TESTS_DIR)))
    assert final_scores(tmp_path)["study_key"] == ["a", "x"]  # the final file is untouched by the crash

    resumed = make_store(tmp_path)
    previous = resumed.previous()
    assert sorted(previous) == ["a", "b", "c", "x"]  # d was never flushed: lost, rescored below
    assert previous["a"].fingerprint == "new" and previous["x"].fingerprint == "old"
    resumed.append(scores_rows(["c", "d"], fingerprint="newer"), views_rows(["c", "d"], prob=0.9))
    resumed.finalize()

    scores = final_scores(tmp_path)
    assert scores["study_key"] == ["a", "b", "c", "d", "x"]
    assert scores["fingerprint"] == ["new", "new", "newer", "newer", "old"]
    views = final_views(tmp_path)
    assert len(views["path"]) == len(set(views["path"])) == 10
    probs = {key: round(p, 3) for key, p in zip(views["study_key"], views["prob"], strict=True)}
    assert probs == {"a": 0.5, "b": 0.5, "c": 0.9, "d": 0.9, "x": 0.1}
    assert not journal_dir(tmp_path / "scores.parquet").exists()


# -- lock ------------------------------------------------------------------------------------------------

TRY_LOCK = """
import sys
from mammo_batch.engine.results import OutputLock, OutputLocked
try:
    with OutputLock(sys.argv[1]):
        print("acquired")
except OutputLocked as error:
    print(error)
    sys.exit(3)
"""

HOLD_LOCK = """
import sys, time
from mammo_batch.engine.results import OutputLock
lock = OutputLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_second_process_gets_output_locked(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    with OutputLock(out) as lock:
        assert lock.held and lock.path == tmp_path / "scores.parquet.lock"
        child = subprocess.run([sys.executable, "-c", TRY_LOCK, str(out)], capture_output=True, text=True)
        assert child.returncode == 3, child.stderr
        assert "scores.parquet.lock" in child.stdout and "another run is writing this output" in child.stdout
        assert f"process {os.getpid()}" in child.stdout
    child = subprocess.run([sys.executable, "-c", TRY_LOCK, str(out)], capture_output=True, text=True)
    assert child.returncode == 0 and "acquired" in child.stdout  # released on exit


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    holder = start_child(HOLD_LOCK, str(out))
    with pytest.raises(OutputLocked, match="another run is writing this output"):
        OutputLock(out).acquire()
    sigkill(holder)
    with OutputLock(out) as lock:  # the kernel dropped the dead process's lock
        assert lock.held


def test_lock_excludes_a_second_holder_in_the_same_process(tmp_path: Path) -> None:
    out = tmp_path / "scores.parquet"
    with OutputLock(out), pytest.raises(OutputLocked):
        OutputLock(out).acquire()
    lock = OutputLock(out).acquire()
    lock.release()
    assert not lock.held


# -- fingerprint -----------------------------------------------------------------------------------------


def test_fingerprint_follows_size_and_mtime_only(tmp_path: Path) -> None:
    a, b = tmp_path / "a.dcm", tmp_path / "b.dcm"
    a.write_bytes(b"1234")
    b.write_bytes(b"abcd")
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    base = study_fingerprint([str(a), str(b)])
    assert len(base) == 64 and int(base, 16) >= 0
    assert study_fingerprint([b, a]) == base  # order and path type do not matter
    assert study_fingerprint([str(a), str(b), str(a)]) == base  # a path listed twice is one file

    a.write_bytes(b"5678")  # same size, new content, mtime put back: not read, not noticed
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    assert study_fingerprint([a, b]) == base

    os.utime(a, ns=(1_000_000_000, 3_000_000_000))  # mtime
    assert study_fingerprint([a, b]) != base
    os.utime(a, ns=(1_000_000_000, 1_000_000_001))  # by one nanosecond, where the file system keeps ns
    if os.stat(a).st_mtime_ns == 1_000_000_001:
        assert study_fingerprint([a, b]) != base
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    assert study_fingerprint([a, b]) == base

    a.write_bytes(b"12345")  # size
    os.utime(a, ns=(1_000_000_000, 1_000_000_000))
    assert study_fingerprint([a, b]) != base


def test_fingerprint_of_missing_files(tmp_path: Path) -> None:
    gone, here = tmp_path / "gone.dcm", tmp_path / "here.dcm"
    here.write_bytes(b"x")
    with_missing = study_fingerprint([gone, here])
    assert with_missing == study_fingerprint([here, gone])  # stable
    assert with_missing != study_fingerprint([here])  # the missing file still counts
    gone.write_bytes(b"")
    assert study_fingerprint([gone, here]) != with_missing


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ResultStore(tmp_path / "s.parquet", VIEWS_SCHEMA, {"when": object()})
    store = ResultStore(tmp_path / "s.parquet", VIEWS_SCHEMA, {"args": {"threshold": 0.5}})
    with pytest.raises(TypeError):
        store.finalize(metadata={"timings": {1, 2}})  # a set is not JSON: refused before writing anything
    assert not (tmp_path / "s.parquet").exists()
    store.finalize(metadata={"timings": {"total_s": 1.5}})
    document = json.loads(pq.read_schema(tmp_path / "s.parquet").metadata[b"mammo_batch"])
    assert document["args"] == {"threshold": 0.5} and document["timings"] == {"total_s": 1.5}

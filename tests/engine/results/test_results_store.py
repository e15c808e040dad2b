"""Results on disk: the file-row state, reconciliation, derived views and studies, crash recovery, lock.

Real files in tmp_path, real child processes killed with SIGKILL; no mocks. Expected values are
written out by hand here, not computed with the engine's own functions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mammo_batch.engine.results import OutputLock, OutputLocked, ResultsFileError, ResultStore
from mammo_batch.engine.results.derive import derived_scores, derived_views
from mammo_batch.engine.results.state import reconcile, state_schema, under_roots
from mammo_batch.engine.results.store import journal_dir, state_path
from mammo_batch.engine.results.tables import Rules

BUNDLE, OTHER = "demo@0123456789ab", "other@ba9876543210"
NIGHT1 = datetime(2026, 11, 28, 6, 0, 0, tzinfo=timezone.utc)
NIGHT2 = datetime(2026, 11, 29, 6, 0, 0, tzinfo=timezone.utc)
TESTS_DIR = Path(__file__).resolve().parent
RULES = {BUNDLE: Rules("mean", "max", 0.5), OTHER: Rules("mean", "max", 0.3)}


def file_rows(specs: list[dict]) -> pa.Table:
    """File rows from short specs: path, key (accession), lat, prob (None: not scored), size, bundle ..."""
    rows = []
    for spec in specs:
        prob = spec.get("prob")
        rows.append({
            "path": spec["path"], "status": spec.get("status", "ok"), "reason": spec.get("reason", ""),
            "detail": spec.get("detail", ""), "sop_instance_uid": spec.get("sop", spec["path"].replace("/", ".")[1:]),
            "patient_id": spec.get("patient", "P1"), "accession_number": spec.get("key", "A1"),
            "study_instance_uid": "1.2.3", "modality": "MG", "laterality": spec.get("lat", "L"), "view": "CC",
            "photometric": "MONOCHROME2", "size": spec.get("size", 100), "mtime_ns": spec.get("mtime", 1),
            "study_key": spec.get("key", "A1"), "scorable": spec.get("scorable", True),
            "bundle_id": spec.get("bundle", BUNDLE), "scored_at": NIGHT1, "last_seen": NIGHT1,
            "prob": prob, "prob_fold0": prob,
        })
    return pa.Table.from_pylist(rows, schema=state_schema(["prob_fold0"]))


def found(rows: pa.Table) -> pa.Table:
    """Rows as tonight's discovery gives them: no outcome of scoring yet."""
    return rows.drop_columns(["bundle_id", "scored_at", "last_seen", "prob", "prob_fold0", "study_key"])


# -- reconciliation --------------------------------------------------------------------------------------


def test_reconcile_sorts_files_into_new_changed_unchanged_gone_and_outside() -> None:
    stored = file_rows([
        dict(path="/night/a/1.dcm", prob=0.2), dict(path="/night/a/2.dcm", prob=0.4),
        dict(path="/night/b/1.dcm", prob=0.6),  # deleted tonight
        dict(path="/night/a/3.dcm", prob=0.1, bundle=OTHER),  # same file, another bundle
        dict(path="/night/a/4.dcm", prob=None, status="failed", reason="decode_error"),  # retried
        dict(path="/elsewhere/c/1.dcm", prob=0.9),
    ])
    tonight = file_rows([
        dict(path="/night/a/1.dcm"), dict(path="/night/a/2.dcm", size=101),  # rewritten
        dict(path="/night/a/3.dcm"), dict(path="/night/a/4.dcm"), dict(path="/night/a/5.dcm"),
    ])
    night = reconcile(found(tonight), stored, ["/night"], BUNDLE, NIGHT2)
    assert night.counts == {"new": 1, "changed": 3, "unchanged": 1, "gone": 1, "outside": 1}
    rows = {row["path"]: row for row in night.rows.to_pylist()}
    assert sorted(rows) == ["/elsewhere/c/1.dcm", "/night/a/1.dcm", "/night/a/2.dcm", "/night/a/3.dcm",
                            "/night/a/4.dcm", "/night/a/5.dcm"]
    assert [p for p, r in sorted(rows.items()) if r["to_score"]] == [
        "/night/a/2.dcm", "/night/a/3.dcm", "/night/a/4.dcm", "/night/a/5.dcm"]
    assert rows["/night/a/1.dcm"]["prob"] == pytest.approx(0.2) and rows["/night/a/1.dcm"]["scored_at"] == NIGHT1
    assert rows["/night/a/1.dcm"]["last_seen"] == NIGHT2
    assert rows["/night/a/2.dcm"]["prob"] is None  # its old probability was for other pixels
    assert rows["/elsewhere/c/1.dcm"]["prob"] == pytest.approx(0.9)  # outside: untouched
    assert rows["/elsewhere/c/1.dcm"]["last_seen"] == NIGHT1


def test_roots_are_prefixes_of_whole_path_components(tmp_path: Path) -> None:
    root = str(tmp_path / "night")
    paths = pa.array([f"{root}/a.dcm", f"{root}2/a.dcm", root, str(tmp_path / "other.dcm")])
    assert under_roots(paths, [root]).to_pylist() == [True, False, True, False]


def test_rescore_marks_every_scorable_found_file() -> None:
    stored = file_rows([dict(path="/n/1.dcm", prob=0.2), dict(path="/n/2.dcm", prob=None, scorable=False,
                                                                status="skipped", reason="not_dicom")])
    night = reconcile(found(stored), stored, ["/n"], BUNDLE, NIGHT2, rescore=True)
    assert night.rows["to_score"].to_pylist() == [True, False]


# -- derived views and studies ---------------------------------------------------------------------------


def derive(rows: pa.Table) -> tuple[dict, dict]:
    views = derived_views(rows)
    scores = derived_scores(views, rows, RULES, "cfg", "0.1.0")
    return ({r["path"]: r for r in views.to_pylist()}, {r["study_key"]: r for r in scores.to_pylist()})


def test_a_damaged_copy_does_not_hide_the_intact_one() -> None:
    rows = file_rows([
        dict(path="/a/copy1.dcm", sop="1.9", status="failed", reason="decode_error", prob=None),
        dict(path="/a/copy2.dcm", sop="1.9", prob=0.8),
        dict(path="/a/other.dcm", sop="1.8", lat="R", prob=0.2),
    ])
    views, studies = derive(rows)
    assert views["/a/copy2.dcm"]["status"] == "ok"
    assert (views["/a/copy1.dcm"]["status"], views["/a/copy1.dcm"]["reason"]) == ("skipped", "duplicate")
    assert "copy2.dcm" in views["/a/copy1.dcm"]["detail"] and "decode_error" in views["/a/copy1.dcm"]["detail"]
    study = studies["A1"]
    assert (study["status"], study["n_views"], study["n_views_skipped"]) == ("ok", 2, 1)
    assert study["score"] == pytest.approx(0.8) and study["recall"] is True


def test_two_intact_copies_count_once_and_all_failed_copies_fail_one_view() -> None:
    rows = file_rows([
        dict(path="/a/1.dcm", sop="1.9", prob=0.8), dict(path="/a/2.dcm", sop="1.9", prob=0.8),
        dict(path="/b/1.dcm", key="B", sop="2.9", status="failed", reason="decode_error", prob=None),
        dict(path="/b/2.dcm", key="B", sop="2.9", status="failed", reason="timeout", prob=None),
    ])
    views, studies = derive(rows)
    assert [views[p]["status"] for p in ("/a/1.dcm", "/a/2.dcm")] == ["ok", "skipped"]
    assert views["/a/2.dcm"]["prob"] is None  # a skipped copy carries no probability
    assert [views[p]["status"] for p in ("/b/1.dcm", "/b/2.dcm")] == ["failed", "skipped"]
    assert studies["A1"]["n_views"] == 1
    assert studies["B"]["status"] == "failed" and studies["B"]["error"].startswith("1 of 1 views failed")


def test_each_study_is_judged_by_its_own_bundle() -> None:
    rows = file_rows([dict(path="/a/1.dcm", prob=0.4), dict(path="/b/1.dcm", key="B", prob=0.4, bundle=OTHER)])
    _, studies = derive(rows)
    assert (studies["A1"]["threshold"], studies["A1"]["recall"]) == (0.5, False)
    assert (studies["B"]["threshold"], studies["B"]["recall"]) == (0.3, True)
    assert studies["B"]["bundle_id"] == OTHER


def test_breast_and_study_scores_follow_the_rules() -> None:
    rows = file_rows([dict(path="/a/1.dcm", lat="L", prob=0.2), dict(path="/a/2.dcm", lat="L", prob=0.4),
                      dict(path="/a/3.dcm", lat="R", prob=0.5)])
    _, studies = derive(rows)
    row = studies["A1"]
    assert row["left_score"] == pytest.approx(0.3) and row["right_score"] == pytest.approx(0.5)
    assert row["score"] == pytest.approx(0.5) and (row["n_views"], row["status"]) == (3, "ok")


# -- the store on disk -----------------------------------------------------------------------------------


def make_store(tmp_path: Path) -> ResultStore:
    return ResultStore(tmp_path / "scores.parquet", {"run": 1}, views_out=tmp_path / "views.parquet")


def finish(store: ResultStore, rows: pa.Table) -> None:
    views = derived_views(rows)
    store.finalize(rows, views, derived_scores(views, rows, RULES, "cfg", "0.1.0"), RULES, {"done": True})


def test_finalize_then_load_round_trips_rows_rules_and_scores(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    rows = file_rows([dict(path="/a/1.dcm", prob=0.4), dict(path="/b/1.dcm", key="B", prob=0.7, bundle=OTHER)])
    finish(store, rows)
    loaded = make_store(tmp_path).load()
    assert sorted(loaded.rows["path"].to_pylist()) == ["/a/1.dcm", "/b/1.dcm"]
    assert loaded.bundles == RULES
    assert loaded.scores["study_key"].to_pylist() == ["A1", "B"]
    assert pq.read_table(tmp_path / "views.parquet")["path"].to_pylist() == ["/a/1.dcm", "/b/1.dcm"]


def test_member_columns_of_earlier_bundles_are_kept(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    finish(store, file_rows([dict(path="/a/1.dcm", prob=0.4)]))
    later = file_rows([dict(path="/b/1.dcm", key="B", prob=0.6)]).rename_columns(
        [*state_schema().names, "prob_fold9"])
    store = make_store(tmp_path)
    merged = pa.concat_tables([store.load().rows, later], promote_options="default")
    finish(store, merged)
    views = pq.read_table(tmp_path / "views.parquet").to_pydict()
    assert views["prob_fold0"] == [pytest.approx(0.4), None] and views["prob_fold9"] == [None, pytest.approx(0.6)]


def test_unreadable_journal_part_names_the_file(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.journal.mkdir()
    foreign = store.journal / "part-000001.files.parquet"
    foreign.write_bytes(b"not parquet at all")
    with pytest.raises(ResultsFileError, match="part-000001.files.parquet"):
        store.load()
    pq.write_table(pa.table({"path": ["a"], "something": [1]}), foreign)
    with pytest.raises(ResultsFileError, match="not a mammo-batch state file"):
        store.load()


def test_finalize_removes_a_killed_writers_temp_files(tmp_path: Path) -> None:
    stale = tmp_path / ".scores.parquet.files.parquet.4242-deadbeef.tmp"
    stale.write_bytes(b"half a file")
    finish(make_store(tmp_path), file_rows([]))
    assert not stale.exists()


def test_metadata_must_be_json(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        ResultStore(tmp_path / "s.parquet", {"when": object()})


# -- crash and resume ------------------------------------------------------------------------------------

CRASHING_RUN = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_results_store import make_store, file_rows
store = make_store(Path(sys.argv[1]))
store.flush_every = 1
store.append(file_rows([dict(path="/a/1.dcm", prob=0.5, mtime=2)]))
store.append(file_rows([dict(path="/c/1.dcm", key="C", prob=0.5)]))
store.flush_every = 100
store.append(file_rows([dict(path="/d/1.dcm", key="D", prob=0.5)]))  # never flushed
print("flushed", flush=True)
time.sleep(60)
"""


def start_child(script: str, *args: str) -> subprocess.Popen[str]:
    """A child python that prints one line when it reached the point where it should be killed."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
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


def test_killed_run_loses_only_unflushed_rows_and_the_resumed_state_has_each_file_once(tmp_path: Path) -> None:
    finish(make_store(tmp_path), file_rows([dict(path="/a/1.dcm", prob=0.1), dict(path="/x/1.dcm", key="X",
                                                                                 prob=0.1)]))
    before = pq.read_table(tmp_path / "scores.parquet")
    sigkill(start_child(CRASHING_RUN, str(tmp_path), str(TESTS_DIR)))
    assert pq.read_table(tmp_path / "scores.parquet").equals(before)  # the outputs are untouched by the crash

    loaded = make_store(tmp_path).load().rows
    probs = dict(zip(loaded["path"].to_pylist(), loaded["prob"].to_pylist(), strict=True))
    assert probs == {"/a/1.dcm": 0.5, "/c/1.dcm": 0.5, "/x/1.dcm": pytest.approx(0.1)}  # /d never flushed
    finish(make_store(tmp_path), loaded)
    assert pq.read_table(state_path(tmp_path / "scores.parquet"))["path"].to_pylist() == [
        "/a/1.dcm", "/c/1.dcm", "/x/1.dcm"]
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

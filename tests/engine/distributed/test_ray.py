"""`--engine ray` on a real local Ray cluster: same outputs and guarantees as `--engine local`.

Real DICOM files, real ONNX Runtime sessions in real Ray actors, on the session's Ray (the
`ray_cluster` fixture, tests/conftest.py). The per-file fault scenarios both engines share (crash,
hang, exception, SIGTERM) are in tests/engine/executors/test_executor_scenarios.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from onnx_members import write_test_bundle
from test_score import corrupt_copy

from mammo_batch import score
from mammo_batch.engine.bundle import load_bundle
from mammo_batch.synth import write_studies

ray = pytest.importorskip("ray")

MEMBERS = [
    dict(name="wide", fold=0, height=96, width=48, dtype="uint8", weight=8.0, bias=-3.0, region=None),
    dict(name="upper", fold=1, height=64, width=32, dtype="uint8", weight=6.0, bias=-2.0,
         region=(0, 32, 0, 16)),
]
VIEW_COLUMNS = ["path", "study_key", "status", "reason", "prob", "prob_wide", "prob_upper"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), MEMBERS, threshold=0.5)


@pytest.fixture(scope="module")
def backlog(tmp_path_factory) -> Path:
    """40 small studies: enough journal parts that a kill lands between the first and the end."""
    root = tmp_path_factory.mktemp("backlog")
    write_studies(root, 40, seed=9, size=(128, 104), layout="accession")
    return root


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    """6 studies with bad files: one damaged view (partial), a study of damaged views (failed), an
    empty file and a dangling link (failed files), besides the CSVs synth writes (not DICOM)."""
    root = tmp_path_factory.mktemp("studies")
    write_studies(root, 6, seed=0, size=(256, 208), layout="accession")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    first = sorted(folders[0].glob("*.dcm"))[0]
    corrupt_copy(first, first)
    for path in folders[1].glob("*.dcm"):
        corrupt_copy(path, path)
    (folders[2] / "empty.dcm").write_bytes(b"")
    (folders[3] / "gone.dcm").symlink_to(root / "no-such-file.dcm")
    return root


def read_scores(path: Path) -> pd.DataFrame:
    """Scores rows without run times (last_seen, scored_at), and errors without the memory addresses
    that decoders put in them."""
    scores = pq.read_table(path).to_pandas().set_index("study_key").sort_index()
    scores = scores.drop(columns=["last_seen", "scored_at"])
    scores["error"] = scores["error"].str.replace(r"0x[0-9a-f]+", "0x", regex=True)
    return scores


def read_views(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()[VIEW_COLUMNS].set_index("path").sort_index()


def run(studies: Path, bundle: Path, out: Path, engine: str, **options):
    return score([studies], out=out, models=bundle, engine=engine, workers=2, progress=False, **options)


def test_ray_scores_and_statuses_equal_local(ray_cluster, studies, bundle, tmp_path):
    local = run(studies, bundle, tmp_path / "local.parquet", "local", views_out=tmp_path / "local_views.parquet")
    remote = run(studies, bundle, tmp_path / "ray.parquet", "ray", views_out=tmp_path / "ray_views.parquet")
    assert remote.exit_code == local.exit_code == 3  # partial and failed studies
    assert remote.counts == local.counts and remote.counts["partial"] == 1 and remote.counts["failed"] == 1
    assert remote.views == local.views > 0
    pd.testing.assert_frame_equal(read_scores(tmp_path / "ray.parquet"), read_scores(tmp_path / "local.parquet"),
                                  check_exact=False, atol=1e-6)
    views = read_views(tmp_path / "ray_views.parquet")
    pd.testing.assert_frame_equal(views, read_views(tmp_path / "local_views.parquet"), check_exact=False, atol=1e-6)
    assert {"decode_error", "empty_file", "broken_link", "not_dicom"} <= set(views["reason"])
    assert remote.engine == "ray"
    assert 1 <= remote.cluster["nodes_used"] <= remote.cluster["nodes"]  # 2 on benchmarks/ray_two_nodes.py's cluster
    assert remote.cluster["actors"] >= 1 and remote.cluster["gpus_used"] == 0
    metadata = pq.read_schema(tmp_path / "ray.parquet").metadata
    assert b'"engine": {"actors"' in metadata[b"mammo_batch"]


def test_a_rerun_skips_unchanged_studies(ray_cluster, studies, bundle, tmp_path):
    out = tmp_path / "scores.parquet"
    first = run(studies, bundle, out, "ray")
    before = read_scores(out)
    again = run(studies, bundle, out, "ray")
    assert (again.scored, again.kept) == (2, 4)  # partial and failed studies are retried, ok ones kept
    pd.testing.assert_frame_equal(read_scores(out), before)
    touched = sorted(studies.glob("*/*.dcm"))[-1]  # a later study: ok, so kept until its file changes
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    third = run(studies, bundle, out, "ray")
    assert (third.scored, third.kept) == (3, 3)
    assert first.studies == again.studies == third.studies == 6
    pd.testing.assert_frame_equal(read_scores(out).drop(columns="fingerprint"), before.drop(columns="fingerprint"))


def journalled_ok(journal: Path) -> set[str]:
    """Keys of the studies in a journal's complete parts (a study's scored files are journalled together,
    and parts are written atomically)."""
    keys: set[str] = set()
    for part in journal.glob("part-*.files.parquet"):
        try:
            table = pq.read_table(part, columns=["study_key"]).to_pandas()
        except (FileNotFoundError, OSError):  # the run finished and retired its journal meanwhile
            continue
        keys |= set(table["study_key"])
    return keys


def test_a_killed_driver_resumes_to_the_same_output(ray_cluster, backlog, bundle, tmp_path):
    studies = backlog
    reference = tmp_path / "reference.parquet"
    run(studies, bundle, reference, "local")
    for attempt in range(3):  # the kill races the end of a short run: a run that won the race is tried again
        out = tmp_path / f"killed{attempt}.parquet"
        journal = Path(f"{out}.journal")
        command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--out", str(out),
                   "--models", str(bundle), "--engine", "ray", "--ray-address", ray_cluster, "--quiet",
                   "--workers", "1", "--flush-every", "1", "--batch-size", "1"]
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        deadline = time.monotonic() + 300  # a busy CI machine starts the driver and its actors slowly
        while time.monotonic() < deadline and child.poll() is None and not journalled_ok(journal):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):  # it may have finished (and its group with it)
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        if child.returncode == -signal.SIGKILL and not out.exists():
            break
    assert child.returncode == -signal.SIGKILL and not out.exists(), "the driver finished before it was killed"
    done = journalled_ok(journal)
    assert len(done) >= 1  # killed after journalling, before the final write
    resumed = run(studies, bundle, out, "ray")
    assert resumed.kept == len(done)  # the journalled ok studies were not scored again
    got = read_scores(out)
    assert got.index.is_unique and not journal.exists()
    pd.testing.assert_frame_equal(got, read_scores(reference), check_exact=False, atol=1e-6)
    views = pq.read_table(f"{out}.views.parquet").to_pandas()
    assert not views.duplicated(["path"]).any()


def test_prepare_actors_fail_views_not_blocks(ray_cluster, studies, bundle):
    """The prepare stage alone (called in this process): a path this node cannot read and a damaged
    file fail their views, the good view gets its images."""
    import pyarrow as pa

    from mammo_batch.engine.distributed.prepare import PrepareStage, image_column

    loaded = load_bundle(bundle)
    dtypes = {m.input_size: m.input.dtype for m in loaded.members}
    folders = sorted(p for p in studies.iterdir() if p.is_dir())
    good = sorted(folders[4].glob("*.dcm"))[0]
    damaged = sorted(folders[1].glob("*.dcm"))[0]
    rows = pa.Table.from_pylist([{"view_id": i, "path": str(p)} for i, p in
                                 enumerate([good, studies / "not-mounted.dcm", damaged])])
    stage = PrepareStage(dtypes, loaded.settings, time_limit_s=60)
    try:
        out = stage(rows)
    finally:
        stage.preparer.close()
    assert list(out["view_id"]) == [0, 1, 2]
    assert list(out["reason"]) == ["", "not_readable_on_node", "decode_error"]
    assert "cannot read this path" in out["error"][1]
    for size in dtypes:
        images = out[image_column(size)]
        assert images.shape == (3, *size) and images[0].any() and not images[1:].any()


def test_engine_local_never_imports_ray(studies, bundle, tmp_path):
    code = ("import sys, mammo_batch; "
            f"mammo_batch.score([{str(studies)!r}], out={str(tmp_path / 's.parquet')!r}, models={str(bundle)!r}, "
            "workers=1, progress=False); print('ray' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_ray_views_batch_across_studies_and_match_numpy(ray_cluster, studies, bundle, tmp_path):
    """Batches larger than a study: probabilities still land on their own views."""
    out = tmp_path / "scores.parquet"
    small = run(studies, bundle, out, "ray", batch_size=1, views_out=tmp_path / "v1.parquet")
    large = run(studies, bundle, tmp_path / "b.parquet", "ray", batch_size=16, views_out=tmp_path / "v16.parquet")
    assert small.views == large.views
    a, b = read_views(tmp_path / "v1.parquet"), read_views(tmp_path / "v16.parquet")
    np.testing.assert_allclose(a["prob"].to_numpy(float), b["prob"].to_numpy(float), atol=1e-6)


@pytest.mark.parametrize("decoder", ["nvimgcodec", "dali"])
def test_an_option_ray_cannot_honour_exits_2_before_any_work(studies, bundle, tmp_path, decoder):
    out = tmp_path / "scores.parquet"
    result = subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--out", str(out),
                             "--models", str(bundle), "--engine", "ray", "--decoder", decoder, "--quiet"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert f"--decoder {decoder} is not supported" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.iterdir())

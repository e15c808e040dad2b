"""`mammo-batch score` on a seeded corpus of >= 500 damaged files (tests/fuzz_corpus.py): no crash
(exit 3, not 1), no hang, every file accounted for in views.parquet with a reason, no traceback on
stderr, peak memory bounded. The scoring runs in a subprocess under a wall-clock timeout and an
address-space limit (so that a runaway allocation fails there instead of starving the machine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from fuzz_corpus import build_corpus, huge_matrix
from onnx_members import write_test_bundle

from mammo_batch.synth import write_studies

SEED = 12
MEMBERS = [dict(name="m", fold=0, height=64, width=32, dtype="uint8", weight=8.0, bias=-3.0, region=None)]
WALL_S = 120  # generous for a loaded 2-core box; the run takes ~10 s on an idle one
ADDRESS_SPACE = 8 << 30  # bytes: a decoder that believes a 65535 x 65535 header hits this
PEAK_RSS_MB = 1500  # per process (scheduler or worker); ~600 MB measured
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")

# Runs the command under limits and prints its peak RSS (the largest of it and its descendants).
RUNNER = """
import json, resource, subprocess, sys
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
code = subprocess.run(sys.argv[2:]).returncode
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(json.dumps({"code": code, "peak_rss_mb": peak / 1024}), file=sys.stderr)
"""


def score_under_limits(root: Path, bundle: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    command = [sys.executable, "-c", RUNNER, str(ADDRESS_SPACE), sys.executable, "-m",
               "mammo_batch.engine.cli", "score", str(root), "--models", str(bundle), "--out",
               str(out / "scores.parquet"), "--views", str(out / "views.parquet"), "--quiet",
               "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, errors="replace",  # garbage echoed
                            timeout=WALL_S)  # no hang
    *log, last = result.stderr.rstrip().splitlines()
    measured = json.loads(last)
    result.stderr = "\n".join(log)
    result.returncode = measured["code"]
    return result, measured


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return write_test_bundle(tmp_path_factory.mktemp("bundle"), MEMBERS, threshold=0.5)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, bundle):
    root = tmp_path_factory.mktemp("fuzz")
    corpus = build_corpus(root / "corpus", seed=SEED, studies=15, huge=False)
    result, measured = score_under_limits(corpus.root, bundle, root)
    views = pq.read_table(root / "views.parquet").to_pandas() if (root / "views.parquet").exists() else None
    return corpus, result, measured, views


def test_the_corpus_is_big_and_varied(fuzzed):
    corpus, *_ = fuzzed
    kinds = corpus.by_kind()
    assert len(corpus.files) >= 500
    for kind in ("truncate", "flip_header", "flip_pixels", "wrong_length", "lying_dimensions",
                 "lying_bits", "unknown_transfer_syntax", "endless_items"):
        assert len(kinds[kind]) >= 50, kind
    assert {"zero_byte", "one_byte", "fifo"} <= set(kinds) and corpus.loop.is_symlink()


def test_no_crash_and_no_traceback(fuzzed):
    _, result, _, _ = fuzzed
    assert result.returncode == 3, result.stderr[-3000:]  # finished, some studies failed or partial
    assert "Traceback" not in result.stderr


def test_every_file_is_accounted_for_once_with_a_reason(fuzzed):
    corpus, _, _, views = fuzzed
    expected = {str(p) for p in corpus.all_paths()}
    assert len(views) == views["path"].nunique(), "a file listed twice (the symlink loop followed?)"
    loop = views[views["reason"] == "symlink_loop"]
    assert loop["path"].tolist() == [str(corpus.loop)]  # not followed, and reported
    assert set(views["path"]) - {str(corpus.loop)} == expected
    assert not views["path"].str.contains("/loop/").any()
    assert set(views["status"]) <= {"ok", "skipped", "failed"}
    rejected = views[views["status"] != "ok"]
    assert (rejected["reason"].fillna("") != "").all() and (rejected["detail"].fillna("") != "").all()
    by_path = views.set_index("path")
    for kind in ("endless_items", "unknown_transfer_syntax", "zero_byte"):
        statuses = by_path.loc[[str(p) for p in corpus.by_kind()[kind]], "status"]
        assert (statuses == "failed").all(), (kind, statuses.value_counts().to_dict())
    fifo = by_path.loc[[str(p) for p in corpus.by_kind()["fifo"]]]
    assert (fifo["reason"] == "special_file").all()  # reported, never opened (it would block)
    originals = by_path.loc[[str(p) for p in corpus.originals if p.suffix != ".csv"], "status"]
    assert (originals == "ok").all(), originals.value_counts().to_dict()  # bad neighbours hurt no one


def test_error_texts_carry_no_run_specific_noise(fuzzed):
    _, _, _, views = fuzzed
    details = views["detail"].fillna("")
    assert not details.str.contains(ADDRESS).any(), details[details.str.contains(ADDRESS)].head().tolist()


def test_peak_memory_is_bounded(fuzzed):
    _, _, measured, _ = fuzzed
    assert measured["peak_rss_mb"] < PEAK_RSS_MB, measured


def test_the_log_has_at_most_one_line_per_bad_file(fuzzed):
    _, result, _, views = fuzzed
    bad = int((views["status"] != "ok").sum())
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) <= bad + 10, f"{len(lines)} stderr lines for {bad} bad files"


def test_a_huge_matrix_is_refused_before_allocating(tmp_path, bundle):
    studies = tmp_path / "studies"
    write_studies(studies, 2, seed=SEED, size=(256, 208))
    rng = np.random.default_rng(SEED)
    huge = []
    for path in sorted(p for p in studies.rglob("*") if p.is_file() and p.suffix != ".csv"):
        target = path.with_name(path.name + ".huge.dcm")
        target.write_bytes(huge_matrix(path, path.read_bytes(), rng))
        huge.append(str(target))
    result, measured = score_under_limits(studies, bundle, tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr
    views = pq.read_table(tmp_path / "views.parquet").to_pandas().set_index("path")
    refused = views.loc[huge]
    texts = (refused["reason"] + ": " + refused["detail"]).value_counts().to_dict()
    assert (refused["status"] == "failed").all(), texts
    # Refused from the header (discovery), never by trying: no decode_error, no MemoryError.
    assert not (refused["reason"] == "decode_error").any(), texts
    assert not refused["detail"].str.contains("MemoryError").any(), texts
    assert measured["peak_rss_mb"] < PEAK_RSS_MB
    assert os.path.exists(tmp_path / "scores.parquet")


def test_a_truncated_mammogram_is_failed_never_skipped(fuzzed):
    corpus, _, _, views = fuzzed
    by_path = views.set_index("path")
    truncated = [str(m.path) for m in corpus.files
                 if m.kind == "truncate" and by_path.loc[str(m.base), "status"] == "ok"]
    statuses = by_path.loc[truncated, ["status", "reason"]]
    assert (statuses["status"] == "failed").all(), statuses.value_counts().to_dict()

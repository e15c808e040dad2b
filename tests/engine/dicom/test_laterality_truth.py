"""Laterality end to end against truth that does not come from the engine (issue 12, section 4):
real CBIS-DDSM files whose metadata names the breast, and left_score/right_score recomputed by hand
from views.parquet probabilities and the synthetic studies' ground-truth manifest."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle

from mammo_batch.engine.dicom import discover
from mammo_batch.engine.pixels import preprocess
from mammo_batch.synth import write_studies

SIZE = (256, 128)


def cbis_truth(ds: pydicom.Dataset) -> tuple[str, str]:
    """CBIS-DDSM names each image `<set>_P_<n>_<LEFT|RIGHT>_<CC|MLO>` in its patient identifier:
    the curated dataset's own label, independent of the laterality tags the engine reads."""
    *_, side, view = str(ds.PatientID).split("_")
    return {"LEFT": "L", "RIGHT": "R"}[side], view


def stored_chest_wall_side(pixels: np.ndarray) -> str:
    """Which edge of the stored image the breast (the bright tissue) leans on, by plain numpy."""
    band = pixels.shape[1] // 10
    left, right = pixels[:, :band].mean(), pixels[:, -band:].mean()
    return "left" if left > right else "right"


def test_cbis_laterality_and_orientation_match_the_dataset_truth(cbis_cases):
    records = discover([cbis_cases], workers=1)
    assert len(records) == 8
    seen = set()
    for record in records:
        ds = pydicom.dcmread(record.path)
        laterality, view = cbis_truth(ds)
        assert (record.laterality, record.view) == (laterality, view), Path(record.path).name
        seen.add(laterality)
        pixels = ds.pixel_array  # pydicom's own decode, not the engine's
        # CBIS-DDSM scans store right breasts with the chest wall on the right, left ones on the left.
        assert stored_chest_wall_side(pixels) == ("left" if laterality == "L" else "right")
        image = preprocess(ds, pixels, [SIZE]).inputs[SIZE]
        band = SIZE[1] // 10
        assert image[:, :band].mean() > 4 * image[:, -band:].mean() + 5, "chest wall must be on the left"
    assert seen == {"L", "R"}


MEMBERS = [
    dict(name="wide", fold=0, height=96, width=48, dtype="uint8", weight=8.0, bias=-3.0, region=None),
    dict(name="upper", fold=1, height=64, width=32, dtype="uint8", weight=6.0, bias=-2.0,
         region=(0, 32, 0, 16)),
]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    root = tmp_path_factory.mktemp("truth")
    studies = root / "studies"
    write_studies(studies, 10, seed=21, size=(192, 160))
    bundle = write_test_bundle(root / "bundle", MEMBERS, threshold=0.5)
    out, views_out = root / "scores.parquet", root / "views.parquet"
    command = [sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies), "--models",
               str(bundle), "--out", str(out), "--views", str(views_out), "--quiet", "--workers", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return studies, pq.read_table(out).to_pandas(), pq.read_table(views_out).to_pandas()


def test_left_and_right_scores_match_a_hand_computation_from_ground_truth(scored):
    studies, scores, views = scored
    with (studies / "manifest.csv").open() as handle:
        manifest = pd.DataFrame(list(csv.DictReader(handle)))
    manifest["path"] = [str(studies / p) for p in manifest["path"]]
    rows = views.merge(manifest[["path", "accession_number", "laterality"]], on="path",
                       suffixes=("_engine", ""))
    assert len(rows) == len(manifest)  # every synthetic view is in views.parquet
    rows = rows[rows["status"] == "ok"]
    expected: dict[str, dict[str, float]] = {}
    for _, row in rows.iterrows():
        prob = (row["prob_wide"] + row["prob_upper"]) / 2  # the ensemble mean, by hand
        expected.setdefault(row["accession_number"], {}).setdefault(row["laterality"], []).append(prob)
    by_key = scores.set_index("study_key")
    differing = 0
    for accession, breasts in expected.items():
        study = by_key.loc[accession]
        left = np.mean(breasts["L"]) if "L" in breasts else np.nan
        right = np.mean(breasts["R"]) if "R" in breasts else np.nan
        np.testing.assert_allclose([study["left_score"], study["right_score"]], [left, right],
                                   atol=1e-6, err_msg=accession)
        assert study["score"] == pytest.approx(np.nanmax([left, right]), abs=1e-6)
        assert study["n_views"] == sum(len(v) for v in breasts.values())
        differing += bool(np.isfinite(left) and np.isfinite(right) and abs(left - right) > 1e-4)
    assert differing >= 5  # enough two-breast studies where a swap of L and R would show
    assert len(expected) == len(scores)

"""No tag value ever reaches stdout, stderr or a log: a damaged header whose garbled values
swallow the patient's name and birth date is read by `inspect`, `score` and `preview`, at normal
and debug verbosity, and the name appears nowhere; the file says what happened in our words."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dicom_files import write_view
from onnx_members import write_test_bundle

from mammo_batch.engine.dicom import read_view

NAME, BIRTH_DATE = "Zyxwvut^Secretname", "19310419"
SECRETS = ("Zyxwvut", "Secretname", BIRTH_DATE)
MEMBER = dict(name="m", fold=0, height=64, width=32, dtype="uint8", weight=6.0, bias=-2.0, region=None)


def damaged(path: Path) -> Path:
    """20 bytes of the header overwritten: SOPClassUID's length now spans the patient module."""
    write_view(path, "P1", "A1", "1.2.3.4", "L", "CC", PatientName=NAME, PatientBirthDate=BIRTH_DATE)
    data = bytearray(path.read_bytes())
    start = data.index(b"\x08\x00\x16\x00UI", 200)  # in the dataset, after the file meta
    assert data.index(NAME.encode()) - start < 380
    data[start + 6:start + 26] = (400).to_bytes(2, "little") + b"\xc9" * 18
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("privacy")
    damaged(root / "study" / "damaged.dcm")
    for lat in "LR":
        write_view(root / "study" / f"{lat}CC.dcm", "P1", "A1", "1.2.3.4", lat, "CC",
                   PatientName=NAME, PatientBirthDate=BIRTH_DATE)
    return root


def cli(*args: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", *args],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 3), out.stdout + out.stderr
    return out


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text[:3000]


def test_the_damaged_file_gets_a_reason_in_our_words(folder):
    record = read_view(folder / "study" / "damaged.dcm")
    assert record.status in ("skipped", "failed") or record.reason == "header_warnings"
    assert "warnings from the DICOM reader" in record.detail and "values withheld" in record.detail
    assert_no_secret(record.detail)


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_inspect_and_preview_print_no_tag_values(folder, tmp_path, verbose):
    inspect = cli(*verbose, "inspect", str(folder), "--workers", "1")
    inspect_json = cli(*verbose, "inspect", str(folder), "--json", "--workers", "2")
    preview = cli(*verbose, "preview", str(folder), "--out", str(tmp_path / "p"), "--size", "64x32",
                  "--workers", "2")
    for out in (inspect, inspect_json, preview):
        assert_no_secret(out.stdout + out.stderr)
    # One line about the damaged file, in our words, not hundreds of pydicom's.
    assert sum("damaged.dcm" in line for line in inspect.stderr.splitlines()) == 1
    assert "warnings from the DICOM reader" in inspect.stderr


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_score_prints_and_writes_no_tag_values(folder, tmp_path, verbose):
    bundle = write_test_bundle(tmp_path / "bundle", [MEMBER], threshold=0.5)
    out = cli(*verbose, "score", str(folder), "--models", str(bundle), "--out", str(tmp_path / "s.parquet"),
              "--views", str(tmp_path / "v.parquet"), "--workers", "2")
    assert_no_secret(out.stdout + out.stderr)
    views = pq.read_table(tmp_path / "v.parquet").to_pylist()
    assert len(views) == 3
    assert_no_secret(repr(views))
    [row] = [v for v in views if v["path"].endswith("damaged.dcm")]
    assert "warnings from the DICOM reader" in row["detail"]

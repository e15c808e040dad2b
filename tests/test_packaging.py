"""The wheel installs only the mammo_batch namespace: no top-level engine/train/build."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_only_the_mammo_batch_namespace(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("mammo_batch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"mammo_batch", next(t for t in top_level if t.endswith(".dist-info"))}
    for sub in ("engine", "train", "build", "synth", "bench"):
        assert f"mammo_batch/{sub}/__init__.py" in names
    assert "mammo_batch/engine/pixels/pipeline.py" in names
    assert not any("/tests/" in name or name.startswith("benchmarks/") for name in names)
    assert not (ROOT / "build" / "lib").exists(), "setuptools wrote its build tree into build/"


def test_engine_imports_without_torch() -> None:
    code = (
        "import sys; import mammo_batch.engine.cli, mammo_batch.engine.prepare, mammo_batch.engine.api; "
        "assert 'torch' not in sys.modules, 'the engine imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_synth_needs_nothing_from_the_engine() -> None:
    """The synthetic-study generator is test and demo data, not runtime: it must stand alone."""
    code = ("import sys, mammo_batch.synth; "
            "assert not [m for m in sys.modules if m.startswith('mammo_batch.engine')], 'synth imports the engine'")
    subprocess.run([sys.executable, "-c", code], check=True)

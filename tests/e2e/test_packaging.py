"""The wheel installs only the mammo_batch namespace: no top-level engine/train/build."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
    for folder in ("engine", "train", "build", "synth", "bench"):  # every subpackage travels in the wheel
        for init in (ROOT / folder).rglob("__init__.py"):
            assert f"mammo_batch/{init.relative_to(ROOT).as_posix()}" in names, init
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


# Packages that are torch or pull it in: never in the core install nor in `dev` (README, "Quick start").
TORCH_PULLING = ("torch", "torchvision", "timm", "efficientnet-pytorch", "efficientnet_pytorch")


def test_the_core_install_and_dev_extra_need_no_torch() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for group, requirements in (("core", project["dependencies"]), ("dev", extras["dev"])):
        names = [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements]
        assert not set(names) & set(TORCH_PULLING), (group, names)
    assert any(r.startswith("efficientnet-pytorch") for r in extras["test-train"])  # moved, not dropped

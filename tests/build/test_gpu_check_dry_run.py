"""benchmarks/gpu_check.py --device cpu: the prepared GPU check's every step on the CPU at toy sizes.

The code paths of the one script that checks the GPU path on a real GPU (decode, render, FP16 runtime,
stages, end to end) run here, so the script cannot rot between the rare runs on a GPU machine. The
numbers of a CPU dry run mean nothing; only that every step ran and passed its own check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("nvidia.nvimgcodec")  # the `gpu` extra: .ci/run installs it for its last step

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.timeout(900)
def test_the_gpu_check_dry_runs_every_step_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--device", "cpu"],
                            capture_output=True, text=True, timeout=900)
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {name: step.get("error") for name, step in report["steps"].items() if not step["ok"]}
    assert result.returncode == 0 and not failed, failed or result.stderr[-3000:]
    assert set(report["steps"]) == {"synth", "decode", "render", "fp16", "bundle", "stages", "e2e"}

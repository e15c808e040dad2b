"""`--runtime auto` picks torch-cpu-bf16 where the CPU has bf16 instructions and every member passed
its bf16 gate, and never elsewhere. The CPU's capability is given as data (a cpuinfo file), so both
branches run on every machine, not only on one with AVX512-BF16 (where the old test's other branch
never ran). Selection looks only at bundle.json, so the torch artifacts are placeholders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from onnx_members import write_test_bundle  # noqa: E402

from mammo_batch.engine.bundle import load_bundle, write_bundle_json  # noqa: E402
from mammo_batch.engine.bundle.checksums import sha256_file  # noqa: E402
from mammo_batch.engine.runtimes import select_runtime, torch_cpu  # noqa: E402

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device comes before the CPU runtimes")

WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
WITHOUT_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
PASSED = {"passed": True, "views": 40, "studies": 10, "max_prob_diff": 0.004, "study_auc_change": -0.001,
          "max_prob_diff_tolerance": 0.02, "study_auc_change_tolerance": 0.005}


def bundle_with(tmp_path: Path, gates: dict[str, dict]) -> Path:
    """Two members with torch artifacts (placeholders) and the given bf16 gates."""
    directory = write_test_bundle(tmp_path / "bundle", [{"name": "a", "height": 8, "width": 4},
                                                        {"name": "b", "height": 8, "width": 4}])
    document = json.loads((directory / "bundle.json").read_text())
    for member in document["members"]:
        file = f"{member['name']}.pt2"
        (directory / file).write_bytes(b"selection never opens this")
        member["artifacts"]["torch"] = file
        member["sha256"][file] = sha256_file(directory / file)
        if member["name"] in gates:
            member["bf16_gate"] = gates[member["name"]]
    write_bundle_json(directory, document)
    return directory


@pytest.fixture
def cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """cpu(text): this CPU's /proc/cpuinfo is `text` for the test."""
    def use(text: str) -> None:
        path = tmp_path / f"cpuinfo-{abs(hash(text))}"
        path.write_text(text)
        monkeypatch.setattr(torch_cpu, "CPUINFO", path)
    return use


def test_auto_picks_cpu_bf16_where_the_cpu_has_it_and_every_gate_passed(tmp_path, cpu):
    cpu(WITH_BF16)
    runtime, reason = select_runtime("auto", load_bundle(bundle_with(tmp_path, {"a": PASSED, "b": PASSED})))
    assert runtime.name == "torch-cpu-bf16", reason


def test_auto_stays_on_onnxruntime_without_bf16_instructions(tmp_path, cpu):
    cpu(WITHOUT_BF16)
    runtime, reason = select_runtime("auto", load_bundle(bundle_with(tmp_path, {"a": PASSED, "b": PASSED})))
    assert runtime.name == "onnxruntime-cpu" and "bf16" in reason


@pytest.mark.parametrize("gates", [{"a": PASSED}, {"a": PASSED, "b": {**PASSED, "passed": False}}])
def test_auto_stays_on_onnxruntime_unless_every_member_passed_its_gate(tmp_path, cpu, gates):
    cpu(WITH_BF16)
    runtime, reason = select_runtime("auto", load_bundle(bundle_with(tmp_path, gates)))
    assert runtime.name == "onnxruntime-cpu"
    assert re.search(r"\bb\b", reason), reason  # names the member whose gate is missing or failed

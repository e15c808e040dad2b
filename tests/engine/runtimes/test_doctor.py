"""`mammo-batch doctor`: every runtime and decoder of the registries, with why it can or cannot run here."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from onnx_members import write_test_bundle

from mammo_batch.engine.cli import cli
from mammo_batch.engine.dicom.decoders.registry import DECODERS
from mammo_batch.engine.runtimes import RUNTIMES


def test_doctor_lists_every_runtime_and_decoder_with_a_verdict(tmp_path: Path) -> None:
    bundle = write_test_bundle(tmp_path / "b", [{"name": "m", "height": 8, "width": 4}])
    result = CliRunner().invoke(cli, ["doctor", "--models", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [r["name"] for r in report["runtimes"]] == [spec.name for spec in RUNTIMES]  # auto's order
    assert [d["name"] for d in report["decoders"]] == [spec.name for spec in DECODERS]
    verdicts = {r["name"]: r["why_not"] for r in report["runtimes"]}
    assert verdicts["onnx"] is None  # runs everywhere
    assert verdicts["torch-cpu"] == "no torch artifact for m"  # judged for this bundle
    assert {d["name"]: d["why_not"] for d in report["decoders"]}["cpu"] is None
    assert report["auto_runtime"].startswith("onnxruntime-cpu (")
    text = CliRunner().invoke(cli, ["doctor"]).output
    assert all(f"  {spec.name} " in text for spec in (*RUNTIMES, *DECODERS))
    assert "  onnx            cpu   host arrays    yes" in text


def test_doctor_on_a_bad_bundle_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor", "--models", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such bundle directory" in result.output

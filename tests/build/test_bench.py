"""`mammo-batch bench`: both sides run on a tiny input and score the same studies (not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("torch", reason="the train extra is not installed")
pytest.importorskip("timm")

from mammo_batch.bench.cli import parse_arch  # noqa: E402
from mammo_batch.bench.compare import BenchSettings, compare, format_table  # noqa: E402
from mammo_batch.bench.members import arch_name, random_member_bundle  # noqa: E402
from mammo_batch.bench.seed_style import load_png, pad_to_2_to_1, preprocess_to_png  # noqa: E402
from mammo_batch.cli import cli  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def studies(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("studies")
    write_studies(directory, 2, seed=0, size=(512, 416), workers=1)
    return directory


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return random_member_bundle([("tiny", (128, 64))], tmp_path_factory.mktemp("bench") / "bundle")


def test_both_sides_score_the_same_studies(studies: Path, bundle: Path, tmp_path: Path) -> None:
    settings = BenchSettings(paths=[str(studies)], bundle_dir=bundle, runtimes=("onnx",), workers=2,
                             threads=1, note="test")
    result = compare(settings, tmp_path)
    seed, (ours,) = result["seed_style"], result["ours"]
    assert result["studies"] == 2 and result["same_studies"]
    assert seed["views"] == ours["views"] == result["views"] > 0 and not seed["failed"]
    assert len(seed["study_scores"]) == 2
    assert all(0.0 <= score <= 1.0 for score in seed["study_scores"].values())
    assert ours["runtime"] == "onnxruntime-cpu (requested)" and ours["counts"] == {"ok": 2}
    assert ours["ratio_to_seed"] == pytest.approx(ours["views_per_second"] / seed["views_per_second"])
    assert set(ours["timings"]) >= {"discovery_s", "prepare_s", "model_s", "write_s", "wall_s", "call_s"}
    assert set(seed["timings"]) == {"preprocess_s", "load_s", "model_s", "wall_s"}
    assert result["members"] == [{"name": "tiny", "arch": "tiny", "input_size": [128, 64]}]
    table = format_table(result)
    assert "seed-style" in table and "mammo-batch onnxruntime-cpu" in table and "load" in table


def test_the_command_writes_its_json(studies: Path, bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(studies), "--models", str(bundle), "--runtime", "onnx",
                                      "--out", str(out), "--workers", "1", "--threads", "1", "--no-seed"])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert "seed_style" not in document and document["ours"][0]["views"] > 0
    assert "mammo-batch onnxruntime-cpu" in result.output


@pytest.mark.parametrize("args, message", [
    ([], "exactly one of --models BUNDLE or --arch ARCH"),
    (["--arch", "vgg16"], "unknown arch 'vgg16'"),
    (["--arch", "tiny", "--arch", "vgg16:64x32"], "unknown arch 'vgg16'"),
    (["--arch", "tiny:64"], "expected HxW"),
])
def test_usage_errors(studies: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["bench", str(studies), "--out", str(tmp_path / "r.json"), *args])
    assert result.exit_code == 2 and message in result.output


def test_an_ensemble_of_arch_options(studies: Path, tmp_path: Path) -> None:
    """--arch repeated, each with its own size or --size's: one bundle, members apart by fold."""
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", str(studies), "--arch", "tiny:128x64", "--arch", "tiny:128x64",
                                      "--arch", "tiny", "--size", "96x48", "--runtime", "onnx", "--out", str(out),
                                      "--workers", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["members"] == [{"name": f"fold{i}_tiny", "arch": "tiny", "input_size": size}
                                   for i, size in enumerate([[128, 64], [128, 64], [96, 48]])]
    assert document["settings"]["bundle_dir"] == "temporary: random-weight tiny 128x64, tiny 128x64, tiny 96x48"
    assert document["same_studies"] and document["seed_style"]["views"] == document["ours"][0]["views"] > 0


def test_arch_option_parsing() -> None:
    assert parse_arch("convnext_small:2048x1024", "1536x768") == ("convnext_small", (2048, 1024))
    assert parse_arch("tf_efficientnet_b2", "1536x768") == ("tf_efficientnet_b2", (1536, 768))
    with pytest.raises(click.BadParameter, match="expected HxW"):
        parse_arch("convnext_small:2048", "1536x768")


def test_timm_names_of_the_seed_are_accepted() -> None:
    assert arch_name("tf_efficientnet_b2") == "efficientnet_b2"
    assert arch_name("convnext_small") == "convnext_small"


def test_seed_preprocessing_of_a_real_mammogram(cbis_cases: Path, tmp_path: Path) -> None:
    path = str(sorted(cbis_cases.rglob("*.dcm"))[0])
    pngs = {(256, 128): str(tmp_path / "a.png"), (128, 64): str(tmp_path / "b.png")}
    preprocess_to_png(path, pngs)
    written = cv2.imread(pngs[(256, 128)], cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (256, 128)  # a 16-bit PNG at the member size
    image = load_png(pngs[(128, 64)])
    assert image.dtype == np.uint8 and image.shape == (128, 64)
    assert image.min() == 0 and image.max() == 255  # per-image min-max


def test_pad_to_2_to_1_centres_the_image() -> None:
    wide = np.full((10, 8), 7, np.uint16)
    wide[0, 0] = 2  # the canvas takes the image's minimum, as the seed's did
    padded = pad_to_2_to_1(wide)
    assert padded.shape == (16, 8) and (padded[3:13] == wide).all()
    assert (padded[:3] == 2).all() and (padded[13:] == 2).all()
    tall = np.ones((30, 8), np.uint16)
    assert pad_to_2_to_1(tall).shape == (30, 15)

"""`mammo-batch import-seed`: the seed's fold checkpoints -> a bundle that `score` runs.

Random weights in the seed's exact layouts (FineTuneMammoClip over lukemelas' EfficientNet,
FineTuneRSNA over timm's ConvNeXt-S), small input sizes; real synthetic DICOM studies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")

from click.testing import CliRunner  # noqa: E402

from mammo_batch.build.parity import eager_probabilities  # noqa: E402
from mammo_batch.cli import cli  # noqa: E402
from mammo_batch.engine.bundle import load_bundle, sha256_file  # noqa: E402
from mammo_batch.engine.pixels import PreprocessSettings  # noqa: E402
from mammo_batch.engine.prepare import prepare_file  # noqa: E402
from mammo_batch.synth import write_studies  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def save_seed_fold(path: Path, state_dict: dict) -> None:
    torch.save({"epoch": 4, "state_dict": state_dict, "best_auc": np.float64(0.74),
                "optimizer": {"state": {}, "param_groups": []}, "train_result": {}, "valid_result": {},
                "test_result": {}}, path)


def mammo_clip_fold(path: Path) -> None:
    torch.manual_seed(0)
    encoder = efficientnet_pytorch.EfficientNet.from_name("efficientnet-b2")
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(1408, 512), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(512, 1))
    state = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items() if not k.startswith("_fc.")}
    state.update({f"classifier.{k}": v for k, v in head.state_dict().items()})
    save_seed_fold(path, state)


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    write_studies(folder, 2, seed=3, size=(512, 416), positive_rate=0.5)
    return folder


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory, studies: Path) -> Path:
    """One seed fold (FineTuneMammoClip B2) imported at 128x64 by the CLI."""
    folder = tmp_path_factory.mktemp("import")
    fold = folder / "Mammo-CLIP-b2" / "256_fold0" / "model_best.pth.tar"
    fold.parent.mkdir(parents=True)
    mammo_clip_fold(fold)
    result = CliRunner().invoke(cli, ["import-seed", f"{fold}@128x64", "--out", str(folder / "bundle"),
                                      "--parity-views", str(studies), "--threshold", "0.4"])
    assert result.exit_code == 0, result.output
    return folder / "bundle"


def test_import_seed_then_score(tmp_path: Path, studies: Path, imported: Path) -> None:
    bundle_dir = imported
    fold = imported.parent / "Mammo-CLIP-b2" / "256_fold0" / "model_best.pth.tar"
    bundle = load_bundle(bundle_dir)
    (member,) = bundle.members
    assert (member.arch, member.input_size, member.fold) == ("tf_efficientnet_b2", (128, 64), 0)
    assert bundle.settings.profile == "seed" and member.preprocess.orientation == "as_stored"
    assert bundle.aggregation == {"breast": "mean", "study": "max"} and bundle.threshold == 0.4
    assert member.metrics["parity_onnx_max_diff"] <= 1e-4
    # like any other member: an FP16 copy with its gate's result, and a bf16 gate result (measured on
    # the parity views with their labels.csv, or skipped with the reason on a CPU without bf16)
    assert member.artifacts.onnx_fp16 and member.fp16_gate is not None and member.fp16_gate.views > 0
    assert member.bf16_gate is not None
    assert member.bf16_gate.views > 0 or member.bf16_gate.reason.startswith("skipped: ")
    source = bundle.provenance["sources"][0]
    assert source == {"file": str(fold.resolve()), "sha256": sha256_file(fold)}

    # the exported member computes the seed model on the seed's pixels
    view = sorted(studies.rglob("*.dcm"))[0]
    image = prepare_file(view, [(128, 64)], PreprocessSettings(profile="seed")).inputs[(128, 64)]
    model = ProbabilityModel(create_model("tf_efficientnet_b2", init=f"seed:{fold}")).eval()
    import onnxruntime as ort

    session = ort.InferenceSession(str(bundle.artifact_path(member.artifacts.onnx)))
    (prob,) = session.run(None, {"image": image[np.newaxis, np.newaxis]})
    assert abs(float(prob.ravel()[0]) - float(eager_probabilities(model, image[np.newaxis])[0])) <= 1e-4

    scores = tmp_path / "scores.parquet"
    scored = subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "score", str(studies),
                             "--models", str(bundle_dir), "--out", str(scores), "--quiet", "--rescore"],
                            capture_output=True, text=True)
    assert scored.returncode in (0, 3), scored.stderr
    rows = pq.read_table(scores).to_pylist()
    assert len(rows) == 2 and all(r["status"] == "ok" and 0 <= r["score"] <= 1 for r in rows)


def test_import_seed_exits_2_on_a_bad_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 1, "state_dict": {"backbone.weird.weight": torch.zeros(2)}}, bad)
    result = CliRunner().invoke(cli, ["import-seed", str(bad), "--out", str(tmp_path / "bundle")])
    assert result.exit_code == 2
    assert str(bad) in result.output and "none of the seed's wrappers" in result.output


def test_a_failed_import_leaves_the_previous_bundle_byte_identical(tmp_path: Path, imported: Path,
                                                                   studies: Path) -> None:
    # The first fold is exported (at another size: other bytes) before the second one fails: nothing of
    # it may reach the bundle folder, whose bundle.json would then name stale checksums.
    out = tmp_path / "bundle"
    shutil.copytree(imported, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    good = imported.parent / "Mammo-CLIP-b2" / "256_fold0" / "model_best.pth.tar"
    bad = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 1, "state_dict": {"backbone.weird.weight": torch.zeros(2)}}, bad)
    result = CliRunner().invoke(cli, ["import-seed", f"{good}@96x48", str(bad), "--out", str(out),
                                      "--parity-views", str(studies)])
    assert result.exit_code == 2, result.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "model_best.pth.tar"]  # no debris
    load_bundle(out)  # what score checks first: still valid, checksums included


def test_bundle_json_profile_validation(tmp_path: Path, imported: Path) -> None:
    bundle_dir = tmp_path / "bundle"
    shutil.copytree(imported, bundle_dir)
    document = json.loads((bundle_dir / "bundle.json").read_text())
    document["members"][0]["preprocess"]["orientation"] = "chest_wall_left"
    (bundle_dir / "bundle.json").write_text(json.dumps(document))
    from mammo_batch.engine.bundle import BundleError

    with pytest.raises(BundleError, match="seed profile produces 'as_stored'"):
        load_bundle(bundle_dir)

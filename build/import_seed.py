"""`mammo-batch import-seed CKPT... --out BUNDLE`: the seed's fold checkpoints -> a scoring bundle.

    import_seed([SeedFold(Path("convnext_fold0/model_best.pth.tar"))], Path("bundle"))

Each checkpoint is read by the `seed` importer (train/importers/seed.py), which also says its
architecture; its input size is the seed's for that architecture unless given (PATH@HxW):
ConvNeXt-S 2048x1024, EfficientNet-B2/B5 1536x768. Each member is exported (ONNX + torch.export),
checked against the eager model on views prepared by the seed's own preprocessing (the
`seed` profile), and recorded with the seed's aggregation (mean over models, mean per breast,
max per study). Provenance names every source file and its sha256. No weights are shipped.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np

from mammo_batch import __version__
from mammo_batch.build.export import export_onnx, export_torch
from mammo_batch.build.parity import ParityError, check_parity
from mammo_batch.engine.bundle import bundle_document, load_bundle, member_document, sha256_file, write_bundle_json
from mammo_batch.engine.cli.options import parse_size
from mammo_batch.engine.pixels import PreprocessSettings
from mammo_batch.engine.prepare import prepare_file
from mammo_batch.train.importers.seed import import_seed as import_seed_weights
from mammo_batch.train.init_weights import InitWeightsError, load_init
from mammo_batch.train.models import ProbabilityModel, create_model

log = logging.getLogger("mammo_batch.build")

# The seed's input size per architecture (its README's fold runs).
SEED_SIZES = {"convnext_small": (2048, 1024), "tf_efficientnet_b5": (1536, 768),
              "tf_efficientnet_b2": (1536, 768)}
PARITY_VIEWS = 8


@dataclass(frozen=True)
class SeedFold:
    path: Path
    size: tuple[int, int] | None = None  # (H, W); None: the seed's size for the architecture

    @classmethod
    def parse(cls, spec: str) -> SeedFold:
        """"PATH" or "PATH@HxW"."""
        path, sep, size = spec.rpartition("@")
        if sep and re.fullmatch(r"\d+x\d+", size):
            return cls(Path(path), parse_size(size))
        return cls(Path(spec))


def import_seed(folds: list[SeedFold], out: Path, threshold: float = 0.5, name: str = "seed-ensemble",
                parity_views: Path | None = None) -> Path:
    """Export every fold into the bundle directory `out`; returns it (validated by load_bundle)."""
    if not folds:
        raise click.UsageError("no checkpoints given")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        views = _parity_files(parity_views, Path(tmp))
        members = [_member(fold, index, out, views) for index, fold in enumerate(folds)]
    document = bundle_document(
        name=name, members=members, threshold=threshold,
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        description=f"{len(members)} fold checkpoints of the seed (Kaggle_SPR), imported by "
                    f"mammo-batch {__version__}; scored with the seed's preprocessing",
        provenance={"code_version": __version__, "command": sys.argv, "importer": "seed",
                    "sources": [{"file": str(f.path.resolve()), "sha256": sha256_file(f.path)} for f in folds],
                    "parity_views": str(parity_views) if parity_views else "synthetic",
                    "threshold_rule": "given"})
    write_bundle_json(out, document)
    load_bundle(out)  # what score will do: checksums, consistency
    return out


def _member(fold: SeedFold, index: int, out: Path, views: list[Path]) -> dict:
    arch = import_seed_weights(fold.path).arch  # the file says its architecture
    height, width = fold.size or SEED_SIZES[arch]
    net = create_model(arch, "uint8")
    report = load_init(net, fold.path, "seed", arch=arch)
    if report.missing:
        raise InitWeightsError(f"{fold.path}: no weights for {', '.join(report.missing[:5])}")
    model = ProbabilityModel(net).eval()
    number = re.search(r"fold_?(\d+)", str(fold.path))
    member_name = f"fold{number.group(1) if number else index}_{arch}_{index}"
    onnx_file, torch_file = f"{member_name}.onnx", f"{member_name}.pt2"
    export_onnx(model, out / onnx_file, height, width, "uint8")
    export_torch(model, out / torch_file, height, width, "uint8")
    images = np.stack([prepare_file(v, [(height, width)], PreprocessSettings(profile="seed")).inputs[(height, width)]
                       for v in views])
    parity = check_parity(model, out / onnx_file, out / torch_file, images)  # raises ParityError
    log.info("%s: %s; %s", member_name, report.summary(), parity.summary())
    return member_document(out, name=member_name, fold=int(number.group(1)) if number else index, arch=arch,
                           height=height, width=width, onnx=onnx_file, torch=torch_file, window="minmax",
                           profile="seed", metrics={"parity_onnx_max_diff": float(parity.onnx_max_diff),
                                                    "parity_torch_max_diff": float(parity.torch_max_diff)})


def _parity_files(folder: Path | None, tmp: Path) -> list[Path]:
    """Views to check parity on: the user's DICOM files, else synthetic studies."""
    if folder is None:
        from mammo_batch.synth import write_studies

        folder = tmp / "synthetic"
        write_studies(folder, 2, seed=0, size=(512, 416), positive_rate=0.5)
    files = sorted(p for p in folder.rglob("*.dcm") if p.is_file())[:PARITY_VIEWS]
    if not files:
        raise click.UsageError(f"{folder}: no .dcm files to check parity on")
    return files


@click.command("import-seed")
@click.argument("checkpoints", nargs=-1, required=True, metavar="CKPT[@HxW]...")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The bundle directory to write.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Recall threshold on the study score (the seed's files carry none).")
@click.option("--name", default="seed-ensemble", show_default=True)
@click.option("--parity-views", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="DICOM views to check the exports on (default: synthetic studies).")
def import_seed_command(checkpoints: tuple[str, ...], out: Path, threshold: float, name: str,
                        parity_views: Path | None) -> None:
    """Import the seed's fold checkpoints (model_best.pth.tar; ConvNeXt-S or EfficientNet-B2/B5)
    into a bundle that `mammo-batch score --models` runs with the seed's preprocessing."""
    logging.getLogger("mammo_batch").setLevel(logging.INFO)
    try:
        path = import_seed([SeedFold.parse(c) for c in checkpoints], out, threshold, name, parity_views)
    except (InitWeightsError, ParityError) as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    click.echo(f"wrote bundle {path} ({len(checkpoints)} members, seed profile)")
